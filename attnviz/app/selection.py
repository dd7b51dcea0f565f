"""What the sidebar chose in this run, handed to the page that app.py runs next.

A ContextVar, not session state: each session's script runs in its own thread,
and the value lives exactly as long as the run needs it. The page's own link
parameters (a pixel, a layer) travel the same way, so that app.py writes the
address bar once per run, after the page (`attnviz.app.links.write_link`).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

import numpy as np

from attnviz.app.pagesmode import leave_pages_directory_mode, running_parts_alone

__all__ = ["Selection", "RunState", "begin_run", "continue_run", "run_state", "current"]


@dataclass
class Selection:
    model_name: str
    device: str
    image: np.ndarray
    image_key: str
    image_title: str
    label: np.ndarray | None
    card: dict
    source: str = "camvid"  # the model source's key (attnviz.models.sources): "camvid", "timm" or "user"
    head: str = "fcn"  # "fcn", "danet", "classifier", or a user model's task ("segmentation", ...)
    attention: str = "none"  # the attention kind in the backbone
    weights_note: str = ""  # timm: where the weights came from (in the page's language); user: the spec
    weights_trained: bool = True  # False for a timm classifier on random weights (no file, no hub)


@dataclass
class RunState:
    """One script run: the selection (None until the sidebar made one), the page's link parameters,
    whether the address bar was written yet, and the sidebar's notices for the top of the page."""

    selection: Selection | None = None
    page_params: dict[str, str] = field(default_factory=dict)
    link_written: bool = False
    notices: list[str] = field(default_factory=list)  # what the page must say at its top (a refused upload, ...)
    entry: bool = False  # begun by app.py (False: a page file run on its own, see attnviz.app.pagesmode)


_run: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("attnviz_run", default=None)


def begin_run() -> RunState:
    """A fresh state for the run that is starting (app.py calls this first)."""
    state = RunState(entry=True)
    _run.set(state)
    return state


def continue_run(selection: Selection) -> RunState:
    """The state of a fragment's part of a run (st.fragment: a part of a page that reruns alone, without
    app.py): within a whole run, that run's; in a run of parts alone, a new one for `selection` (Streamlit may
    run it in the thread of an earlier run, whose link parameters, a pin since cleared, must not be written
    again). Either way the address bar is to be written again (the part says all of its page's parameters)."""
    state = _run.get()
    if running_parts_alone() or state is None or state.selection is None:
        state = RunState(selection=selection, entry=True)
        _run.set(state)
    state.link_written = False
    return state


def run_state() -> RunState:
    """This run's state (a fresh one if app.py has not begun the run: a page run on its own)."""
    state = _run.get()
    if state is None:
        state = RunState()  # entry False: app.py did not begin this run
        _run.set(state)
    return state


def current() -> Selection | None:
    """The selection the sidebar made in this run (None if it made none: no loadable model)."""
    state = _run.get()
    leave_pages_directory_mode(run_by_entry=state is not None and state.entry)
    return run_state().selection
