"""Streamlit glue shared by app.py and the pages: the sidebar, caches and the current selection.

The only module of the package that imports Streamlit. Models are cached per
(name, device) with st.cache_resource; the analysis of a photo (one forward
pass with capture) per (model, device, image hash). A click on a page then
only computes one row or column from the cached analysis.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from attnviz.analysis import Analysis, analyse, pick_device
from attnviz.data.images import MAX_UPLOAD_BYTES, ImageError, decode_image
from attnviz.data.samples import SAMPLE_ATTRIBUTION, list_samples, load_sample
from attnviz.models import CheckpointError, load_checkpoint
from attnviz.text import markdown_literal
from attnviz.models.checkpoint import CheckpointInfo, scan_checkpoints

__all__ = ["Selection", "sidebar", "current", "page_analysis", "get_model", "get_analysis", "require_models", "model_title",
           "catalogue"]

UPLOAD_CHOICE = "Upload your own photo…"


@dataclass
class Selection:
    model_name: str
    device: str
    image: np.ndarray
    image_key: str
    image_title: str
    label: np.ndarray | None
    card: dict


@st.cache_resource(max_entries=12, show_spinner="Loading the model…")
def get_model(name: str, device: str):
    return load_checkpoint(name, device=device)


@st.cache_resource(max_entries=48, show_spinner="Running the model on the photo…")
def get_analysis(name: str, device: str, image_key: str, _image: np.ndarray) -> Analysis:
    model, _ = get_model(name, device)
    return analyse(model, _image, name)


@st.cache_data(max_entries=16)
def _sample(name: str):
    sample = load_sample(name)
    return sample.image, sample.label


@st.cache_data(max_entries=8, show_spinner=False)
def _decode(data: bytes) -> np.ndarray:
    return decode_image(data)


def catalogue() -> dict[str, CheckpointInfo]:
    """The loadable checkpoints by name; those that cannot load are listed in the sidebar with the reason."""
    usable, _ = scan_checkpoints()
    return {info.name: info for info in usable}


def model_title(name: str) -> str:
    info = catalogue().get(name)
    return info.title if info else name


def sidebar() -> Selection | None:
    """Draw the shared sidebar and store the selection; None if no model is available."""
    usable, problems = scan_checkpoints()
    models = {info.name: info for info in usable}
    names = list(models)
    bar = st.sidebar
    bar.header("Model and photo")
    if problems:
        with bar.expander(f"{len(problems)} checkpoint(s) cannot be loaded"):
            for name, reason in problems.items():
                st.text(f"{name}: {reason}")
    if not names:
        bar.error("No loadable checkpoints in checkpoints/. Train one: python -m attnviz.train --models danet-eca")
        return None
    if st.session_state.get("model") not in names:
        st.session_state["model"] = "danet-eca" if "danet-eca" in names else names[0]
    model_name = bar.selectbox("Model", names, key="model", format_func=lambda name: models[name].label,
                               help="Trained on CamVid; see the Overview page for each model's card.")
    bar.caption(models[model_name].title)
    samples = list_samples()
    choice = bar.selectbox("Photo", samples + [UPLOAD_CHOICE], key="sample",
                           help="CamVid test photos (with ground-truth labels) or your own photo.")
    image, label, title = None, None, choice
    if choice == UPLOAD_CHOICE:
        upload = bar.file_uploader("JPEG, PNG, WebP or BMP", type=["jpg", "jpeg", "png", "webp", "bmp"],
                                   key="upload", help=f"At most {MAX_UPLOAD_BYTES // 2 ** 20} MB; large photos are scaled "
                                                      "down to 1024 pixels on the longer side.")
        if upload is not None:
            try:
                image = _decode(upload.getvalue())
                title = upload.name
            except ImageError as error:
                bar.error(f"{markdown_literal(upload.name)}: {error}")
        if image is None:
            bar.info("No usable upload yet: showing the first sample.")
            choice = samples[0]
    if image is None:
        image, label = _sample(choice)
        title = choice
    bar.caption(SAMPLE_ATTRIBUTION)
    if torch.cuda.is_available():
        device = bar.radio("Device", ["cuda", "cpu"], key="device", horizontal=True,
                           help=f"GPU: {torch.cuda.get_device_name(0)}")
    else:
        device = str(pick_device())
        bar.markdown(f"**Device:** `{device}` (no GPU found: running on the CPU)")
    key = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]
    selection = Selection(model_name, device, image, key, title, label, models[model_name].card)
    st.session_state["_selection"] = selection
    return selection


def current() -> Selection | None:
    """The selection made in the sidebar by app.py in this run.

    A page opened by its own URL on a freshly started server runs without
    app.py once (Streamlit's pages/ discovery, until a session has called
    st.navigation); then the page draws the sidebar itself.
    """
    if st.session_state.pop("_entrypoint_ran", False):
        return st.session_state.get("_selection")
    return sidebar()


def analysis_for(selection: Selection, name: str | None = None) -> Analysis | None:
    name = name or selection.model_name
    try:
        return get_analysis(name, selection.device, selection.image_key, selection.image)
    except CheckpointError as error:
        st.error(f"Model {name} could not be loaded: {error}")
        return None


def _switch_model(name: str) -> None:
    st.session_state["model"] = name


def page_analysis(prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (),
                  what: str = "") -> tuple[Selection, Analysis]:
    """The selection and its analysis for a page; stops the page (with an explanation) when there is none."""
    selection = current()
    if selection is None or ((prefixes or attention) and not require_models(selection, prefixes, attention, what)):
        st.stop()
    analysis = analysis_for(selection)
    if analysis is None:
        st.stop()
    return selection, analysis


def require_models(selection: Selection, prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (),
                   what: str = "") -> bool:
    """True if the selected model fits this page; else explain and offer buttons to switch."""
    models = catalogue()

    def fits(name: str) -> bool:
        info = models.get(name)
        return info is not None and ((not prefixes or info.config.head in prefixes)
                                     and (not attention or info.config.attention in attention))

    if fits(selection.model_name):
        return True
    options = [n for n in models if fits(n)]
    st.info(f"**{selection.model_name}** has no {what}. Switch to a model that has:")
    if not options:
        st.warning("No shipped checkpoint has one.")
    for column, name in zip(st.columns(max(1, len(options))), options):
        column.button(name, key=f"switch-{name}", on_click=_switch_model, args=(name,))
    return False
