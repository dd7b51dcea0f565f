"""The shared sidebar: model source and model, photo, figure format, device; it makes the run's Selection."""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
import torch

from attnviz.analysis import pick_device
from attnviz.app import keys
from attnviz.app.language import language_picker
from attnviz.app.links import apply_link
from attnviz.app.resources import (catalogue, catalogue_problems, checkpoint_dir, decode_upload, get_classifier,
                                   get_user_model, sample)
from attnviz.app.selection import SOURCES, Selection, run_state
from attnviz.app.settings import settings
from attnviz.app.widgets import FIGURE_FORMATS, linked_selectbox
from attnviz.data.images import MAX_UPLOAD_BYTES, ImageError
from attnviz.data.samples import SAMPLE_ATTRIBUTION, list_samples
from attnviz.models.checkpoint import CheckpointError, CheckpointInfo
from attnviz.models.imagenet import IMAGENET_MODELS, WEIGHTS_ENV
from attnviz.models.user import UserModelError
from attnviz.text import markdown_literal

__all__ = ["UPLOAD_CHOICE", "sidebar"]

UPLOAD_CHOICE = "Upload your own photo…"
_SOURCE_NAMES = {"camvid": SOURCES[0], "timm": SOURCES[1], "user": SOURCES[2]}


def _model_picker(bar) -> CheckpointInfo | None:
    """The model select box over the loadable checkpoints; the others listed with their reasons."""
    models, problems = catalogue(), catalogue_problems()
    if problems:
        with bar.expander(f"{len(problems)} checkpoint(s) cannot be loaded"):
            for name, reason in problems.items():
                st.text(f"{name}: {reason}")
    if not models:
        directory = checkpoint_dir()
        bar.error(f"No loadable checkpoints in {directory}. Train one: python -m attnviz.train --models danet-eca "
                  f"--checkpoints {directory}")
        return None
    names = list(models)
    name = linked_selectbox(bar, "Model", names, keys.MODEL, "model", "no loadable checkpoint of that name",
                            default="danet-eca" if "danet-eca" in names else None,
                            format_func=lambda n: models[n].label,
                            help="Trained on CamVid; see the Overview page for each model's card.")
    bar.caption(models[name].title)
    return models[name]


def _photo_picker(bar) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(image, label or None, title): a sample photo, or a usable upload."""
    samples = list_samples()
    apply_link("photo", keys.SAMPLE, samples, what="no sample photo of that name")
    choice = bar.selectbox("Photo", samples + [UPLOAD_CHOICE], key=keys.SAMPLE,
                           help="CamVid test photos (with ground-truth labels) or your own photo.")
    if choice == UPLOAD_CHOICE:
        upload = bar.file_uploader("JPEG, PNG, WebP or BMP", type=["jpg", "jpeg", "png", "webp", "bmp"],
                                   key=keys.UPLOAD, help=f"At most {MAX_UPLOAD_BYTES // 2 ** 20} MB; large photos "
                                                         "are scaled down to 1024 pixels on the longer side.")
        if upload is not None:
            try:
                image = decode_upload(upload.getvalue())
                bar.caption("An uploaded photo is not part of the page's link: a link opens a sample photo.")
                return image, None, upload.name
            except ImageError as error:
                bar.error(f"{markdown_literal(upload.name)}: {error}")
        bar.info("No usable upload yet: showing the first sample.")
        choice = samples[0]
    image, label = sample(choice)
    return image, label, choice


def _timm_picker(bar, device: str) -> tuple[str, str] | None:
    """(architecture, where its weights come from) of the ImageNet classifier chosen in the sidebar; None when
    it cannot be built (weights that do not fit: one message, the rest of the app keeps working)."""
    arch = linked_selectbox(bar, "ImageNet model", list(IMAGENET_MODELS), keys.TIMM_MODEL, "model",
                            "not one of the ImageNet models offered",
                            format_func=lambda a: f"{a} ({IMAGENET_MODELS[a][0].upper()})",
                            help="timm classifiers with channel attention in every block; the ECA and "
                                 "Flexible/SE pages show their weights.")
    try:
        _, weights = get_classifier(arch, device, settings().imagenet_weights)
    except CheckpointError as error:
        bar.error(f"{arch}: {markdown_literal(str(error), 400)}")
        return None
    if weights.trained:
        bar.caption(f"{IMAGENET_MODELS[arch][1]}: {weights.description}.")
    else:
        bar.warning(f"**{IMAGENET_MODELS[arch][1]} has {weights.description}.** Put the weights file in a folder "
                    f"and set ${WEIGHTS_ENV} to it (see the README), or run where the hub can be reached.")
    return arch, weights.description


def _user_picker(bar, device: str):
    """The user's model chosen in the sidebar (a UserModel), or None with one message when it cannot load."""
    config = settings()
    if config.user_models_problem:
        bar.error(markdown_literal(config.user_models_problem, 600))
    names = [spec.name for spec in config.user_models]
    if not names:
        return None
    name = linked_selectbox(bar, "Your model", names, keys.USER_MODEL, "model",
                            "not one of the models given with --model / --models",
                            format_func=lambda n: f"{n} ({config.user_model(n).spec})",
                            help="Loaded from your own code (a factory or a hubconf.py): see the README, 'Your "
                                 "own model'. Its attention modules are found by structure and verified.")
    try:
        model = get_user_model(name, device)
    except UserModelError as error:
        bar.error(f"{markdown_literal(name)}: {markdown_literal(str(error), 600)}")
        return None
    bar.caption(f"{model.task}, {model.num_classes} classes, output read as {model.output_rule}"
                + (f"; weights {markdown_literal(model.weights.name)}" if model.weights else "; no weights file"))
    return model


