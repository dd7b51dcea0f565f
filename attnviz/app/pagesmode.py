"""The one place that touches Streamlit internals: leaving its pages/-folder mode, and telling a run of a page's
fragments alone from a whole run (`running_parts_alone`).

app.py is the one entry. Streamlit, seeing a pages/ folder beside it, runs a
page file on its own (its older multipage mode) until the first st.navigation
call of the server process: on a fresh server opened at a page's URL, and in
every AppTest run. Such a run is turned into a rerun of app.py, which calls
st.navigation and so ends that mode for good. Several sessions can start in that
mode at once (a class opening a fresh server's link together): the first one ends
the mode for all, so the others' page runs are known by app.py not having begun
them, and are rerun too (they showed a page with no sidebar and nothing on it).
Tested in tests/test_app.py and, on a fresh server, in tests/test_browser.py and
tests/test_classroom.py.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

__all__ = ["leave_pages_directory_mode", "running_parts_alone"]


def leave_pages_directory_mode(run_by_entry: bool = True) -> None:
    """If this run is a page file run on its own (in the pages/-folder mode, or begun in it before another
    session ended it: `run_by_entry` False), rerun the app's entry instead. Only where the entry is app.py:
    a page file served as the entry itself (`streamlit run pages/x.py`) would otherwise rerun for ever."""
    ctx = get_script_run_ctx()
    entry_is_app = ctx is not None and Path(ctx.main_script_path).name == "app.py"
    if PagesManager.uses_pages_directory or (not run_by_entry and entry_is_app):
        PagesManager.uses_pages_directory = False
        st.rerun()


def running_parts_alone() -> bool:
    """Whether this run reruns some of the page's fragments (st.fragment) alone, not the whole script."""
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)
