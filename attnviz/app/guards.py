"""What a page needs before it can draw: a selection, a model that fits the page, its analysis.

When something is missing the guard explains it, offers a way on (buttons to a
model that fits), writes the address bar and stops the page (`stop_page`):
pages call st.stop() only through it, so a stopped page still leaves a link.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from attnviz.analysis import Analysis
from attnviz.app.links import write_link
from attnviz.app.resources import catalogue, checkpoint_dir, get_analysis, get_classifier_analysis, get_user_analysis
from attnviz.app.selection import Selection, current
from attnviz.app.settings import settings
from attnviz.app.widgets import switch_button
from attnviz.models import CheckpointError
from attnviz.text import markdown_literal

__all__ = ["stop_page", "analysis_for", "page_analysis", "page_selection", "require_models", "offer_models",
           "companion_panels"]


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
    if name is None and selection.source == "user":
        try:
            return get_user_analysis(selection.model_name, selection.device, selection.image_key, selection.image)
        except Exception as error:  # noqa: BLE001 - the user's own forward pass may raise anything
            st.error(f"Your model {markdown_literal(selection.model_name)} failed on this photo: "
                     f"{markdown_literal(f'{type(error).__name__}: {error}', 400)}")
            return None
    if name is None and selection.source == "timm":
        return get_classifier_analysis(selection.model_name, selection.device, settings().imagenet_weights,
                                       selection.image_key, selection.image)
    name = name or selection.model_name
    try:
        return get_analysis(name, selection.device, str(checkpoint_dir()), selection.image_key, selection.image)
    except CheckpointError as error:
        st.error(f"Model {markdown_literal(name)} could not be loaded: {markdown_literal(str(error), 400)}")
        return None


def page_analysis(prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (), what: str = "",
                  needs: Callable[[Analysis], bool] | None = None) -> tuple[Selection, Analysis]:
    """The selection and its analysis for a page; stops the page (with an explanation) when there is none.

    Our models fit a page by their head (`prefixes`) and attention kind (`attention`), known without
    running them; a user's model fits when its analysis has what the page draws (`needs`): a recognised
    and verified module of the right family.
    """
    selection = page_selection()
    if selection.source != "user" and (prefixes or attention) and not require_models(selection, prefixes,
                                                                                     attention, what):
        stop_page()
    analysis = analysis_for(selection)
    if analysis is None:
        stop_page()
    if selection.source == "user" and needs is not None and not needs(analysis):
        st.info(f"**{markdown_literal(selection.model_name)}** has no {what} that attnviz recognised and "
                "verified (the Overview lists what it found). Switch to a CamVid model that has one:")
        offer_models(prefixes, attention)
        stop_page()
    return selection, analysis


def _fits(prefixes: tuple[str, ...], attention: tuple[str, ...], head: str, kind: str) -> bool:
    return (not prefixes or head in prefixes) and (not attention or kind in attention)


def offer_models(prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = ()) -> None:
    """Buttons to the CamVid models that fit a page (by head and attention kind), or say there is none."""
    options = [n for n, info in catalogue().items() if _fits(prefixes, attention, info.config.head,
                                                             info.config.attention)]
    if not options:
        st.warning("No shipped checkpoint has one.")
    for column, name in zip(st.columns(max(1, len(options))), options):
        switch_button(column, name)


def require_models(selection: Selection, prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (),
                   what: str = "") -> bool:
    """True if the selected model fits this page; else explain and offer buttons to switch."""
    if _fits(prefixes, attention, selection.head, selection.attention):
        return True
    st.info(f"**{markdown_literal(selection.model_name)}** has no {what}. Switch to a CamVid model that has:")
    offer_models(prefixes, attention)
    return False


def companion_panels(selection: Selection, analysis: Analysis, module_name: str) -> dict:
    """What the Position page can show beside the chosen module on the same pixel: the other CamVid models
    with position attention (each analysed on the same photo when asked), or the other spatial attention
    modules of the same model. label -> a function returning (title, model name, module name, record)."""
    options = {}
    for other, record in analysis.spatial_attention.items():
        if other != module_name:
            options[f"module {other}"] = (lambda o=other, r=record:
                                          (f"{selection.model_name}: {o}", selection.model_name, o, r))
    if selection.source == "camvid":
        for name, info in catalogue().items():
            if name != selection.model_name and info.config.head == "danet":
                options[name] = lambda n=name: _first_spatial(selection, n)
    return options


def _first_spatial(selection: Selection, name: str):
    other = analysis_for(selection, name)
    if other is None or not other.spatial_attention:
        stop_page()
    module, record = next(iter(other.spatial_attention.items()))
    return f"{name}: {module}", name, module, record
