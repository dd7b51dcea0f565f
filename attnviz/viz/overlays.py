"""Pure image compositing: arrays in, RGB uint8 arrays out (no Streamlit, no Plotly).

Used for the clickable photo of the position page (streamlit-image-coordinates
shows a plain image), the PNGs a user downloads and the figures' raster panels, and for prediction / label
overlays. A map over the photo is drawn as the live canvas draws it (`blend_heatmap`, attnviz.viz.colours).
"""

from __future__ import annotations

import cv2
import numpy as np

from attnviz.data.camvid import IGNORE_INDEX, colourise
from attnviz.viz.colours import opacity_of, scaled, table_colours

__all__ = [
    "blend_heatmap",
    "blend_labels",
    "class_colours",
    "blend_classes",
    "draw_markers",
    "feature_to_image",
    "position_overlay",
]


def blend_heatmap(
    image: np.ndarray, values: np.ndarray, opacity: float = 0.6, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """The photo (H, W, 3) with a feature-resolution map (h, w) laid over it as the live canvas draws it
    (attention_canvas.js, paintMap; the rule of attnviz.viz.colours): each cell coloured by its value t on
    [vmin, vmax] with opacity `opacity * t`, the cells' premultiplied colour and opacity upsampled smoothly to
    the photo, laid over it. What differs: the canvas's browser upsamples with its own smoothing filter (Chromium's
    "high" quality), here bilinear (cv2.INTER_LINEAR, half-pixel centres): they agree to rounding where a cell's
    neighbours hold its value, and by a few levels across the steps between cells (3.4 of 255 at most, measured in
    Chromium on the map of tests/test_colours.py)."""
    height, width = image.shape[:2]
    low = float(np.nanmin(values)) if vmin is None else vmin
    high = float(np.nanmax(values)) if vmax is None else vmax
    t = scaled(values, low, high)
    alpha = opacity_of(t, opacity)[..., None]
    cells = np.concatenate([table_colours(t) * alpha, alpha], axis=-1).astype(np.float32)
    layers = cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, 4)
    colour, cover = layers[..., :3], layers[..., 3:]
    return np.clip(image.astype(np.float32) * (1 - cover) + colour, 0, 255).round().astype(np.uint8)


def blend_labels(image: np.ndarray, label: np.ndarray, opacity: float = 0.55) -> np.ndarray:
    """The photo with class colours (CamVid palette) laid over it; unlabelled pixels left as they are."""
    colours = colourise(label).astype(np.float32)
    out = image.astype(np.float32)
    mask = (label < IGNORE_INDEX)[..., None]
    out = np.where(mask, out * (1 - opacity) + colours * opacity, out)
    return out.round().astype(np.uint8)


def class_colours(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8: distinct colours for any number of classes (hues spaced by the golden ratio)."""
    hues = (np.arange(num_classes) * 0.618034) % 1.0
    hsv = np.stack([hues * 179, np.full(num_classes, 200), np.full(num_classes, 230)], 1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def blend_classes(image: np.ndarray, prediction: np.ndarray, num_classes: int, opacity: float = 0.55) -> np.ndarray:
    """The photo with every pixel tinted by its class (`class_colours`): for models whose classes are not
    CamVid's."""
    colours = class_colours(max(int(num_classes), int(prediction.max()) + 1))[prediction].astype(np.float32)
    return (image.astype(np.float32) * (1 - opacity) + colours * opacity).round().astype(np.uint8)


def draw_markers(
    image: np.ndarray, points: list[tuple[int, int]], colour=(0, 255, 255), radius: int = 7, cross: bool = False
) -> np.ndarray:
    """Circles (or a cross) at (x, y) image points; returns a new array."""
    out = np.ascontiguousarray(image.copy())
    for x, y in points:
        if cross:
            cv2.drawMarker(out, (int(x), int(y)), (0, 0, 0), cv2.MARKER_CROSS, radius * 3, 5)
            cv2.drawMarker(out, (int(x), int(y)), colour, cv2.MARKER_CROSS, radius * 3, 2)
        else:
            cv2.circle(out, (int(x), int(y)), radius, (0, 0, 0), 3)
            cv2.circle(out, (int(x), int(y)), radius, colour, 2)
    return out


def feature_to_image(feature: np.ndarray) -> np.ndarray:
    """One channel (h, w) -> normalised floats in [0, 1] for display (constant maps give 0)."""
    low, high = float(feature.min()), float(feature.max())
    if high <= low:
        return np.zeros_like(feature, dtype=np.float32)
    return ((feature - low) / (high - low)).astype(np.float32)


def position_overlay(image: np.ndarray, view, opacity: float = 0.6) -> np.ndarray:
    """The photo with a Position-page view (attnviz.analysis.views.PositionView) laid over it: its row or column of S,
    cyan circles at its top locations, a green cross at the chosen cell."""
    overlay = draw_markers(blend_heatmap(image, view.values, opacity), view.top_centres, colour=(0, 255, 255))
    return draw_markers(overlay, [view.pixel_centre], colour=(0, 255, 0), cross=True)
