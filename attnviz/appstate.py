"""Streamlit glue shared by app.py and the pages: the sidebar, caches, links, downloads, the selection.

The only module of the package that imports Streamlit. Models are cached per
(name, device, folder) with st.cache_resource; the analysis of a photo (one
forward pass with capture) per (model, device, image hash); attributions per
(model, photo, pixel). A click on a page then only computes one row or column
from the cached analysis.
"""
from __future__ import annotations

import argparse
import contextvars
import copy
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.pages_manager import PagesManager

from attnviz.analysis import (Analysis, analyse, analyse_classifier, click_to_image_point, image_to_tensor,
                              parse_image_point, pick_device)
from attnviz.attribution import grad_cam, integrated_gradients
from attnviz.data.images import MAX_UPLOAD_BYTES, ImageError, decode_image
from attnviz.data.samples import SAMPLE_ATTRIBUTION, list_samples, load_sample
from attnviz.models import CheckpointError, load_checkpoint
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR as SHIPPED_CHECKPOINT_DIR
from attnviz.models.checkpoint import CheckpointInfo, scan_checkpoints
from attnviz.models.imagenet import IMAGENET_MODELS, WEIGHTS_ENV, load_imagenet_model
from attnviz.results import read_results
from attnviz.text import markdown_literal
from attnviz.viz.figures import extreme_channels_figure

__all__ = ["Selection", "sidebar", "current", "page_analysis", "analysis_for", "require_models", "catalogue",
           "checkpoint_dir", "results", "get_model", "get_analysis", "get_classifier", "get_classifier_analysis",
           "pixel_grad_cam", "pixel_integrated_gradients", "chart", "download", "layer_picker",
           "extreme_channels", "chosen_pixel", "switch_button", "link_value", "link_note", "apply_link", "write_link"]

UPLOAD_CHOICE = "Upload your own photo…"
SOURCES = ("CamVid segmentation (shipped)", "ImageNet classifier (timm)")
# What sidebar() chose in this run, for the page that app.py runs next. A ContextVar, not session state:
# each session's script runs in its own thread, and the value lives exactly as long as the run needs it.
_selection: contextvars.ContextVar["Selection | None"] = contextvars.ContextVar("attnviz_selection", default=None)


@dataclass
class Selection:
    model_name: str
    device: str
    image: np.ndarray
    image_key: str
    image_title: str
    label: np.ndarray | None
    card: dict
    source: str = "camvid"      # "camvid" (our segmentation models) or "timm" (an ImageNet classifier)
    head: str = "fcn"           # "fcn", "danet", or "classifier"
    attention: str = "none"     # the attention kind in the backbone
    weights_note: str = ""      # timm: where the weights came from


def checkpoint_dir() -> Path:
    """The folder the app's models come from: `streamlit run app.py -- --checkpoints DIR`, else
    $ATTNVIZ_CHECKPOINTS, else the shipped checkpoints/."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoints", type=Path, default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return Path(known.checkpoints or os.environ.get("ATTNVIZ_CHECKPOINTS") or SHIPPED_CHECKPOINT_DIR)


def results() -> dict:
    """results.json of the checkpoint folder ({} when missing or unreadable)."""
    return read_results(checkpoint_dir() / "results.json")


@st.cache_resource(max_entries=12, show_spinner="Loading the model…")
def get_model(name: str, device: str, directory: str):
    return load_checkpoint(name, directory, device=device)


@st.cache_resource(max_entries=4, show_spinner="Loading the ImageNet model…")
def get_classifier(arch: str, device: str, weights_folder: str):
    model, weights = load_imagenet_model(arch, weights_folder or None)
    return model.to(device), weights


@st.cache_resource(max_entries=24, show_spinner="Running the classifier on the photo…")
def get_classifier_analysis(arch: str, device: str, weights_folder: str, image_key: str,
                            _image: np.ndarray) -> Analysis:
    model, _ = get_classifier(arch, device, weights_folder)
    return analyse_classifier(model, _image, arch)


@st.cache_resource(max_entries=48, show_spinner="Running the model on the photo…")
def get_analysis(name: str, device: str, directory: str, image_key: str, _image: np.ndarray) -> Analysis:
    model, _ = get_model(name, device, directory)
    return analyse(model, _image, name)


@st.cache_data(max_entries=64, show_spinner=False)
def pixel_grad_cam(name: str, device: str, directory: str, image_key: str, _image: np.ndarray,
                   target: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of logit (class, y, x): (at the feature grid, upsampled to the photo); cached per pixel.

    Runs on a private copy of the cached model: captum hooks the model's layers while it attributes,
    and another session's forward pass on the shared model must not pass through those hooks.
    """
    model, _ = get_model(name, device, directory)
    cam, full = grad_cam(copy.deepcopy(model), image_to_tensor(_image, device), target)
    return cam.cpu().numpy(), full.cpu().numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def pixel_integrated_gradients(name: str, device: str, directory: str, image_key: str, _image: np.ndarray,
                               target: tuple[int, int, int], steps: int) -> np.ndarray:
    """Integrated Gradients (3, H, W) of logit (class, y, x) against a black photo; cached per pixel and steps."""
    model, _ = get_model(name, device, directory)
    ig = integrated_gradients(copy.deepcopy(model), image_to_tensor(_image, device), target, steps=steps)
    return ig.cpu().numpy()


