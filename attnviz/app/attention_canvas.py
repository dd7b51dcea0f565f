"""The photo that computes attention under the cursor in the page (a Streamlit custom component, v2).

Its script (attention_canvas.js) and style (attention_canvas.css) are files of
their own beside this module. It gets the photo, each panel's payload from
`attnviz.analysis.hover` (the record's Q, K, per-row log-sum-exp and the grid tables of
`attnviz.analysis.geometry`), and draws on every pointer move, with no message to the
server: the hovered cell's row (or column) of S blended over the photo where it
is high (the colour map and rule of `attnviz.viz.colours`, its table sent with the data), the top 5 marked, a
colour bar, and a readout of the cell and its top locations. Several panels (two models, or two modules of a
user's model) share the photo and the pointer. A click or tap pins the point: the canvas draws the pin at once
(its `local_pins` rule, the server's), and one trigger value is handed to the page's `on_pin`, which the page
answers with the server's exact numbers (the pins themselves are kept by `attnviz.app.links`).

Two elements, so that a pin or a setting sends a few hundred bytes, not the payload: the payload (photo, Q, K,
L) and the drawing script go in an element of its own (canvas_payload.js), whose message is the same on every
run until the model, photo, module or panels change, and which Streamlit therefore sends again as a reference
to the copy the browser holds (its forward-message cache, for messages of at least
`global.minCachedMessageSize`). The canvas element holds a stub script (a components-v2 element carries its
script in every message) and its own data (pins, pixel, mode, scale, opacity, texts), which names the payload
by version. A page calls this inside an
`st.fragment`, so that a pin reruns only that part of the page (pages/position.py).
"""

from __future__ import annotations

import hashlib
from functools import partial

import numpy as np
import streamlit as st

from attnviz.analysis.geometry import parse_pixel
from attnviz.i18n import DEFAULT_LANGUAGE
from attnviz.sizedcache import SizedCache
from attnviz.viz.canvas import (
    SCRIPT_DIR,
    attention_canvas_data,
    canvas_payload_data,
    canvas_style,
    page_script,
    photo_data_url,
)

__all__ = ["attention_canvas", "next_run"]

# the canvas: a stub script (canvas_stub.js) that draws with the script and style the payload element brings
_COMPONENT = st.components.v2.component(
    "attnviz_attention_canvas",
    html='<div class="attnviz-canvas"></div>',
    js=(SCRIPT_DIR / "canvas_registry.js").read_text(encoding="utf-8")
    + (SCRIPT_DIR / "canvas_stub.js").read_text(encoding="utf-8"),
)
_STYLE = canvas_style("attention_canvas")
# the payload element: attention_canvas.js and canvas_payload.js as one module, and the photo's payload as data
_PAYLOAD = st.components.v2.component(
    "attnviz_canvas_payload",
    html='<div class="attnviz-canvas-payload" hidden></div>',
    js=page_script(SCRIPT_DIR / "attention_canvas.js", default_export=False)
    + (SCRIPT_DIR / "canvas_payload.js").read_text(encoding="utf-8"),
)


def _take_pin(component_key: str, image_hw: tuple[int, int], on_pin) -> None:
    """The click callback: hand the pinned pixel to `on_pin(x, y, pins)` if it lies on the photo (the link's
    rule, attnviz.analysis.geometry.parse_pixel), with the page's pins after the click (None when any is not
    a pixel of the photo): the page pins by itself, so a trigger the server missed (clicks faster than its
    runs) leaves no pin behind."""
    event = st.session_state.get(component_key) or {}
    point = event.get("pin") if hasattr(event, "get") else None
    pixel = parse_pixel(point.get("x"), point.get("y"), image_hw) if isinstance(point, dict) else None
    if pixel is not None:
        on_pin(*pixel, pins=_page_pins(point.get("pins"), image_hw))


def _page_pins(raw, image_hw: tuple[int, int]) -> list[tuple[int, int]] | None:
    """The page's pins from a trigger, each a pixel of the photo, or None."""
    if not isinstance(raw, list) or not raw:
        return None
    pins = [parse_pixel(*p, image_hw) if isinstance(p, list) and len(p) == 2 else None for p in raw]
    return None if None in pins else pins


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
    photo; `on_pin(x, y, pins=)`: called (before the next run) when the user clicks or taps, with the page's pins
    after the click (oldest first; None if unreadable); `scale`: "own" (each
    map its own range) or "shared" (one range for all maps shown); `language`: of the readout's texts (the
    [canvas] section of attnviz/locales)."""
    image_hw = image.shape[:2]
    version = hashlib.sha1("|".join([photo_key, language, *(p["id"] for p in panels)]).encode()).hexdigest()[:16]
    payload = canvas_payload_data(
        version=version,
        photo=_photo(photo_key, image),
        panels=[_panel_data(p, photo_key) for p in panels],
        language=language,
        css=_STYLE,
    )
    _PAYLOAD(data=payload, key=f"{key}_payload")
    data = attention_canvas_data(
        version=version,
        photo=None,
        image_hw=image_hw,
        panels=None,
        mode=mode,
        opacity=opacity,
        scale=scale,
        pixel=pixel,
        pins=pins,
        language=language,
        local_pins=True,
        pin_state=False,
    )
    data["run"] = next_run(key)
    _COMPONENT(data=data, key=key, on_pin_change=partial(_take_pin, key, image_hw, on_pin))


def next_run(component_key: str) -> int:
    """A number that changes on every run that draws the canvas. The page pins (and the channel map chooses) in
    the browser without a run, so the server's last data can fall behind what the page shows; Streamlit skips a
    component whose data equals its last, and a run that sends the server's state again (pins cleared, a row
    typed back) would then not reach the page."""
    counter = f"{component_key}__run"
    st.session_state[counter] = st.session_state.get(counter, 0) + 1
    return st.session_state[counter]


def _panel_data(panel: dict, photo_key: str) -> dict:
    data = {k: v for k, v in panel.items() if k not in ("id", "image", "image_key")}
    if panel.get("image_key", photo_key) != photo_key:
        data["photo"] = _photo(panel["image_key"], panel["image"])
    return data


_PHOTOS = SizedCache(64 * 2**20, size_of=len)  # photo key -> data URL, shared by every session of the process


def _photo(photo_key: str, image: np.ndarray) -> str:
    """The photo's data URL, encoded once per photo for every session (a class opening a sample photo encodes it
    once; it was once per session, 3 ms of each first page)."""
    return _PHOTOS.get_or_compute(photo_key, lambda: photo_data_url(image))
