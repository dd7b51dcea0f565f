"""attnviz.workpool: model work of every session through one bounded pool (sessions as threads here)."""

import threading
import time

import pytest

from attnviz.workpool import Cancelled, WorkPool, default_size


def test_the_pool_never_runs_more_than_its_size_at_once():
    pool, lock, now, most = WorkPool(2), threading.Lock(), [0], [0]

    def work():
        with lock:  # a counter in the worker, independent of the pool's own
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return threading.current_thread().name

    results = [None] * 12

    def session(i):
        results[i] = pool.submit(("model", i), work, owner=f"session {i}").result()

    sessions = [threading.Thread(target=session, args=(i,)) for i in range(12)]
    for s in sessions:
        s.start()
    for s in sessions:
        s.join(10)
    assert most[0] == 2 and pool.most_running == 2
    assert all(name.startswith("attnviz-worker-") for name in results)


def _blocked_pool():
    """A pool of one worker, held by a running job until the returned event is set."""
    pool, release, started = WorkPool(1), threading.Event(), threading.Event()

    def hold():
        started.set()
        release.wait(10)
        return "held"

    running = pool.submit("running", hold, owner="teacher")
    assert started.wait(5)
    return pool, release, running


def test_the_place_in_the_queue_is_the_number_of_jobs_queued_before_it():
    pool, release, running = _blocked_pool()
    jobs = [pool.submit(f"photo {i}", lambda i=i: i, owner=f"student {i}") for i in range(3)]
    assert [pool.ahead(job) for job in jobs] == [0, 1, 2] and pool.ahead(running) == 0
    pool.drop("student 0")  # the first one leaves: the others move up
    assert [pool.ahead(job) for job in jobs[1:]] == [0, 1]
    release.set()
    assert [job.result() for job in jobs[1:]] == [1, 2] and running.result() == "held"


def test_a_queued_job_of_a_session_that_reran_is_dropped_and_never_runs():
    pool, release, _ = _blocked_pool()
    ran = []
    job = pool.submit("old photo", lambda: ran.append("old photo"), owner="student")
    assert pool.drop("student") == 1 and job.state == "cancelled"
    with pytest.raises(Cancelled):
        job.result()
    release.set()
    newer = pool.submit("new photo", lambda: ran.append("new photo") or "ok", owner="student")
    assert newer.result() == "ok" and ran == ["new photo"]


def test_the_same_work_asked_twice_is_one_job_and_kept_while_anyone_waits():
    pool, release, _ = _blocked_pool()
    calls = []
    first = pool.submit("danet-eca on photo 1", lambda: calls.append(1) or "analysis", owner="a")
    second = pool.submit("danet-eca on photo 1", lambda: calls.append(2) or "other", owner="b")
    assert first is second
    assert pool.drop("a") == 0 and first.state == "queued"  # b still waits for it
    release.set()
    assert second.result() == "analysis" and calls == [1]


def test_a_failure_reaches_every_session_that_waits_and_the_pool_keeps_serving():
    pool = WorkPool(1)

    def broken():
        raise RuntimeError("the model does not fit")

    job = pool.submit("broken", broken, owner="a")
    with pytest.raises(RuntimeError, match="does not fit"):
        job.result()
    assert pool.submit("fine", lambda: 7, owner="a").result() == 7


def test_the_size_comes_from_the_environment_or_the_cores(monkeypatch):
    monkeypatch.setenv("ATTNVIZ_WORKERS", "3")
    assert default_size() == 3
    monkeypatch.setenv("ATTNVIZ_WORKERS", "0")
    with pytest.raises(ValueError):
        default_size()
    monkeypatch.delenv("ATTNVIZ_WORKERS")
    assert default_size() >= 1


def test_a_stoppable_job_reports_progress_and_stops_within_one_step_once_nobody_waits():
    pool = WorkPool(1)
    started, steps_run = threading.Event(), []

    def work(control):
        for step in range(100):
            control.check()  # between steps: raises Cancelled once nobody waits
            control.report(step, 100)
            steps_run.append(step)
            started.set()
            time.sleep(0.01)
        return "finished"

    job = pool.submit("ig", work, owner="student", stoppable=True)
    assert started.wait(5)
    time.sleep(0.05)
    assert job.control.progress is not None and 0 < job.control.progress < 1
    pool.drop("student")  # Cancel (the page reruns and leaves the wait)
    seen = len(steps_run)
    assert job.wait(5) and job.state == "cancelled" and len(steps_run) <= seen + 1
    with pytest.raises(Cancelled):
        job.result()
    # asked for again right away: a new job, not the stopping one
    again = pool.submit("ig", lambda control: "again", owner="student", stoppable=True)
    assert again is not job and again.result() == "again"


def test_a_stoppable_job_runs_on_while_another_session_still_waits():
    pool = WorkPool(1)

    def work(control):
        for step in range(5):
            control.check()
            control.report(step + 1, 5)
            time.sleep(0.01)
        return "done"

    job = pool.submit("ig", work, owner="a", stoppable=True)
    assert pool.submit("ig", work, owner="b", stoppable=True) is job
    pool.drop("a")
    assert job.result() == "done" and job.control.progress == 1.0


def test_a_session_that_reruns_while_its_stoppable_job_runs_takes_it_up_again_with_its_progress():
    """A slider moved while IG runs: the page's wait is dropped and asked for again at once. The job has not
    reached its next step, so it goes on (no restart at the back of the queue)."""
    pool = WorkPool(1)
    step_started, go_on = threading.Event(), threading.Event()

    def work(control):
        control.report(1, 2)
        step_started.set()
        go_on.wait(5)  # the first step, during which the session reruns
        control.check()
        control.report(2, 2)
        return "finished"

    job = pool.submit("ig", work, owner="student", stoppable=True)
    assert step_started.wait(5)
    pool.drop("student")  # the rerun leaves the wait...
    again = pool.submit("ig", work, owner="student", stoppable=True)  # ...and asks again
    go_on.set()
    assert again is job and again.result() == "finished" and job.control.progress == 1.0