def _device_picker(bar) -> str:
    if torch.cuda.is_available():
        return bar.radio("Device", ["cuda", "cpu"], key=keys.DEVICE, horizontal=True,
                         help=f"GPU: {torch.cuda.get_device_name(0)}")
    device = str(pick_device())
    bar.markdown(f"**Device:** `{device}` (no GPU found: running on the CPU)")
    return device


def sidebar() -> Selection | None:
    """Draw the shared sidebar and keep the selection for the page (None: no loadable model)."""
    bar = st.sidebar
    language_picker(bar)
    bar.header("Model and photo")
    offered = SOURCES if (settings().user_models or settings().user_models_problem) else SOURCES[:2]
    apply_link("source", keys.SOURCE, offered, convert=_SOURCE_NAMES.__getitem__,
               what="use camvid or timm (user: only when the app was started with --model or --models)")
    if st.session_state.get(keys.SOURCE) not in offered:
        st.session_state[keys.SOURCE] = offered[-1] if len(offered) == 3 else offered[0]
    source = bar.radio("Model source", offered, key=keys.SOURCE,
                       help="Our CamVid segmentation models (every page), a real ImageNet classifier from timm "
                            "(Overview, ECA and Flexible/SE pages), or your own model (every page that fits it).")
    device = _device_picker(bar)
    if source == SOURCES[2]:
        model = _user_picker(bar, device)
        if model is None:
            return None
        model_fields = dict(model_name=model.name, card={}, source="user", head=model.task, attention="user",
                            weights_note=model.spec)
    elif source == SOURCES[1]:
        chosen = _timm_picker(bar, device)
        if chosen is None:
            return None
        arch, note = chosen
        model_fields = dict(model_name=arch, card={}, source="timm", head="classifier",
                            attention=IMAGENET_MODELS[arch][0], weights_note=note)
    else:
        model = _model_picker(bar)
        if model is None:
            return None
        model_fields = dict(model_name=model.name, card=model.card, source="camvid", head=model.config.head,
                            attention=model.config.attention)
    image, label, title = _photo_picker(bar)
    bar.caption(SAMPLE_ATTRIBUTION)
    bar.radio("Figure download (camera icon of each chart)", list(FIGURE_FORMATS), key=keys.FIGURE_FORMAT,
              horizontal=True, help="PNG for slides, SVG for papers: vector graphics that scale without blur.")
    key = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]
    selection = Selection(device=device, image=image, image_key=key, image_title=title, label=label,
                          **model_fields)
    run_state().selection = selection
    return selection
