"""The shared sidebar: model source and model, photo, figure format, device; it makes the run's Selection."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from attnviz.analysis.forward import pick_device
from attnviz.app import keys
from attnviz.app.language import bound_t, language, t
from attnviz.app.links import apply_link
from attnviz.app.resources import (
    catalogue,
    catalogue_problems,
    checkpoint_dir,
    decode_upload,
    loaded_model,
    photo_key,
    sample,
    working,
)
from attnviz.app.selection import Selection, run_state
from attnviz.app.settings import settings
from attnviz.app.sources import model_source, offered_sources, source_key, weights_text
from attnviz.app.widgets import FIGURE_FORMATS, linked_selectbox
from attnviz.data.images import MAX_UPLOAD_BYTES, ImageError
from attnviz.data.samples import list_samples
from attnviz.i18n import DEFAULT_LANGUAGE, LANGUAGES, translate
from attnviz.models.checkpoint import CheckpointInfo
from attnviz.models.imagenet import IMAGENET_MODELS, WEIGHTS_ENV
from attnviz.models.sources import CamVidSource, TimmSource, UserSource
from attnviz.text import markdown_literal

__all__ = ["UPLOAD_CHOICE", "sidebar", "show_notices"]

UPLOAD_CHOICE = "(upload)"  # the photo box's last option, shown as sidebar.upload_choice; no sample is named so


def language_picker(bar) -> str:
    """The language switch at the top of the sidebar (the link's ?lang= first, once). Its label is in both
    languages, so that a reader of either finds it."""
    apply_link("lang", keys.LANGUAGE, LANGUAGES, what=t("links.use_language"))
    if st.session_state.get(keys.LANGUAGE) not in LANGUAGES:
        st.session_state[keys.LANGUAGE] = DEFAULT_LANGUAGE
    bar.radio(
        f"{translate('language.label', 'en')} / {translate('language.label', 'zh')}",
        list(LANGUAGES),
        format_func=LANGUAGES.__getitem__,
        key=keys.LANGUAGE,
        horizontal=True,
    )
    return language()


def _source_picker(bar) -> str:
    """The model source radio: its value is the source's key (the link's ?source= first, once), its label the
    source's title in the page's language."""
    offered = offered_sources()
    apply_link("source", keys.SOURCE, offered, convert=source_key, what=t("links.use_source"))
    try:
        chosen = source_key(st.session_state.get(keys.SOURCE))  # an older session may hold the English title
    except KeyError:
        chosen = None
    if chosen not in offered:  # the user's models when the app was started with them, else ours
        chosen = UserSource.key if UserSource.key in offered else CamVidSource.key
    if st.session_state.get(keys.SOURCE) != chosen:
        st.session_state[keys.SOURCE] = chosen
    tr = bound_t()  # the options' titles in this run's language, whenever Streamlit formats them
    return bar.radio(
        t("sidebar.source"),
        offered,
        key=keys.SOURCE,
        help=t("sidebar.source_help"),
        format_func=lambda key: tr(model_source(key).title_key),
    )


def _camvid_model(bar, device: str) -> dict | None:
    """The CamVid checkpoint chosen in the sidebar, as Selection fields (None: no loadable checkpoint). Nothing
    is loaded here: the page's analysis loads it, in the work pool."""
    models, problems = catalogue(), catalogue_problems()
    if problems:
        with bar.expander(t("sidebar.unloadable", count=len(problems))):
            for name, reason in problems.items():
                st.text(f"{name}: {reason}")
    if not models:
        directory = checkpoint_dir()
        bar.error(t("sidebar.no_checkpoints", folder=directory))
        return None
    names = list(models)
    name = linked_selectbox(
        bar,
        t("sidebar.model"),
        names,
        keys.MODEL,
        "model",
        t("links.no_checkpoint"),
        default="danet-eca" if "danet-eca" in names else None,
        format_func=lambda n: models[n].label,
        help=t("sidebar.model_help"),
    )
    info = models[name]
    bar.caption(_model_title(info))
    return dict(model_name=name, card=info.card, head=info.config.head, attention=info.config.attention)


def _model_title(info: CheckpointInfo) -> str:
    """E.g. "danet-eca · DANet head · ECA (Efficient Channel Attention) in the backbone", in the page's language."""
    parts = [
        info.name,
        t(f"sidebar.head_{'danet' if info.config.head == 'danet' else 'other'}", head=info.config.head.upper()),
        t("sidebar.in_backbone", attention=t(f"attention.{info.config.attention}")),
    ]
    if info.pam_affinity > 0:
        parts.append(t("sidebar.affinity_supervised"))
    return " · ".join(parts)


