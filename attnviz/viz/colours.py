"""The colour maps, defined once: the page's canvases, the overlay PNGs and the Plotly figures all read them here.

Attention (a row or column of S, a spatial gate, Grad-CAM) is drawn in inferno; channel attention (DANet's X, and
the per-channel weights of SE, ECA, selective kernels and coordinate attention) in viridis: each a 256-entry RGB
table taken from OpenCV's map of that name (which is matplotlib's map sampled at 256 levels). What a value looks
like over the photo is one rule, the live canvas's (attention_canvas.js): a value v on the range [low, high] is t =
(v - low) / (high - low) clipped to [0, 1], drawn in the table's entry round(255 t) with opacity `opacity * t`, so
colour shows only where attention is high. The page scripts get the tables as they are (`page_table`), Plotly a
scale built from every 5th entry (`plotly_scale`).
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

__all__ = [
    "ATTENTION_COLOURS",
    "CHANNEL_COLOURS",
    "PLOTLY_STEP",
    "scaled",
    "table_colours",
    "opacity_of",
    "page_table",
    "plotly_scale",
]


def _table(opencv_map: int) -> np.ndarray:
    """(256, 3) uint8 RGB: OpenCV's colour map at levels 0 .. 255, read-only."""
    levels = np.arange(256, dtype=np.uint8).reshape(-1, 1)
    table = np.ascontiguousarray(cv2.applyColorMap(levels, opencv_map)[:, 0, ::-1])
    table.setflags(write=False)
    return table


ATTENTION_COLOURS = _table(cv2.COLORMAP_INFERNO)
CHANNEL_COLOURS = _table(cv2.COLORMAP_VIRIDIS)

# Plotly's scale takes every PLOTLY_STEP-th entry (52 stops, 0 and 255 among them): its linear interpolation
# stays within 1.2 of the table for both maps, and a 256-stop scale took Plotly about 8 ms more to build per figure
PLOTLY_STEP = 5


def scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """t = (values - low) / (high - low), clipped to [0, 1]; NaN -> 0; a range with high <= low divides by 1
    (the canvas's rule)."""
    span = high - low if high > low else 1.0
    return np.clip(np.nan_to_num((np.asarray(values, dtype=np.float64) - low) / span), 0.0, 1.0)


def table_colours(t: np.ndarray, table: np.ndarray = ATTENTION_COLOURS) -> np.ndarray:
    """(..., 3) uint8: each t in [0, 1] as the table's entry round(255 t) (halves up, as JavaScript's
    Math.round)."""
    return table[np.floor(np.asarray(t) * 255.0 + 0.5).astype(np.intp)]


def opacity_of(t: np.ndarray, opacity: float) -> np.ndarray:
    """The alpha of each t in [0, 1]: `opacity * t`, rounded to 1/255 as the canvas stores it."""
    return np.floor(255.0 * opacity * np.asarray(t) + 0.5) / 255.0


def page_table(table: np.ndarray = ATTENTION_COLOURS) -> str:
    """The table as base64 of its 768 bytes, r, g, b per entry (a page script decodes a Uint8Array)."""
    return base64.b64encode(np.ascontiguousarray(table, dtype=np.uint8).tobytes()).decode("ascii")


def plotly_scale(table: np.ndarray = ATTENTION_COLOURS) -> list[list]:
    """The table as a Plotly colour scale: [position, "rgb(r, g, b)"] at every PLOTLY_STEP-th entry (explicit
    rgb() stops: Plotly drew its own hex stops wrongly near black); a fresh list each call."""
    entries = range(0, len(table), PLOTLY_STEP)
    return [[index / (len(table) - 1), "rgb({}, {}, {})".format(*table[index].tolist())] for index in entries]
