"""The app's side of attnviz.workpool: one pool per server process, and a page that waits for its job.

A page asks `pooled(key, work)` for a model's analysis of a photo. Work the caches most likely still hold
(one of the last few keys this process finished) runs at once in the session's thread: a cache hit must not
queue behind another student's forward pass. Anything else becomes a job of the shared pool; while it waits
the page says how many jobs are ahead of it ("the server is busy: 2 ahead of you"), then that it is running,
or, for stoppable work (Integrated Gradients), a progress bar over its steps and a Cancel button. A session
that reruns or leaves while waiting (Streamlit stops its script) drops its queued job, and its running
stoppable one unless it asks for it again at once.

Whole-page runs are admitted a few at a time, a session's later runs before first pages (attnviz.admission):
`admitted_page_run` is app.py's; a page waiting for a job steps aside meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import streamlit as st

from attnviz.admission import ADMISSION, FIRST, RETURNING
from attnviz.app import keys
from attnviz.app.language import t
from attnviz.workpool import WorkPool

__all__ = ["pooled", "pooled_quietly", "admitted_page_run"]

_POOL = WorkPool()  # this process's pool (its size: attnviz.workpool.default_size)
# the last keys finished or asked for again, for work whose cache cannot say what it holds: their results are
# most likely still cached. Fewer than the smallest cache of such results holds (st.cache_data 64 of
# pixel_grad_cam in attnviz.app.resources; it drops the least recently used, as this does), so that a key the
# caches have dropped is not run outside the pool. It was 8: in a class where a few students upload photos,
# a sample photo's analysis fell out of these 8 while still cached, and switching to it queued behind the
# uploads' forward passes and Integrated Gradients (python -m attnviz.load_bench, photo p95 4.8 s at 30 sessions)
_finished: OrderedDict[Hashable, None] = OrderedDict()
_finished_lock = threading.Lock()
_MAX_FINISHED = 40
_POLL_S = 0.25


def _session_token() -> str:
    if keys.WORK_OWNER not in st.session_state:
        st.session_state[keys.WORK_OWNER] = uuid.uuid4().hex
    return st.session_state[keys.WORK_OWNER]


def pooled(
    key: Hashable,
    work: Callable[..., Any],
    running: str,
    stoppable: bool = False,
    cancel: tuple[str, str, Callable[[], None]] | None = None,
    cached: bool | None = None,
) -> Any:
    """`work()`'s result, computed in the shared pool unless this process has finished `key` before.
    `running`: what the page says while the job runs (in its language).

    stoppable: `work(control)` reports its progress (a progress bar while it runs) and stops between its steps
    once nobody waits (attnviz.workpool.Control); `cancel` = (label, button key, on_click): a button under the
    bar that stops it (its click reruns the page, which drops this session's wait; on_click says why).
    cached: whether the result's own cache holds it now (attnviz.sizedcache); None: judged from the keys this
    process finished lately."""
    with _finished_lock:
        known = not stoppable and (key in _finished if cached is None else cached)  # stoppable: always pooled
        if known and key in _finished:
            _finished.move_to_end(key)  # asked for again: the caches' least-recently-used order too
    if known:
        return work()
    owner = _session_token()
    job = _POOL.submit(key, work, owner, stoppable=stoppable)
    place, button = st.empty(), st.empty()
    if cancel is not None:
        label, button_key, on_click = cancel
        button.button(label, key=button_key, on_click=on_click, icon=":material/stop_circle:")
    try:
        with ADMISSION.stepped_aside():  # another page runs while this one waits for its job
            result = _wait(job, place, running)
    finally:
        if not job.wait(0):
            _POOL.drop(owner)  # the script stopped while waiting (a rerun, a Cancel, a closed tab)
        place.empty()
        button.empty()
    with _finished_lock:
        _finished[key] = None
        _finished.move_to_end(key)
        while len(_finished) > _MAX_FINISHED:
            _finished.popitem(last=False)
    return result


def _wait(job, place, running: str) -> Any:
    """The job's result; meanwhile `place` says how many jobs are ahead, that it runs, or its progress."""
    while not job.wait(_POLL_S):
        ahead = _POOL.ahead(job)
        progress = job.control.progress if job.control is not None else None
        if ahead:
            place.info(t("pool.waiting", ahead=ahead), icon=":material/hourglass_top:")
        elif progress is not None:
            place.progress(progress, text=t("pool.progress", done=job.control.done, total=job.control.total))
        else:
            place.info(running, icon=":material/hourglass_top:")
    return job.result()


@contextlib.contextmanager
def admitted_page_run():
    """app.py's whole run, admitted by attnviz.admission: this session's first page after the later runs of
    sessions already on a page (a photo changed, a control moved)."""
    priority = RETURNING if keys.PAGE_SHOWN in st.session_state else FIRST
    st.session_state[keys.PAGE_SHOWN] = True
    with ADMISSION.admitted(priority):
        yield
        _freeze_long_lived()
        _collect_now_and_then()


_frozen_modules = [0]  # len(sys.modules) at the last gc.freeze
FULL_COLLECTION_EVERY_S = 2.0
_last_full_collection = [0.0]


def _collect_now_and_then() -> None:
    """A full collection after a whole run, at most every FULL_COLLECTION_EVERY_S. Streamlit runs a page in a
    fresh module namespace, and its functions refer to that namespace (their globals): each run leaves a
    reference cycle holding what the page kept at its top level, the analysis included (61 MB for a 768x1024
    upload). Python collects such cycles only in its rare full collections, which count objects, not bytes: in
    a class where students upload photos, the dead analyses piled up (python -m attnviz.load_bench, issue 31).
    After gc.freeze a full collection takes 0.03 to 0.07 s; Streamlit's own runner.postScriptGC ran one after
    every run, before the freeze 0.08 to 0.11 s each."""
    now = time.monotonic()
    if now - _last_full_collection[0] < FULL_COLLECTION_EVERY_S:
        return
    _last_full_collection[0] = now
    gc.collect()


def _freeze_long_lived() -> None:
    """After a whole run that imported modules (a page's first visit in this process), move everything alive
    into Python's permanent generation (gc.freeze), so that the full collections Python runs now and then
    stop walking torch's, Plotly's and Streamlit's objects: with 200 sessions one took 0.16-0.25 s holding the
    GIL, and no session moved meanwhile (python -m attnviz.load_bench, issue 31). Frozen objects are still
    freed when nothing refers to them; a cycle among them is not, so a collection runs first. A few times per
    process: once per page whose first run imported something."""
    modules = len(sys.modules)
    if modules <= _frozen_modules[0]:
        return
    _frozen_modules[0] = modules
    gc.collect()
    _last_full_collection[0] = time.monotonic()  # (the collection just run counts: not another one at once)
    gc.freeze()


def pooled_quietly(key: Hashable, work: Callable[[], Any]) -> Any:
    """`work()`'s result, computed in the shared pool, for a caller that can show nothing while it waits (a
    download button's callable, which Streamlit runs outside the page's script): the same key asked for by
    several sessions at once is one job, and the work queues behind the forward passes instead of beside them."""
    job = _POOL.submit(key, work, owner=uuid.uuid4().hex)
    with ADMISSION.stepped_aside():
        job.wait()
    return job.result()