def _photo_picker(bar) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(image, label or None, title): a sample photo, or a usable upload."""
    samples = list_samples()
    apply_link("photo", keys.SAMPLE, samples, what=t("links.no_photo"))
    tr = bound_t()
    choice = bar.selectbox(
        t("sidebar.photo"),
        samples + [UPLOAD_CHOICE],
        key=keys.SAMPLE,
        help=t("sidebar.photo_help"),
        format_func=lambda c: tr("sidebar.upload_choice") if c == UPLOAD_CHOICE else c,
    )
    if choice == UPLOAD_CHOICE:
        upload = bar.file_uploader(
            t("sidebar.upload"),
            type=["jpg", "jpeg", "png", "webp", "bmp"],
            key=keys.UPLOAD,
            help=t("sidebar.upload_help", megabytes=MAX_UPLOAD_BYTES // 2**20),
        )
        if upload is not None:
            try:
                image = decode_upload(upload.getvalue())
                bar.caption(t("sidebar.upload_not_linked"))
                return image, None, upload.name
            except ImageError as error:
                bar.error(
                    t(
                        "sidebar.upload_error",
                        name=markdown_literal(upload.name),
                        reason=markdown_literal(str(error), 300),
                    )
                )
                run_state().notices.append(
                    t(
                        "notices.upload_refused",
                        name=markdown_literal(upload.name),
                        reason=markdown_literal(str(error), 300),
                    )
                )
        bar.info(t("sidebar.no_upload"))
        choice = samples[0]
    image, label = sample(choice)
    return image, label, choice


def _timm_model(bar, device: str) -> dict | None:
    """The ImageNet classifier chosen in the sidebar, as Selection fields; None when it cannot be built (weights
    that do not fit: one message, the rest of the app keeps working)."""
    arch = linked_selectbox(
        bar,
        t("sidebar.imagenet_model"),
        list(IMAGENET_MODELS),
        keys.TIMM_MODEL,
        "model",
        t("sidebar.not_offered"),
        format_func=lambda a: f"{a} ({IMAGENET_MODELS[a][0].upper()})",
        help=t("sidebar.imagenet_help"),
    )
    source = model_source(TimmSource.key)
    try:
        with working("classifier"):
            weights = loaded_model(source, arch, device).weights
    except source.failures as error:
        bar.error(f"{arch}: {markdown_literal(source.failure(error), 400)}")
        return None
    description = weights_text(weights, language())
    if weights.trained:
        bar.caption(f"{IMAGENET_MODELS[arch][1]}: {description}")
    else:
        bar.warning(
            t("sidebar.random_weights", model=IMAGENET_MODELS[arch][1], description=description, variable=WEIGHTS_ENV)
        )
        run_state().notices.append(t("notices.random_weights", model=IMAGENET_MODELS[arch][1], description=description))
    return dict(
        model_name=arch,
        card={},
        head="classifier",
        attention=IMAGENET_MODELS[arch][0],
        weights_note=description,
        weights_trained=weights.trained,
    )


def _user_model(bar, device: str) -> dict | None:
    """The user's model chosen in the sidebar, as Selection fields; None, with one message, when none was given
    or it cannot load."""
    config = settings()
    if config.user_models_problem:
        bar.error(markdown_literal(config.user_models_problem, 600))
    names = [spec.name for spec in config.user_models]
    if not names:
        return None
    name = linked_selectbox(
        bar,
        t("sidebar.user_model"),
        names,
        keys.USER_MODEL,
        "model",
        t("links.no_user_model"),
        format_func=lambda n: f"{n} ({config.user_model(n).spec})",
        help=t("sidebar.user_help"),
    )
    source = model_source(UserSource.key)
    try:
        with working("user_model"):
            loaded = loaded_model(source, name, device)
    except source.failures as error:
        bar.error(f"{markdown_literal(name)}: {markdown_literal(source.failure(error), 600)}")
        return None
    model = loaded.model
    bar.caption(
        t(
            "sidebar.user_caption",
            task=t(f"sidebar.task_{model.task}"),
            classes=model.num_classes,
            rule=model.output_rule,
            weights=weights_text(loaded.weights, language()),
        )
    )
    return dict(model_name=model.name, card={}, head=model.task, attention="user", weights_note=model.spec)


_MODEL_PICKERS = {CamVidSource.key: _camvid_model, TimmSource.key: _timm_model, UserSource.key: _user_model}


def _device_picker(bar) -> str:
    if torch.cuda.is_available():
        return bar.radio(
            t("sidebar.device"),
            ["cuda", "cpu"],
            key=keys.DEVICE,
            horizontal=True,
            help=f"GPU: {torch.cuda.get_device_name(0)}",
        )
    device = str(pick_device())
    bar.markdown(t("sidebar.device_cpu", device=device))
    return device


def sidebar() -> Selection | None:
    """Draw the shared sidebar and keep the selection for the page (None: no loadable model)."""
    bar = st.sidebar
    language_picker(bar)
    bar.header(t("sidebar.header"))
    source = _source_picker(bar)
    device = _device_picker(bar)
    model_fields = _MODEL_PICKERS[source](bar, device)
    if model_fields is None:
        return None
    image, label, title = _photo_picker(bar)
    sampled = title in list_samples()  # a CamVid photo is credited to CamVid; an upload is the user's own
    bar.caption(t("sidebar.attribution") if sampled else t("sidebar.attribution_upload", name=markdown_literal(title)))
    bar.radio(
        t("sidebar.figure_format"),
        list(FIGURE_FORMATS),
        key=keys.FIGURE_FORMAT,
        horizontal=True,
        help=t("sidebar.figure_format_help"),
    )
    key = photo_key(image)
    selection = Selection(
        device=device, image=image, image_key=key, image_title=title, label=label, source=source, **model_fields
    )
    run_state().selection = selection
    return selection


def show_notices() -> None:
    """What the sidebar had to refuse or warn about, at the top of the page itself (not only low in the
    sidebar, where a page that quietly shows a sample photo hides it)."""
    for notice in run_state().notices:
        st.warning(notice, icon=":material/warning:")