@st.cache_data(max_entries=16)
def _sample(name: str):
    sample = load_sample(name)
    return sample.image, sample.label


@st.cache_data(max_entries=8, show_spinner=False)
def _decode(data: bytes) -> np.ndarray:
    return decode_image(data)


def catalogue() -> dict[str, CheckpointInfo]:
    """The loadable checkpoints by name; those that cannot load are listed in the sidebar with the reason."""
    usable, _ = scan_checkpoints(checkpoint_dir())
    return {info.name: info for info in usable}


# ----------------------------------------------------------------------------- figures
FIGURE_FORMATS = {"PNG": "png", "SVG": "svg"}


def chart(where, figure, key: str, **kwargs):
    """st.plotly_chart in `where` (st, a column, ...), its camera button saving in the sidebar's format."""
    fmt = FIGURE_FORMATS.get(st.session_state.get("figure_format", "PNG"), "png")
    config = {"toImageButtonOptions": {"format": fmt, "filename": f"attnviz-{key}", "scale": 2 if fmt == "png" else 1},
              "displaylogo": False}
    return where.plotly_chart(figure, key=key, config=config, **kwargs)


def download(where, label: str, data, file_name: str, key: str) -> None:
    """A download button that does not rerun the page (CSV as text/csv, PNG as image/png)."""
    mime = "text/csv" if file_name.endswith(".csv") else "image/png"
    where.download_button(label, data, file_name=file_name, mime=mime, key=key, on_click="ignore",
                          icon=":material/download:")


def layer_picker(names: list[str], key: str, format_func) -> str:
    """The layer select box of a channel-attention page: the link's ?layer= first, else the last layer."""
    apply_link("layer", key, names, what="no such layer in this model")
    if st.session_state.get(key) not in names:
        st.session_state[key] = names[-1]
    return st.selectbox("Layer", names, key=key, format_func=format_func)


def extreme_channels(features, weights, key: str) -> None:
    """The input feature maps of a layer's most and least weighted channels (when features were kept)."""
    if features is None:
        return
    count = st.slider("Channels to show", 2, 8, 4, key=f"{key}_count")
    st.markdown(f"**Input feature maps of the {count} most (top row) and least (bottom row) weighted channels** "
                "(each scaled to its own range):")
    chart(st, extreme_channels_figure(features[0].numpy(), weights, count), key=f"{key}_features")


# ----------------------------------------------------------------------------- links
# The URL holds the view: the page (Streamlit's own URL path), ?model=&photo= for every page, and each page's
# own parameters (the position page's x, y and mode, the channel page's channel, a layer). A link is read once,
# on a session's first run; afterwards every run writes the current view back into the address bar.
_LINK = "_link_pending"
_PIXEL = "chosen_pixel"  # (x, y) in photo pixels, shared by the Position and Attribution pages


def _read_link_once() -> dict[str, str]:
    if _LINK not in st.session_state:
        st.session_state[_LINK] = {key: st.query_params[key] for key in st.query_params}
    return st.session_state[_LINK]


def link_value(name: str) -> str | None:
    """A parameter of the link this session was opened with, handed out once (None if absent)."""
    return _read_link_once().pop(name, None)


def link_note(text: str) -> None:
    """Say that a link parameter was ignored, and why (a toast: a note, not an error)."""
    st.toast(text, icon=":material/link_off:")


def apply_link(name: str, session_key: str, allowed, convert=str, what: str = "") -> None:
    """If the link has `name`, put it (converted) into st.session_state[session_key] when it is one of
    `allowed` (a collection, or a predicate); otherwise note that it was ignored."""
    raw = link_value(name)
    if raw is None:
        return
    try:
        value = convert(raw)
        fits = allowed(value) if callable(allowed) else value in allowed
    except (TypeError, ValueError, KeyError):
        fits = False
    if fits:
        st.session_state[session_key] = value
    else:
        link_note(f"{name}={markdown_literal(raw)} ignored: {what or 'not available here'}")


