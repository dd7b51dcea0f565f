"""The app's live views as notebook widgets (anywidget: JupyterLab, Notebook 7, VS Code).

`show(model, photo)` runs the model once on the photo with capture and returns an `AttentionView`: the photo
whose map of position attention (a row or column of S; DANet, Fu et al., CVPR 2019, and every spatial
self-attention attnviz reads in a user's model) is computed in the page under the pointer, as on the app's
Position page. `show_channels(model, photo)` returns a `ChannelView`: DANet's channel map X hovered in the page,
as on the Channel page. The page script is the app's own (attnviz/app/attention_canvas.js, channel_canvas.js,
assembled by attnviz.viz.canvas.page_script), inlined into the widget's module when this module is imported, not
copied: widget.js only maps anywidget's model to the {data, parentElement, setStateValue} the script takes.

What differs from the app: the pins (and the chosen row of X) are traits, synced both ways, so the next cell
reads `view.pins` and asks the library for their exact rows (`view.rows()`), or sets `view.pins` to draw pins.
The app keeps its pins in the link and answers each with the server's numbers instead. The payloads are those of
the app (attnviz.analysis.hover), so the page's numbers equal the library's to about 1e-6 relative.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import anywidget
import numpy as np
import traitlets
from torch import nn

from attnviz.analysis.forward import Analysis, analyse, analyse_user_model, pick_device
from attnviz.analysis.geometry import parse_pixel
from attnviz.analysis.hover import channel_payload, hover_payload
from attnviz.analysis.views import MAX_PINS, MODES, PositionView, position_view
from attnviz.data.images import decode_image
from attnviz.data.samples import Sample, list_samples, load_sample
from attnviz.i18n import DEFAULT_LANGUAGE, LANGUAGES
from attnviz.models.checkpoint import load_checkpoint
from attnviz.models.user import UserModel
from attnviz.viz.canvas import (
    SCRIPT_DIR,
    attention_canvas_data,
    canvas_style,
    channel_canvas_data,
    page_script,
    photo_data_url,
)
from attnviz.viz.standalone import ViewPanel, standalone_html

__all__ = ["AttentionView", "ChannelView", "show", "show_channels", "read_photo", "analyse_model", "SCALES"]

SCALES = ("own", "shared")  # the canvas's colour scales: each map its own range, or one range for all maps shown
_ADAPTER = Path(__file__).resolve().parent / "widget.js"
_STYLE = Path(__file__).resolve().parent / "widget.css"


def widget_module(kind: str, script: str) -> str:
    """The widget's ES module: widget.js, after the canvas script's text and which view it is (`kind`)."""
    return f"const KIND = {json.dumps(kind)};\nconst CANVAS = {json.dumps(script)};\n{_ADAPTER.read_text('utf-8')}"


def widget_style(name: str) -> str:
    """The canvas's own style, then widget.css (the notebook's theme for it)."""
    return canvas_style(name) + _STYLE.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ model and photo


@dataclass(frozen=True)
class Photo:
    """The photo a view shows: (H, W, 3) uint8, its labels when it is a shipped sample, and a name."""

    image: np.ndarray
    label: np.ndarray | None
    name: str


def read_photo(photo) -> Photo:
    """A photo as `show` takes it: None (the first sample photo), a sample's name (attnviz.data.samples), a path
    to an image file (decoded as the app decodes uploads), a Sample, or an (H, W, 3) uint8 array."""
    if photo is None:
        photo = list_samples()[0]
    if isinstance(photo, Sample):
        return Photo(photo.image, photo.label, photo.name)
    if isinstance(photo, str) and photo in list_samples():
        return read_photo(load_sample(photo))
    if isinstance(photo, str | Path):
        return Photo(decode_image(Path(photo).read_bytes()), None, Path(photo).name)
    image = np.asarray(photo)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"a photo array must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return Photo(image, None, "photo")


def analyse_model(model, photo: Photo, device: str = "auto") -> Analysis:
    """One forward pass with capture of `model` on the photo: `model` is a shipped checkpoint's name
    (attnviz.models.load_checkpoint, run on `device`), a user's model (attnviz.models.load_user_model), or an
    nn.Module that takes RGB in [0, 1] and returns a tensor (run where its weights are)."""
    if isinstance(model, str):
        loaded, _ = load_checkpoint(model, device=pick_device(device))
        return analyse(loaded, photo.image, model)
    if isinstance(model, UserModel):
        return analyse_user_model(model, photo.image, model.name)
    if isinstance(model, nn.Module):
        return analyse(model.eval(), photo.image, type(model).__name__)
    raise TypeError(f"model must be a checkpoint name, a UserModel or an nn.Module, got {type(model).__name__}")


def _spatial_record(analysis: Analysis, module: str | None):
    """(name, record) of the spatial self-attention `module` of the pass, or its first one (module None)."""
    found = analysis.spatial_attention
    if not found:
        raise ValueError(f"{analysis.model_name} has no spatial self-attention that attnviz reads")
    if module is None:
        return next(iter(found.items()))
    if module not in found:
        raise ValueError(f"{analysis.model_name} has no spatial self-attention {module!r}; it has {sorted(found)}")
    return module, found[module]


def _version(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ the views


@dataclass(frozen=True)
class Panel:
    """One map of an AttentionView: whose it is, its record, and the photo it was computed on."""

    title: str
    module: str
    record: object
    photo: Photo


def _hover_data(panel: Panel) -> dict:
    """The page's payload of the panel's record (attnviz.analysis.hover); ValueError when it cannot be sent."""
    payload = hover_payload(panel.record, panel.photo.image.shape[:2])
    if payload.data is None:
        raise ValueError(f"{panel.title} {panel.module} cannot be drawn in the page: {payload.reason}")
    return payload.data


class AttentionView(anywidget.AnyWidget):
    """The live photo of position attention; see the module docstring. Traits: `pins` [(x, y)] photo pixels
    (at most MAX_PINS, synced both ways), `mode` ("row": where the pixel attends; "column": who attends to it),
    `scale` ("own" or "shared"), `opacity` (of the map at its highest value), `language` (of the readout)."""

    _esm = widget_module("position", page_script(SCRIPT_DIR / "attention_canvas.js"))
    _css = widget_style("attention_canvas")

    data = traitlets.Dict().tag(sync=True)
    pins = traitlets.List().tag(sync=True)  # [(x, y)] integer photo pixels, oldest first (_valid_pins)
    mode = traitlets.Enum(MODES, default_value="row").tag(sync=True)
    scale = traitlets.Enum(SCALES, default_value="own").tag(sync=True)
    opacity = traitlets.Float(0.75, min=0.0, max=1.0).tag(sync=True)
    language = traitlets.Enum(tuple(LANGUAGES), default_value=DEFAULT_LANGUAGE).tag(sync=True)

    def __init__(self, panels: list[Panel], **traits):
        self.panels = panels
        self.payloads = [_hover_data(panel) for panel in panels]
        super().__init__(**traits)
        self.data = self._data()

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.panels[0].photo.image.shape[:2]

    def _data(self) -> dict:
        """What the canvas draws from besides the traits (attnviz.viz.canvas, as for the app), in the page's own
        pinning (the clicks come back through the `pins` trait)."""
        photo = self.panels[0].photo
        panels = []
        for panel, payload in zip(self.panels, self.payloads):
            own_photo = {} if panel.photo is photo else {"photo": photo_data_url(panel.photo.image)}
            panels.append({**payload, **own_photo, "title": panel.title if len(self.panels) > 1 else ""})
        return attention_canvas_data(
            version=_version(self.language, *((p.title, p.module, p.photo.name) for p in self.panels)),
            photo=photo_data_url(photo.image),
            image_hw=self.image_hw,
            panels=panels,
            language=self.language,
            local_pins=True,
        )

    @traitlets.observe("language")
    def _relabel(self, change) -> None:
        if self.data:  # not while __init__ sets the first traits
            self.data = self._data()

    @traitlets.validate("pins")
    def _valid_pins(self, proposal) -> list[tuple[int, int]]:
        """Each pin an (x, y) inside the photo, a fractional value naming the pixel that holds it (the link's
        rule, attnviz.analysis.geometry.parse_pixel); at most MAX_PINS."""
        pins = [parse_pixel(*pin, self.image_hw) if len(pin) == 2 else None for pin in proposal["value"]]
        if None in pins:
            raise traitlets.TraitError(f"pins must be (x, y) pixels of the {self.image_hw} photo: {proposal['value']}")
        if len(pins) > MAX_PINS:
            raise traitlets.TraitError(f"at most {MAX_PINS} pins, got {len(pins)}")
        return pins

    def save_html(self, path: str | Path) -> Path:
        """The view as one self-contained HTML file that works offline (attnviz.viz.standalone), in the view's
        mode and language; ViewTooLarge past its size cap."""
        html = standalone_html(
            panels=[ViewPanel(p.title, p.module, payload) for p, payload in zip(self.panels, self.payloads)],
            photo=self.panels[0].photo.image,
            photo_name=self.panels[0].photo.name,
            language=self.language,
            mode=self.mode,
        )
        path = Path(path)
        path.write_text(html, encoding="utf-8")
        return path

    def rows(self, panel: int = 0) -> list[PositionView]:
        """The library's view of every pin on panel `panel` (0: the model shown, 1: the one beside it), in the
        view's mode: its row (or column) of S computed by the record, the top locations, the cell, and where
        the photo is a labelled sample, the share of a row on the pixel's own class."""
        chosen = self.panels[panel]
        image_hw = chosen.photo.image.shape[:2]
        return [position_view(chosen.record, pin, image_hw, self.mode, chosen.photo.label) for pin in self.pins]


