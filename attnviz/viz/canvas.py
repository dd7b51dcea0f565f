"""The live canvases' scripts, styles and data, for any host: the Streamlit app (attnviz.app.attention_canvas,
attnviz.app.channel_canvas), the standalone HTML file (attnviz.viz.standalone) and the notebook widget.

The scripts and styles are files beside the app's wrappers (attnviz/app/attention_canvas.js, channel_canvas.js and
their .css); each script is one ES module whose default export draws from a `data` dict, with the host contract
written at its top (`data.local_pins`: the page pins by itself). A components-v2 script is one module with no
imports of its own, so the functions the two share (page_arrays.js: base64 arrays, top-k; canvas_registry.js:
the parts of the Streamlit app's live photo sent apart) are prepended to each (`page_script`). The `data` dicts
are built here, once for every host.
"""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np

from attnviz.analysis.views import MAX_PINS
from attnviz.i18n import DEFAULT_LANGUAGE, section
from attnviz.viz.colours import ATTENTION_COLOURS, CHANNEL_COLOURS, page_table

__all__ = [
    "SCRIPT_DIR",
    "page_script",
    "canvas_style",
    "photo_data_url",
    "attention_canvas_data",
    "canvas_payload_data",
    "channel_canvas_data",
]

SCRIPT_DIR = Path(__file__).resolve().parents[1] / "app"
_SHARED = (SCRIPT_DIR / "page_arrays.js", SCRIPT_DIR / "canvas_registry.js")
_ATTENTION_COLOURS = page_table(ATTENTION_COLOURS)  # 768 bytes as base64, sent with every draw
_CHANNEL_COLOURS = page_table(CHANNEL_COLOURS)


def page_script(path: Path, default_export: bool = True) -> str:
    """The shared functions (page_arrays.js, canvas_registry.js), then the component's own script at `path`;
    `default_export` False: without its last line, `export default <name>;` (to be part of another module)."""
    script = Path(path).read_text(encoding="utf-8")
    if not default_export:
        body, _, last = script.rstrip().rpartition("\n")
        if not last.startswith("export default "):
            raise ValueError(f"{path} does not end with `export default <name>;`")
        script = body + "\n"
    return "\n".join(shared.read_text(encoding="utf-8") for shared in _SHARED) + "\n" + script


def canvas_style(name: str) -> str:
    """The style of canvas `name` ("attention_canvas" or "channel_canvas")."""
    return (SCRIPT_DIR / f"{name}.css").read_text(encoding="utf-8")


def photo_data_url(image: np.ndarray, quality: int = 90) -> str:
    """An RGB uint8 photo as a JPEG data URL (what the canvas's <img> shows)."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the photo could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def attention_canvas_data(
    *,
    version: str,
    photo: str | None,
    image_hw: tuple[int, int],
    panels: list[dict] | None,
    mode: str = "row",
    opacity: float = 0.75,
    scale: str = "own",
    pixel: tuple[int, int] | None = None,
    pins: list[tuple[int, int]] | None = None,
    language: str = DEFAULT_LANGUAGE,
    local_pins: bool = False,
    pin_state: bool = True,
) -> dict:
    """attention_canvas.js's data. `panels`: each a payload of `attnviz.analysis.hover.hover_payload` with its
    "title" (and "photo", a data URL, for a panel on a photo of its own); `photo`: the photo's data URL;
    `version`: a text that changes whenever the panels do; `pixel`: the point shown while the pointer is away
    (default: the photo's centre, as the Position page); `pins`: the pinned pixels, oldest first (None with
    `local_pins`: the page keeps its own); `local_pins`: a click pins in the page (the script's contract);
    `pin_state`: report the page's pins as a state value too. `photo` and `panels` None: the payload, the
    texts and the colours are sent apart (`canvas_payload_data`) and this names them by `version`."""
    height, width = image_hw
    data = {"version": version}
    if photo is None and panels is None:
        data["payload_version"] = version
    else:
        data.update(photo=photo, panels=panels, labels=section("canvas", language), colours=_ATTENTION_COLOURS)
    data.update(
        {
            "image_hw": [int(height), int(width)],
            "mode": mode,
            "opacity": float(opacity),
            "scale": scale,
            "pixel": [int(v) for v in (pixel if pixel is not None else (width // 2, height // 2))],
            "local_pins": bool(local_pins),
            "pin_state": bool(pin_state),
            "max_pins": MAX_PINS,
        }
    )
    if pins is not None or not local_pins:
        data["pins"] = [[int(x), int(y)] for x, y in pins or []]
    return data


def canvas_payload_data(
    *, version: str, photo: str, panels: list[dict], language: str = DEFAULT_LANGUAGE, css: str = ""
) -> dict:
    """canvas_payload.js's data: what attention_canvas_data leaves out when its `photo` and `panels` are None
    (the same `version`): the photo, the panels, the readout's texts, the colour table, and the canvas's
    style `css` (which the canvas then puts in its own root), for an element of its own."""
    return {
        "version": version,
        "photo": photo,
        "panels": panels,
        "labels": section("canvas", language),
        "colours": _ATTENTION_COLOURS,
        "css": css,
    }


def channel_canvas_data(
    *,
    payload: dict,
    version: str,
    channel: int | None = None,
    language: str = DEFAULT_LANGUAGE,
    local_pins=False,
    pin_state: bool = True,
) -> dict:
    """channel_canvas.js's data. `payload`: `attnviz.analysis.hover.channel_payload`'s; `channel`: the chosen
    row (None: the row whose largest entry is largest, as the Channel page starts; with `local_pins` a click
    chooses in the page); `pin_state`: report the page's choice as a state value too."""
    if channel is None:
        x = np.frombuffer(base64.b64decode(payload["x"]), "<f4").reshape(payload["channels"], -1)
        channel = int(x.max(1).argmax())
    return {
        "payload": payload,
        "version": version,
        "channel": int(channel),
        "labels": section("channel_canvas", language),
        "colours": _CHANNEL_COLOURS,
        "local_pins": bool(local_pins),
        "pin_state": bool(pin_state),
    }
