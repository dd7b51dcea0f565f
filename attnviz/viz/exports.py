"""The data behind a view as files a user can download: CSV tables and PNG images (pure functions).

Each CSV has a header and one row per cell or channel, with the full float
precision the app computed (not the rounded numbers shown on the page).
"""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np

__all__ = ["grid_csv", "vector_csv", "png_bytes", "overlay_png"]


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def grid_csv(values: np.ndarray, value_name: str) -> str:
    """A (h, w) map as rows (feature_row, feature_col, index, value); index = row * w + col."""
    values = np.asarray(values)
    height, width = values.shape
    return _csv(
        ["feature_row", "feature_col", "index", value_name],
        ((r, c, r * width + c, repr(float(values[r, c]))) for r in range(height) for c in range(width)),
    )


def vector_csv(columns: dict[str, np.ndarray], index_name: str = "channel") -> str:
    """Equal-length vectors as columns, one row per entry, with its index first."""
    arrays = [np.asarray(v).reshape(-1) for v in columns.values()]
    if len({a.size for a in arrays}) > 1:
        raise ValueError("all columns must have the same length")
    return _csv([index_name, *columns], ([i, *(repr(float(a[i])) for a in arrays)] for i in range(arrays[0].size)))


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) RGB uint8 -> PNG file bytes."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("the image could not be encoded as PNG")
    return encoded.tobytes()


def overlay_png(image: np.ndarray, view, opacity: float) -> bytes:
    """The Position page's overlay (attnviz.viz.overlays.position_overlay) as PNG bytes, made when asked: the map
    in the live canvas's colours and opacity (attnviz.viz.colours), so the file looks like the screen."""
    from attnviz.viz.overlays import position_overlay

    return png_bytes(position_overlay(image, view, opacity))
