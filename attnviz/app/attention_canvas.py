"""The photo that computes attention under the cursor in the page (a Streamlit custom component, v2).

Its script (attention_canvas.js) and style (attention_canvas.css) are files of
their own beside this module. It gets the photo, each panel's payload from
`attnviz.analysis.hover` (the record's Q, K, per-row log-sum-exp and the grid tables of
`attnviz.analysis.geometry`), and draws on every pointer move, with no message to the
server: the hovered cell's row (or column) of S blended over the photo where it
is high (the colour map and rule of `attnviz.viz.colours`, its table sent with the data), the top 5 marked, a
colour bar, and a readout of the cell and its top locations. Several panels (two models, or two modules of a
user's model) share the photo and the pointer. A click or tap pins the point: one trigger value,
handed to the page's `on_pin`, which the page answers with the server's exact
numbers (the pins themselves are kept by `attnviz.app.links`).
"""

from __future__ import annotations

import base64
import hashlib
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import streamlit as st

from attnviz.analysis.geometry import parse_pixel
from attnviz.app.page_arrays import page_script
from attnviz.i18n import DEFAULT_LANGUAGE, section
from attnviz.viz.colours import ATTENTION_COLOURS, page_table

__all__ = ["attention_canvas", "photo_data_url"]

_HERE = Path(__file__).resolve().parent
_COLOURS = page_table(ATTENTION_COLOURS)  # the attention colour map, sent to the script with every draw (768 bytes)
_COMPONENT = st.components.v2.component(
    "attnviz_attention_canvas",
    html='<div class="attnviz-canvas"></div>',
    css=(_HERE / "attention_canvas.css").read_text(encoding="utf-8"),
    js=page_script(_HERE / "attention_canvas.js"),
)


def photo_data_url(image: np.ndarray, quality: int = 90) -> str:
    """An RGB uint8 photo as a JPEG data URL (what the component's <img> shows)."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the photo could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _take_pin(component_key: str, image_hw: tuple[int, int], on_pin) -> None:
    """The click callback: hand the pinned pixel to `on_pin(x, y)` if it lies on the photo (the link's rule,
    attnviz.analysis.geometry.parse_pixel)."""
    event = st.session_state.get(component_key) or {}
    point = event.get("pin") if hasattr(event, "get") else None
    pixel = parse_pixel(point.get("x"), point.get("y"), image_hw) if isinstance(point, dict) else None
    if pixel is not None:
        on_pin(*pixel)


def attention_canvas(
    *,
    image: np.ndarray,
    photo_key: str,
    panels: list[dict],
    mode: str,
    opacity: float,
    scale: str,
    pixel: tuple[int, int],
    pins: list[tuple[int, int]],
    on_pin,
    key: str,
    language: str = DEFAULT_LANGUAGE,
) -> None:
    """Draw the live photo. `panels`: each a payload of `attnviz.analysis.hover.hover_payload` plus "title" and "id" (a
    text that changes whenever the payload does: model, photo, module), and, for a panel on a photo of its
    own, "image" and "image_key"; `pixel`: the point shown while
    the pointer is away (the last pin, or the photo's centre); `pins`: the pinned pixels, numbered on the
    photo; `on_pin(x, y)`: called (before the next run) when the user clicks or taps; `scale`: "own" (each
    map its own range) or "shared" (one range for all maps shown); `language`: of the readout's texts (the
    [canvas] section of attnviz/locales)."""
    image_hw = image.shape[:2]
    version = hashlib.sha1("|".join([photo_key, *(p["id"] for p in panels)]).encode()).hexdigest()[:16]
    data = {
        "version": version,
        "photo": _photo(photo_key, image),
        "image_hw": list(image_hw),
        "panels": [_panel_data(p, photo_key) for p in panels],
        "mode": mode,
        "opacity": float(opacity),
        "scale": scale,
        "pixel": [int(pixel[0]), int(pixel[1])],
        "pins": [list(p) for p in pins],
        "labels": section("canvas", language),
        "colours": _COLOURS,
    }
    _COMPONENT(data=data, key=key, on_pin_change=partial(_take_pin, key, image_hw, on_pin))


def _panel_data(panel: dict, photo_key: str) -> dict:
    data = {k: v for k, v in panel.items() if k not in ("id", "image", "image_key")}
    if panel.get("image_key", photo_key) != photo_key:
        data["photo"] = _photo(panel["image_key"], panel["image"])
    return data


def _photo(photo_key: str, image: np.ndarray) -> str:
    """The photo's data URL, encoded once per photo and session (the last few photos are kept)."""
    cache = st.session_state.setdefault("_attention_canvas_photo", {})
    if photo_key not in cache:
        while len(cache) >= 3:
            cache.pop(next(iter(cache)))
        cache[photo_key] = photo_data_url(image)
    return cache[photo_key]
