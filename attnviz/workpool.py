"""One bounded pool of worker threads for a server's model work, shared by every session of the process.

Streamlit runs each session's script in a thread of its own, so 30 students opening a page at once would run
30 forward passes at once, each slower than alone and all of them in memory together. Model work (a forward
pass with capture, for a model and a photo) goes through this pool instead: at most `size` jobs run at once,
the others wait in order, and a waiting session can say how many jobs are ahead of its own.

- The same work asked for twice (the same key: model, device, photo) is one job: the second session waits
  for the first one's job instead of queueing another.
- A session that leaves or reruns while its job is still queued drops it (`drop(owner)`); a job that no
  session wants any more never starts. A running job finishes (a forward pass cannot be stopped half-way),
  and its result is kept by the caller's cache for the next session that asks, unless it is stoppable:
  long work in steps (Integrated Gradients) is submitted with `stoppable=True`, gets the job's `Control`,
  reports its progress through it and calls `control.check()` between steps, which raises Cancelled once
  no session wants the job any more (so it stops within one step). A session that reruns while waiting (a
  slider moved) drops its wait and asks again at once: if the job has not reached its next step yet, it goes
  on with its progress instead of starting over.

No Streamlit here: attnviz.app.guards waits on a job and shows its place in the queue.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["Cancelled", "Control", "Job", "WorkPool", "default_size"]

WORKERS_ENV = "ATTNVIZ_WORKERS"


class Cancelled(Exception):
    """The job was dropped (before it started, or between the steps of stoppable work): every session that
    asked for it left or reran."""


def default_size() -> int:
    """How many forward passes run at once: $ATTNVIZ_WORKERS, else one per two CPU cores (each pass already
    uses several cores through torch's own threads; two at once on two cores only halve each), at least one."""
    chosen = os.environ.get(WORKERS_ENV, "")
    if chosen.strip():
        size = int(chosen)
        if size < 1:
            raise ValueError(f"${WORKERS_ENV} must be at least 1, got {chosen!r}")
        return size
    return max(1, (os.cpu_count() or 2) // 2)


class Control:
    """What a stoppable job's work sees: `report(done, total)` its progress, `check()` between steps (raises
    Cancelled once every session that wanted the job has left or reran); `progress` is what a page shows."""

    def __init__(self):
        self._lock = threading.Lock()
        self._stop_requested = False
        self.stopped = False  # check() raised: the work is over, it cannot be taken up again
        self.done, self.total = 0, 0

    def report(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    @property
    def progress(self) -> float | None:
        """The share of the work done (0 to 1), None before the work said how much there is."""
        return min(1.0, self.done / self.total) if self.total else None

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True

    def resume(self) -> bool:
        """Take back a stop not acted on yet (a session asked for the work again); False if it stopped."""
        with self._lock:
            if self.stopped:
                return False
            self._stop_requested = False
            return True

    def check(self) -> None:
        with self._lock:
            if self._stop_requested:
                self.stopped = True
        if self.stopped:
            raise Cancelled("no session waits for this work any more")


class Job:
    """One unit of work: its key, the sessions that want it, and its outcome once it ran."""

    def __init__(self, key: Hashable, work: Callable[..., Any], stoppable: bool = False):
        self.key, self.work = key, work
        self.control = Control() if stoppable else None  # stoppable work is called as work(control)
        self.owners: set[Hashable] = set()
        self.state = "queued"  # queued, running, done, failed, cancelled
        self._finished = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job is over (done, failed or cancelled)."""
        return self._finished.wait(timeout)

    def result(self) -> Any:
        """The work's return value; its exception re-raised; Cancelled if it was dropped."""
        self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def _finish(self, state: str, result: Any = None, error: BaseException | None = None) -> None:
        self.state, self._result, self._error = state, result, error
        self._finished.set()


class WorkPool:
    """At most `size` jobs at once, in the order asked; see the module docstring."""

    def __init__(self, size: int | None = None):
        self.size = default_size() if size is None else size
        if self.size < 1:
            raise ValueError(f"a pool needs at least one worker, got {self.size}")
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[Hashable, Job] = {}  # queued or running, by key
        self._workers: list[threading.Thread] = []
        self.running = 0
        self.most_running = 0  # the most jobs ever running at once (what the tests read)

    def submit(self, key: Hashable, work: Callable[..., Any], owner: Hashable, stoppable: bool = False) -> Job:
        """The job for `key` (a new one queued, or the one already queued or running), wanted by `owner`.
        stoppable: `work(control)` reports progress and stops when nobody wants it (see `Control`)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.control is not None and not job.control.resume():
                # a stoppable job that has stopped already: a new one (resume() takes back a stop not acted on)
                job = None
            if job is None:
                job = Job(key, work, stoppable)
                self._jobs[key] = job
                self._queue.append(job)
                self._start_workers()
                self._lock.notify()
            job.owners.add(owner)
            return job

    def ahead(self, job: Job) -> int:
        """How many queued jobs start before `job` (0: it is next, or already running or over)."""
        with self._lock:
            for position, queued in enumerate(self._queue):
                if queued is job:
                    return position
            return 0

    def drop(self, owner: Hashable) -> int:
        """`owner` no longer waits: its queued jobs that nobody else wants are cancelled (returns how many), and
        its running stoppable jobs that nobody else wants are asked to stop (they do at their next step)."""
        cancelled = []
        with self._lock:
            for job in list(self._queue):
                job.owners.discard(owner)
                if not job.owners:
                    self._queue.remove(job)
                    del self._jobs[job.key]
                    cancelled.append(job)
            for job in self._jobs.values():
                job.owners.discard(owner)
                if not job.owners and job.control is not None:
                    job.control.request_stop()
        for job in cancelled:
            job._finish("cancelled", error=Cancelled(f"no session waits for {job.key!r} any more"))
        return len(cancelled)

    def _start_workers(self) -> None:
        while len(self._workers) < self.size:
            worker = threading.Thread(target=self._serve, name=f"attnviz-worker-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._lock.wait()
                job = self._queue.popleft()
                job.state = "running"
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            try:
                outcome = ("done", job.work() if job.control is None else job.work(job.control), None)
            except Cancelled as error:
                outcome = ("cancelled", None, error)
            except BaseException as error:  # noqa: BLE001 - handed to every session that waits for it
                outcome = ("failed", None, error)
            with self._lock:
                self.running -= 1
                if self._jobs.get(job.key) is job:  # (a stopped job may have been asked for anew meanwhile)
                    del self._jobs[job.key]
            job._finish(*outcome)
            job = outcome = None  # the result is the callers' now: this thread must not keep it until the next job