class ChannelView(anywidget.AnyWidget):
    """DANet's channel map X hovered in the page; see the module docstring. Traits: `channel` (the row chosen by
    a click, synced both ways), `language` (of the readout)."""

    _esm = widget_module("channel", page_script(SCRIPT_DIR / "channel_canvas.js"))
    _css = widget_style("channel_canvas")

    data = traitlets.Dict().tag(sync=True)
    channel = traitlets.Int(0).tag(sync=True)
    language = traitlets.Enum(tuple(LANGUAGES), default_value=DEFAULT_LANGUAGE).tag(sync=True)

    def __init__(self, title: str, record, **traits):
        self.title, self.record, self.payload = title, record, channel_payload(record)
        super().__init__(**traits)
        self.data = self._data()
        if "channel" not in traits:
            self.channel = self.data["channel"]  # the row whose largest entry is largest, as the Channel page starts

    def _data(self) -> dict:
        return channel_canvas_data(
            payload=self.payload,
            version=_version(self.title, self.language),
            language=self.language,
            local_pins=True,
        )

    @traitlets.observe("language")
    def _relabel(self, change) -> None:
        if self.data:  # not while __init__ sets the first traits
            self.data = self._data()

    @traitlets.validate("channel")
    def _valid_channel(self, proposal) -> int:
        channels = self.record.attention.shape[-1]
        if not 0 <= proposal["value"] < channels:
            raise traitlets.TraitError(f"channel must be in 0 .. {channels - 1}, got {proposal['value']}")
        return proposal["value"]

    def row(self) -> np.ndarray:
        """(C,) the library's row `channel` of X: how much each channel is mixed into the chosen one."""
        return self.record.attention[0, self.channel].numpy()