def chosen_pixel(click_key: str, image_hw: tuple[int, int]) -> tuple[int, int, bool]:
    """(x, y, chosen) of the pixel the Position and Attribution pages share: from the link (once), then
    from each new click on the image widget `click_key`; the photo's centre (chosen False) until then.

    x, y are the integer photo pixel (attnviz.geometry), snapped once where the click or link enters:
    the text shown, the link written and the feature cell all use these same integers."""
    height, width = image_hw
    link_x, link_y = link_value("x"), link_value("y")
    if link_x is not None or link_y is not None:
        point = parse_image_point(link_x, link_y, image_hw)
        if point is None:
            link_note(f"pixel x={markdown_literal(link_x)}, y={markdown_literal(link_y)} ignored: "
                      f"not inside the {width}x{height} photo")
        else:
            st.session_state[_PIXEL] = point
    click = st.session_state.get(click_key)
    if click and click != st.session_state.get(f"{click_key}_last"):
        st.session_state[f"{click_key}_last"] = click
        st.session_state[_PIXEL] = click_to_image_point(click, image_hw)
    point = st.session_state.get(_PIXEL)
    point = None if point is None else parse_image_point(*point, image_hw)  # still inside this photo?
    if point is None:
        return width // 2, height // 2, False
    return point[0], point[1], True


def write_link(**page_params) -> None:
    """Put the current view into the address bar: model, photo (samples only) and the page's parameters."""
    selection = _selection.get()
    params = {}
    if selection is not None:
        if selection.source == "timm":
            params["source"] = "timm"
        params["model"] = selection.model_name
        if selection.image_title in list_samples():
            params["photo"] = selection.image_title
    params.update({k: str(v) for k, v in page_params.items() if v is not None})
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def _model_picker(bar) -> CheckpointInfo | None:
    """The model select box over the loadable checkpoints; the others listed with their reasons."""
    directory = checkpoint_dir()
    usable, problems = scan_checkpoints(directory)
    models = {info.name: info for info in usable}
    if problems:
        with bar.expander(f"{len(problems)} checkpoint(s) cannot be loaded"):
            for name, reason in problems.items():
                st.text(f"{name}: {reason}")
    if not models:
        bar.error(f"No loadable checkpoints in {directory}. Train one: python -m attnviz.train --models danet-eca "
                  f"--checkpoints {directory}")
        return None
    names = list(models)
    apply_link("model", "model", names, what="no loadable checkpoint of that name")
    if st.session_state.get("model") not in names:
        st.session_state["model"] = "danet-eca" if "danet-eca" in names else names[0]
    name = bar.selectbox("Model", names, key="model", format_func=lambda n: models[n].label,
                         help="Trained on CamVid; see the Overview page for each model's card.")
    bar.caption(models[name].title)
    return models[name]


