"""Whole-page runs admitted a few at a time, returning sessions first (attnviz.admission)."""

import threading
import time

import pytest

from attnviz.admission import FIRST, RETURNING, Admission


def _start(admission, priority, order, hold: threading.Event, name):
    def run():
        with admission.admitted(priority):
            order.append(name)
            hold.wait(5)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


def test_slots_bound_holders_and_returning_runs_go_first():
    admission, order, release = Admission(1), [], threading.Event()
    threads = [_start(admission, FIRST, order, release, "holder")]
    _until(lambda: order == ["holder"])
    for waiting, (name, priority) in enumerate((("first-a", FIRST), ("first-b", FIRST), ("returning", RETURNING))):
        threads.append(_start(admission, priority, order, release, name))
        _until(lambda n=waiting + 1: admission.waiting == n)
    assert admission.busy == 1 and order == ["holder"]  # one slot: everyone else waits
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["holder", "returning", "first-a", "first-b"]
    assert admission.busy == 0 and admission.waiting == 0


def test_stepping_aside_lets_the_next_run_in_and_comes_back_first():
    admission, order = Admission(1), []
    waiting_for_work, work_done = threading.Event(), threading.Event()

    def page_that_waits():
        with admission.admitted(FIRST):
            with admission.stepped_aside():
                waiting_for_work.set()
                work_done.wait(5)
            order.append("back")
            assert admission.holding()

    first = threading.Thread(target=page_that_waits)
    first.start()
    waiting_for_work.wait(5)
    with admission.admitted(FIRST):  # the slot is free while the first run waits
        order.append("other")
    work_done.set()
    first.join(5)
    assert order == ["other", "back"] and admission.busy == 0


def test_reentrant_and_released_on_errors():
    admission = Admission(1)
    with pytest.raises(RuntimeError):
        with admission.admitted(FIRST):
            with admission.admitted(RETURNING):  # a holder goes on
                assert admission.busy == 1
            raise RuntimeError("a rerun, a stop")
    assert admission.busy == 0 and not admission.holding()
    with admission.stepped_aside():  # holds nothing: nothing happens
        assert admission.busy == 0
    with pytest.raises(ValueError):
        Admission(0)


def test_a_sessions_first_page_waits_behind_its_later_runs(monkeypatch):
    """app.py's whole run (attnviz.app.queueing.admitted_page_run): FIRST for a session's first page, RETURNING
    after, and a freeze of what the run imported (a full collection then walks no torch or Plotly objects)."""
    import gc
    import sys
    import types

    from attnviz.app import queueing

    asked = []

    class Recording(Admission):
        def admitted(self, priority):
            asked.append(priority)
            return super().admitted(priority)

    monkeypatch.setattr(queueing, "st", types.SimpleNamespace(session_state={}))
    monkeypatch.setattr(queueing, "ADMISSION", Recording(1))
    monkeypatch.setattr(queueing, "_frozen_modules", [len(sys.modules) - 1])  # as if this run imported one
    try:
        with queueing.admitted_page_run():
            pass
        frozen = gc.get_freeze_count()
        with queueing.admitted_page_run():  # nothing new imported: no second freeze
            pass
        assert asked == [FIRST, RETURNING]
        assert frozen > 0 and gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
