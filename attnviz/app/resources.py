"""Everything the app loads or computes once and keeps: models, analyses, attributions, the catalogue.

Models are cached per (source, name, device) with st.cache_resource (the
source, attnviz.models.sources, holds its folder); the analysis of a photo (one
forward pass with capture) per (model, device, image hash), in a cache bounded
by the bytes it holds (ANALYSES, attnviz.sizedcache); attributions per
(model, photo, pixel). A click then only computes one
row or column from the cached analysis.

The checkpoint catalogue and results.json are read once per state of the
folder: the cache key is each file's name, size and modification time (one
`os.scandir`), so a model trained or evaluated while the app runs shows up
within a second, and a click reads no model card. The scan itself is kept for
FOLDER_CHECK_S: a page asks for the catalogue a dozen times per run, and at 200
sessions those scans were 15% of the server's time (py-spy, issue 31).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import streamlit as st

from attnviz.analysis.attribution import UserLogits, grad_cam, integrated_gradients
from attnviz.analysis.forward import Analysis, image_to_tensor
from attnviz.analysis.hover import HoverPayload, channel_payload, hover_payload
from attnviz.analysis.views import PositionView, position_view
from attnviz.app.language import t
from attnviz.app.settings import settings
from attnviz.app.sources import model_source
from attnviz.capture.interventions import Intervention
from attnviz.capture.recorder import split_name
from attnviz.data.images import decode_image
from attnviz.data.samples import load_sample
from attnviz.models.checkpoint import CheckpointInfo, scan_checkpoints
from attnviz.models.sources import LoadedModel, ModelSource
from attnviz.results import read_results
from attnviz.sizedcache import SizedCache

__all__ = [
    "working",
    "checkpoint_dir",
    "catalogue",
    "catalogue_problems",
    "results",
    "loaded_model",
    "ANALYSES",
    "analysis_key",
    "model_analysis",
    "pixel_grad_cam",
    "pixel_integrated_gradients",
    "sample",
    "decode_upload",
    "hover_data",
    "channel_data",
    "photo_key",
]


def checkpoint_dir() -> Path:
    """The folder the app's CamVid models come from (`attnviz.app.settings`)."""
    return settings().checkpoint_dir


FOLDER_CHECK_S = 1.0  # how long a scan of the checkpoint folder stands for its state
_scans: dict[Path, tuple[float, tuple]] = {}


def _fingerprint(directory: Path) -> tuple:
    """(name, size, mtime) of the folder's files, scanned again once FOLDER_CHECK_S has passed."""
    now = time.monotonic()
    kept = _scans.get(directory)
    if kept is not None and now - kept[0] < FOLDER_CHECK_S:
        return kept[1]
    try:
        with os.scandir(directory) as entries:
            state = tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()))
    except OSError:
        state = ()
    _scans[directory] = (now, state)  # (one dict store: safe across the sessions' threads)
    return state


@lru_cache(maxsize=8)
def _scan(directory: Path, fingerprint: tuple) -> tuple[dict[str, CheckpointInfo], dict[str, str]]:
    usable, problems = scan_checkpoints(directory)
    return {info.name: info for info in usable}, problems


@lru_cache(maxsize=8)
def _results(path: Path, fingerprint: tuple) -> dict:
    return read_results(path)


def catalogue() -> dict[str, CheckpointInfo]:
    """The loadable checkpoints by name (read again only when the folder's files change)."""
    directory = checkpoint_dir()
    return _scan(directory, _fingerprint(directory))[0]


def catalogue_problems() -> dict[str, str]:
    """{name: why it cannot be loaded} for the folder's other checkpoints."""
    directory = checkpoint_dir()
    return _scan(directory, _fingerprint(directory))[1]


def results() -> dict:
    """results.json of the checkpoint folder ({} when missing or unreadable); read again when it changes."""
    directory = checkpoint_dir()
    return _results(directory / "results.json", _fingerprint(directory))


@contextlib.contextmanager
def working(what: str):
    """A spinner saying `what` is running ("classifier", "user_model": the [spinner] catalog, in the page's
    language), shown only if it takes longer than a moment."""
    with st.spinner(t(f"spinner.{what}")):
        yield


@st.cache_resource(max_entries=24, show_spinner=False)
def loaded_model(source: ModelSource, name: str, device: str) -> LoadedModel:
    """Model `name` of `source`, loaded once per device and shared by every session (its analyses run through
    attnviz.app.queueing). Raises what the source raises (`source.failures`: one message)."""
    return source.load(name, device)


ANALYSES_ENV = "ATTNVIZ_ANALYSES_MB"


def analyses_budget_mib() -> int:
    """The bytes the shared analyses may hold, in MiB: $ATTNVIZ_ANALYSES_MB, else 768 (an analysis of a sample
    photo holds about 13 MB, most of it the channel layers' input features, so the 32 of the 8 shipped models on
    the 4 sample photos about 0.43 GB; one of a 768x1024 upload about 61 MB)."""
    chosen = os.environ.get(ANALYSES_ENV, "").strip()
    if not chosen:
        return 768
    if not chosen.isdigit():
        raise ValueError(f"${ANALYSES_ENV} must be a whole number of MiB, got {chosen!r}")
    return int(chosen)


