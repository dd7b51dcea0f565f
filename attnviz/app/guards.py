"""What a page needs before it can draw: a selection, a model that fits the page, its analysis.

When something is missing the guard explains it, offers a way on (buttons to a
model that fits), writes the address bar and stops the page (`stop_page`):
pages call st.stop() only through it, so a stopped page still leaves a link.
"""
from __future__ import annotations

import streamlit as st

from attnviz.analysis import Analysis
from attnviz.app.links import write_link
from attnviz.app.resources import catalogue, checkpoint_dir, get_analysis, get_classifier_analysis
from attnviz.app.selection import Selection, current
from attnviz.app.settings import settings
from attnviz.app.widgets import switch_button
from attnviz.models import CheckpointError
from attnviz.text import markdown_literal

__all__ = ["stop_page", "analysis_for", "page_analysis", "page_selection", "require_models"]


def stop_page() -> None:
    """Write the address bar, then stop the page here."""
    write_link()
    st.stop()


def page_selection() -> Selection:
    """The run's selection; stops the page when the sidebar could make none (it says why)."""
    selection = current()
    if selection is None:
        stop_page()
    return selection


def analysis_for(selection: Selection, name: str | None = None) -> Analysis | None:
    """The analysis of the selected model on the selected photo, or of CamVid checkpoint `name`."""
    if name is None and selection.source == "timm":
        return get_classifier_analysis(selection.model_name, selection.device, settings().imagenet_weights,
                                       selection.image_key, selection.image)
    name = name or selection.model_name
    try:
        return get_analysis(name, selection.device, str(checkpoint_dir()), selection.image_key, selection.image)
    except CheckpointError as error:
        st.error(f"Model {markdown_literal(name)} could not be loaded: {markdown_literal(str(error), 400)}")
        return None


def page_analysis(prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (),
                  what: str = "") -> tuple[Selection, Analysis]:
    """The selection and its analysis for a page; stops the page (with an explanation) when there is none."""
    selection = page_selection()
    if (prefixes or attention) and not require_models(selection, prefixes, attention, what):
        stop_page()
    analysis = analysis_for(selection)
    if analysis is None:
        stop_page()
    return selection, analysis


def require_models(selection: Selection, prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (),
                   what: str = "") -> bool:
    """True if the selected model fits this page; else explain and offer buttons to switch."""
    def fits(head: str, kind: str) -> bool:
        return (not prefixes or head in prefixes) and (not attention or kind in attention)

    if fits(selection.head, selection.attention):
        return True
    options = [n for n, info in catalogue().items() if fits(info.config.head, info.config.attention)]
    st.info(f"**{markdown_literal(selection.model_name)}** has no {what}. Switch to a CamVid model that has:")
    if not options:
        st.warning("No shipped checkpoint has one.")
    for column, name in zip(st.columns(max(1, len(options))), options):
        switch_button(column, name)
    return False
