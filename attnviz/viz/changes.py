"""The map of the pixels a switch changed (attnviz.analysis.switch): the photo, dimmed, with every changed pixel
marked, and on hover the class it had and the class it has now.

The photo is one raster image (a PNG data URL, small to send); the changed pixels are a Plotly heatmap over it,
sampled on `changed_grid`'s grid so that every cell can carry its hover text without sending one string per
photo pixel. Unchanged cells are gaps: nothing drawn, nothing to hover.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go

from attnviz.analysis.switch import ChangedGrid
from attnviz.viz.exports import png_bytes

__all__ = ["changed_pixels_figure", "CHANGED_COLOUR"]

CHANGED_COLOUR = "#e6007e"  # one strong magenta, unlike any CamVid class colour: where the answer moved
_DIM = 0.55  # how much of the photo's brightness the background keeps, so that the marks stand out


def _photo_url(image: np.ndarray) -> str:
    dimmed = (image.astype(np.float32) * _DIM + 255 * (1 - _DIM)).round().astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(png_bytes(dimmed)).decode("ascii")


def changed_pixels_figure(
    image: np.ndarray, grid: ChangedGrid, arrow: Callable[[int, int], str], title: str = ""
) -> go.Figure:
    """`image` (H, W, 3) with `grid`'s changed cells marked; hovering one shows `arrow(old, new)` ("Road →
    Sidewalk", in the page's language)."""
    height, width = image.shape[:2]
    marks = np.where(grid.changed, 1.0, np.nan)
    text = np.full(grid.changed.shape, "", dtype=object)
    for row, col in zip(*np.nonzero(grid.changed)):
        text[row, col] = arrow(int(grid.old[row, col]), int(grid.new[row, col]))
    figure = go.Figure(go.Image(source=_photo_url(image), x0=0, dx=1, y0=0, dy=1, hoverinfo="skip"))
    figure.add_trace(
        go.Heatmap(
            z=marks,
            x=grid.cols,
            y=grid.rows,
            customdata=text,
            hovertemplate="%{customdata}<extra></extra>",
            hoverongaps=False,
            colorscale=[[0, CHANGED_COLOUR], [1, CHANGED_COLOUR]],
            showscale=False,
            opacity=0.85,
        )
    )
    figure.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    figure.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    figure.update_layout(title=title, margin=dict(l=0, r=0, t=40, b=0), height=int(420 * height / max(width, 1)) + 40)
    return figure