ANALYSES = SizedCache(analyses_budget_mib() * 2**20)  # shared by every session of the process (attnviz.sizedcache)


def analysis_key(source: ModelSource, name: str, device: str, image_key: str, intervention: Intervention | None):
    """What decides an analysis: the cache key of `model_analysis`, and its job's key in the pool."""
    return (source, name, device, image_key, intervention)


def model_analysis(
    source: ModelSource,
    name: str,
    device: str,
    image_key: str,
    image: np.ndarray,
    intervention: Intervention | None = None,
) -> Analysis:
    """The analysis of model `name` of `source` on a photo (one forward pass with capture), once per photo and
    intervention (None: the model as it is; else its modules switched off or flat, one more cached pass), kept
    in ANALYSES while the budget allows."""
    return ANALYSES.get_or_compute(
        analysis_key(source, name, device, image_key, intervention),
        lambda: source.analyse(loaded_model(source, name, device).model, image, name, intervention=intervention),
    )


@st.cache_resource(max_entries=16, show_spinner=False)
def hover_data(source: str, name: str, image_key: str, module: str, image_hw: tuple[int, int], _record) -> HoverPayload:
    """What the live photo needs of one spatial record (attnviz.analysis.hover), built once per (model, photo, module)
    and shared read-only by every session that shows it."""
    return hover_payload(_record, image_hw)


@st.cache_resource(max_entries=64, show_spinner=False)
def pixel_view(
    source: str,
    name: str,
    image_key: str,
    module: str,
    pixel: tuple[int, int],
    mode: str,
    labelled: bool,
    _record,
    _image_hw,
    _label,
) -> PositionView:
    """The Position page's view of one pixel (attnviz.analysis.views.position_view), once per (model, photo,
    module, pixel, mode, and whether the photo has labels: an upload of a sample's pixels has none) and shared
    read-only by every session: a class opening a photo reads its centre once."""
    return position_view(_record, pixel, _image_hw, mode, _label)


@st.cache_resource(max_entries=16, show_spinner=False)
def channel_data(source: str, name: str, image_key: str, module: str, _record) -> dict:
    """What the page needs of DANet's channel map X (attnviz.analysis.hover.channel_payload), once per (model,
    photo)."""
    return channel_payload(_record)


def _attributable(source: str, name: str, device: str, layer_name: str = ""):
    """(a private copy of model `name` of source `source` (its key) as a function image -> logits, the layer to
    attribute at or None).

    A copy: captum hooks the model's layers while it attributes, and another session's forward pass on the
    shared model must not pass through those hooks. Our models: the backbone's last stage (None here);
    a user's model: the module `layer_name` (Grad-CAM at its input, the features that feed it).
    """
    model = loaded_model(model_source(source), name, device).model
    if source != "user":
        return copy.deepcopy(model), None
    private = dataclasses.replace(model, model=copy.deepcopy(model.model))
    layer = dict(private.model.named_modules()).get(split_name(layer_name)[0]) if layer_name else None
    if layer_name and layer is None:
        raise ValueError(f"{name} has no module {layer_name!r} to attribute at")
    return UserLogits(private), layer


@st.cache_data(max_entries=64, show_spinner=False)
def pixel_grad_cam(
    source: str,
    name: str,
    device: str,
    directory: str,
    image_key: str,
    _image: np.ndarray,
    target: tuple[int, int, int],
    layer_name: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of logit (class, y, x): (at the layer's grid, upsampled to the photo); cached per pixel (and per
    CamVid folder `directory`: a model of that name in another folder is another model)."""
    model, layer = _attributable(source, name, device, layer_name)
    cam, full = grad_cam(model, image_to_tensor(_image, device), target, layer=layer, layer_input=layer is not None)
    return cam.cpu().numpy(), full.cpu().numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def pixel_integrated_gradients(
    source: str,
    name: str,
    device: str,
    directory: str,
    image_key: str,
    _image: np.ndarray,
    target: tuple[int, int, int],
    steps: int,
    _control=None,
) -> np.ndarray:
    """Integrated Gradients (3, H, W) of logit (class, y, x) against a black photo; cached per pixel and steps.
    `_control` (attnviz.workpool.Control, not part of the cache key): progress per internal batch, and a stop
    between batches when nobody waits any more (a stopped run raises Cancelled and is not cached)."""
    model, _ = _attributable(source, name, device)

    def on_batch(done: int, total: int) -> None:
        _control.report(done, total)
        _control.check()

    ig = integrated_gradients(
        model, image_to_tensor(_image, device), target, steps=steps, on_batch=None if _control is None else on_batch
    )
    return ig.cpu().numpy()


@st.cache_data(max_entries=16)
def photo_key(image: np.ndarray) -> str:
    """The cache key of a photo: its pixels and shape, hashed."""
    return hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]


@st.cache_data(max_entries=16, show_spinner=False)
def sample(name: str):
    """(image, label) of a sample photo (read from disk once; each run gets its own copy)."""
    photo = load_sample(name)
    return photo.image, photo.label


@st.cache_data(max_entries=8, show_spinner=False)
def decode_upload(data: bytes) -> np.ndarray:
    return decode_image(data)
