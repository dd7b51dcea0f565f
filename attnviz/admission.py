"""Whole-page runs admitted a few at a time, the sessions already on a page before new ones.

Streamlit runs each session's script in a thread of its own, and Python runs one thread at a time (the GIL):
200 students opening a page within 5 s are 200 runs of about 28 ms of server time, all sharing one core, each
slowed by all the others, and a pin (a part of a page rerunning alone, about 10 ms) waits its turn among them.
With at most `slots` whole runs at once, the others wait in order and a pin shares the core with those few
only. The order: a run of a session that has shown a page before (a photo changed, a control moved) before a
session's first page; arrival order within each. A run that waits for model work (attnviz.app.queueing)
steps aside (`stepped_aside`) so that the next run can go on meanwhile.

Parts of a page rerunning alone (st.fragment: a pin, a hovered row chosen) are not admitted here: they are
what this ordering is for. No Streamlit here: app.py admits its run, queueing steps aside.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
from collections.abc import Iterator

__all__ = ["Admission", "RETURNING", "FIRST", "default_slots", "ADMISSION"]

RETURNING, FIRST = 0, 1  # priorities: a session's later runs first, then first pages
SLOTS_ENV = "ATTNVIZ_PAGE_RUNS"


def default_slots() -> int:
    """$ATTNVIZ_PAGE_RUNS, else 1. Measured with 200 sessions arriving over 5 s (python -m attnviz.load_bench,
    no uploads, 2 cores): one whole run at a time gave pins p95 0.68 s and first pages p50 0.33 s, four at a
    time 2.72 s and 1.08 s. Runs that share the one core Python runs on only slow each other, and a run that
    waits for model work steps aside."""
    chosen = os.environ.get(SLOTS_ENV, "").strip()
    if not chosen:
        return 1
    if not chosen.isdigit() or int(chosen) < 1:
        raise ValueError(f"${SLOTS_ENV} must be a whole number of at least 1, got {chosen!r}")
    return int(chosen)


class Admission:
    """At most `slots` holders at once; waiting threads admitted by (priority, arrival), each woken alone
    when its slot is handed over (no herd of 200 threads woken per release)."""

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError(f"at least one slot, got {slots}")
        self.slots = slots
        self._busy = 0
        self._waiting: list[tuple[int, int, threading.Event]] = []  # a heap of (priority, ticket, wake-up)
        self._tickets = itertools.count()
        self._lock = threading.Lock()
        self._held = threading.local()  # this thread's priority while it holds a slot

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _acquire(self, priority: int) -> None:
        with self._lock:
            if self._busy < self.slots and not self._waiting:
                self._busy += 1
                self._held.priority = priority
                return
            turn = threading.Event()
            heapq.heappush(self._waiting, (priority, next(self._tickets), turn))
        turn.wait()  # set by a release, which has counted this thread in `_busy` already
        self._held.priority = priority

    def _release(self) -> None:
        self._held.priority = None
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()  # the slot passes to the first in line
            else:
                self._busy -= 1

    def holding(self) -> bool:
        return getattr(self._held, "priority", None) is not None

    @contextlib.contextmanager
    def admitted(self, priority: int) -> Iterator[None]:
        """Hold a slot for the block (re-entrant: a thread that holds one goes on)."""
        if self.holding():
            yield
            return
        self._acquire(priority)
        try:
            yield
        finally:
            if self.holding():
                self._release()

    @contextlib.contextmanager
    def stepped_aside(self) -> Iterator[None]:
        """Give this thread's slot up for the block (a wait for other work), and take one again after it, ahead
        of first pages. Nothing happens for a thread that holds none."""
        priority = getattr(self._held, "priority", None)
        if priority is None:
            yield
            return
        self._release()
        try:
            yield
        finally:
            self._acquire(RETURNING)


ADMISSION = Admission(default_slots())  # this process's