# ------------------------------------------------------------------------------------------ the calls


def show(
    model,
    photo=None,
    *,
    module: str | None = None,
    beside=None,
    mode: str = "row",
    scale: str = "own",
    opacity: float = 0.75,
    language: str = DEFAULT_LANGUAGE,
    device: str = "auto",
) -> AttentionView:
    """The live photo of `model`'s position attention on `photo`, as a widget (the last line of a cell shows it).

    model, beside: a shipped checkpoint's name ("danet-eca"), a user's model (attnviz.models.load_user_model), or
    an nn.Module (see `analyse_model`); `beside`: a second model drawn on the same photo, the pointer and pins
    shared. photo: see `read_photo`. module: which spatial self-attention (a record's name, "head.pam"; default
    the first; the model beside shows its own of that name, else its first). mode, scale, opacity, language:
    the traits' first values (see AttentionView)."""
    shown = read_photo(photo)
    panels = []
    for candidate in (model, beside) if beside is not None else (model,):
        analysis = analyse_model(candidate, shown, device)
        wanted = module if not panels or module in analysis.spatial_attention else None
        name, record = _spatial_record(analysis, wanted)
        panels.append(Panel(analysis.model_name, name, record, shown))
    return AttentionView(panels, mode=mode, scale=scale, opacity=opacity, language=language)


def show_channels(model, photo=None, *, language: str = DEFAULT_LANGUAGE, device: str = "auto") -> ChannelView:
    """DANet's channel map X of `model` on `photo` (arguments as `show`), hovered in the page; a click chooses
    the row `view.channel`."""
    analysis = analyse_model(model, read_photo(photo), device)
    if analysis.channel_map is None:
        raise ValueError(f"{analysis.model_name} has no channel attention map X (DANet's CAM)")
    return ChannelView(analysis.model_name, analysis.channel_map[1], language=language)