def _photo_picker(bar) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(image, label or None, title): a sample photo, or a usable upload."""
    samples = list_samples()
    apply_link("photo", "sample", samples, what="no sample photo of that name")
    choice = bar.selectbox("Photo", samples + [UPLOAD_CHOICE], key="sample",
                           help="CamVid test photos (with ground-truth labels) or your own photo.")
    if choice == UPLOAD_CHOICE:
        upload = bar.file_uploader("JPEG, PNG, WebP or BMP", type=["jpg", "jpeg", "png", "webp", "bmp"],
                                   key="upload", help=f"At most {MAX_UPLOAD_BYTES // 2 ** 20} MB; large photos are "
                                                      "scaled down to 1024 pixels on the longer side.")
        if upload is not None:
            try:
                image = _decode(upload.getvalue())
                bar.caption("An uploaded photo is not part of the page's link: a link opens a sample photo.")
                return image, None, upload.name
            except ImageError as error:
                bar.error(f"{markdown_literal(upload.name)}: {error}")
        bar.info("No usable upload yet: showing the first sample.")
        choice = samples[0]
    image, label = _sample(choice)
    return image, label, choice


def _timm_picker(bar, device: str) -> tuple[str, str]:
    """(architecture, where its weights come from) of the ImageNet classifier chosen in the sidebar."""
    names = list(IMAGENET_MODELS)
    apply_link("model", "timm_model", names, what="not one of the ImageNet models offered")
    if st.session_state.get("timm_model") not in names:
        st.session_state["timm_model"] = names[0]
    arch = bar.selectbox("ImageNet model", names, key="timm_model",
                         format_func=lambda a: f"{a} ({IMAGENET_MODELS[a][0].upper()})",
                         help="timm classifiers with channel attention in every block; the ECA and "
                              "Flexible/SE pages show their weights.")
    _, weights = get_classifier(arch, device, os.environ.get(WEIGHTS_ENV, ""))
    if weights.trained:
        bar.caption(f"{IMAGENET_MODELS[arch][1]}: {weights.description}.")
    else:
        bar.warning(f"**{IMAGENET_MODELS[arch][1]} has {weights.description}.** Put the weights file in a folder "
                    f"and set ${WEIGHTS_ENV} to it (see the README), or run where the hub can be reached.")
    return arch, weights.description


def _device_picker(bar) -> str:
    if torch.cuda.is_available():
        return bar.radio("Device", ["cuda", "cpu"], key="device", horizontal=True,
                         help=f"GPU: {torch.cuda.get_device_name(0)}")
    device = str(pick_device())
    bar.markdown(f"**Device:** `{device}` (no GPU found: running on the CPU)")
    return device


def sidebar() -> Selection | None:
    """Draw the shared sidebar (model source and model, photo, figure format, device) and keep the
    selection for the page."""
    _selection.set(None)
    bar = st.sidebar
    bar.header("Model and photo")
    _read_link_once()
    apply_link("source", "source", {"camvid": SOURCES[0], "timm": SOURCES[1]}.values(),
               convert={"camvid": SOURCES[0], "timm": SOURCES[1]}.__getitem__, what="use camvid or timm")
    source = bar.radio("Model source", SOURCES, key="source",
                       help="Our CamVid segmentation models (every page), or a real ImageNet classifier from timm "
                            "(Overview, ECA and Flexible/SE pages).")
    device = _device_picker(bar)
    if source == SOURCES[1]:
        arch, note = _timm_picker(bar, device)
        kind = IMAGENET_MODELS[arch][0]
        model_fields = dict(model_name=arch, card={}, source="timm", head="classifier", attention=kind,
                            weights_note=note)
    else:
        model = _model_picker(bar)
        if model is None:
            return None
        model_fields = dict(model_name=model.name, card=model.card, source="camvid", head=model.config.head,
                            attention=model.config.attention)
    image, label, title = _photo_picker(bar)
    bar.caption(SAMPLE_ATTRIBUTION)
    bar.radio("Figure download (camera icon of each chart)", list(FIGURE_FORMATS), key="figure_format",
              horizontal=True, help="PNG for slides, SVG for papers: vector graphics that scale without blur.")
    key = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]
    selection = Selection(device=device, image=image, image_key=key, image_title=title, label=label,
                          **model_fields)
    _selection.set(selection)
    write_link()
    return selection


def current() -> Selection | None:
    """The selection the sidebar made in this run (app.py draws the sidebar, then runs the page).

    app.py is the one entry. Streamlit, seeing a pages/ folder beside it, runs a page file on its own
    (its older multipage mode) until the first st.navigation call of the server process: on a fresh
    server opened at a page's URL, and in every AppTest run. Such a run is turned into a rerun of
    app.py, which calls st.navigation and so ends that mode for good.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    return _selection.get()


def analysis_for(selection: Selection, name: str | None = None) -> Analysis | None:
    """The analysis of the selected model on the selected photo, or of CamVid checkpoint `name`."""
    if name is None and selection.source == "timm":
        return get_classifier_analysis(selection.model_name, selection.device, os.environ.get(WEIGHTS_ENV, ""),
                                       selection.image_key, selection.image)
    name = name or selection.model_name
    try:
        return get_analysis(name, selection.device, str(checkpoint_dir()), selection.image_key, selection.image)
    except CheckpointError as error:
        st.error(f"Model {name} could not be loaded: {error}")
        return None


def _switch_model(name: str) -> None:
    st.session_state["source"] = SOURCES[0]
    st.session_state["model"] = name


def switch_button(where, name: str, label: str | None = None) -> None:
    """A button that switches the sidebar to CamVid checkpoint `name`."""
    where.button(label or name, key=f"switch-{name}", on_click=_switch_model, args=(name,))


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

    def fits(head: str, kind: str) -> bool:
        return (not prefixes or head in prefixes) and (not attention or kind in attention)

    if fits(selection.head, selection.attention):
        return True
    options = [n for n, info in models.items() if fits(info.config.head, info.config.attention)]
    st.info(f"**{markdown_literal(selection.model_name)}** has no {what}. Switch to a CamVid model that has:")
    if not options:
        st.warning("No shipped checkpoint has one.")
    for column, name in zip(st.columns(max(1, len(options))), options):
        switch_button(column, name)
    return False
