"""One colour map: the live canvas, the overlay PNG a user downloads and the Plotly figure show a value in the same
colour (attnviz.viz.colours).

The reference is computed independently of the table: Plotly's own interpolation of the figure's colour scale at
the value (plotly.colors.sample_colorscale), laid over the photo by the rule written out here,
photo * (1 - a) + colour * a with a = opacity * t."""

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import plotly.colors
import pytest
import torch

from attnviz.analysis.hover import grid_tables, hover_payload
from attnviz.capture.records import GlobalContextRecord
from attnviz.viz.colours import ATTENTION_COLOURS, CHANNEL_COLOURS, page_table
from attnviz.viz.exports import overlay_export, overlay_png
from attnviz.viz.figures import (
    attention_map_figure,
    branch_weights_figure,
    coordinate_attention_figure,
    gate_planes_figure,
    layer_weights_heatmap,
    pinned_maps_figure,
    sorted_weights_figure,
)

LEVELS = (0, 40, 96, 160, 215, 255)  # values t = level / 255: the canvas's table entry is exactly `level`
BLOCK, CELL = 3, 16  # each value fills BLOCK x BLOCK cells of CELL x CELL pixels
OPACITY = 0.8
PHOTO_RGB = (40, 120, 200)
GRID_HW = (BLOCK, BLOCK * len(LEVELS))
IMAGE_HW = (GRID_HW[0] * CELL, GRID_HW[1] * CELL)
# Plotly's scale takes every 5th entry of the table: its interpolation is within 1.2 of the table
# (attnviz.viz.colours.PLOTLY_STEP); the alpha is rounded to 1/255 (at most 0.5 on a colour), the result to 1
PLOTLY_TOLERANCE = 1.2 + 0.5 + 0.5


def _row() -> np.ndarray:
    """One row of S on the grid: each level's value over a block of cells, so that a block's middle cell is the
    same after any smoothing filter that reaches at most one cell away."""
    return np.repeat(np.asarray(LEVELS, np.float32) / 255, BLOCK)[None].repeat(BLOCK, 0)


def _middles() -> list[tuple[int, int]]:
    """(x, y) of the centre pixel of each block's middle cell (the canvas's cell centres, attnviz.analysis.geometry)."""
    tables = grid_tables(IMAGE_HW, GRID_HW)
    return [(tables["centre_x"][k * BLOCK + BLOCK // 2], tables["centre_y"][BLOCK // 2]) for k in range(len(LEVELS))]


def _photo() -> np.ndarray:
    return np.broadcast_to(np.asarray(PHOTO_RGB, np.uint8), (*IMAGE_HW, 3)).copy()


def _on_photo(rgb, alpha) -> np.ndarray:
    return np.asarray(PHOTO_RGB, float) * (1 - alpha) + np.asarray(rgb, float) * alpha


def _plotly_expected() -> list[np.ndarray]:
    """Each level's colour from the Plotly figure of the row, interpolated by Plotly's helpers, over the photo."""
    values = _row()
    heat = attention_map_figure(values, "row").data[0]
    low, high = float(values.min()), float(values.max())  # the figure's range: no zmin / zmax, the data's own
    expected = []
    for level in LEVELS:
        t = (level / 255 - low) / (high - low)
        sampled = plotly.colors.sample_colorscale([list(stop) for stop in heat.colorscale], [t])[0]
        colour = plotly.colors.unlabel_rgb(sampled)
        expected.append(_on_photo(colour, OPACITY * t))
    return expected


@pytest.mark.parametrize(("table", "name"), [(ATTENTION_COLOURS, "inferno"), (CHANNEL_COLOURS, "viridis")])
def test_each_table_is_matplotlibs_map_of_its_name(table, name):
    matplotlib = pytest.importorskip("matplotlib")
    reference = matplotlib.colormaps[name](np.arange(256) / 255)[:, :3] * 255
    assert np.abs(table - reference).max() <= 0.5 + 1e-6  # the table rounds to the nearest integer


def test_the_downloaded_overlay_shows_the_figures_colour_at_each_value():
    view = SimpleNamespace(values=_row(), top_centres=[], pixel_centre=(4, 4), pixel=(4, 4), mode="row", index=0)
    png = overlay_png(_photo(), view, OPACITY)  # the marks away from the blocks; the photo framed, zoomed
    framed = overlay_export(_photo(), view, OPACITY)
    top, left, height, width = framed.body
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    overlay = image[top : top + height : framed.zoom, left : left + width : framed.zoom]
    for (x, y), expected in zip(_middles(), _plotly_expected(), strict=True):
        np.testing.assert_allclose(overlay[y, x], expected, atol=PLOTLY_TOLERANCE)


def test_every_attention_figure_draws_in_the_same_scale():
    values = _row()
    scale = attention_map_figure(values, "row").data[0].colorscale
    pins = pinned_maps_figure([("", _photo(), [("1", values, (4, 4))])])
    planes = gate_planes_figure([SimpleNamespace(values=values, descriptor=None, mean_over="", axes=("h", "w"))], "g")
    assert pins.layout.coloraxis.colorscale == scale and planes.layout.coloraxis.colorscale == scale


def test_every_channel_figure_draws_the_channel_canvas_colours():
    """The figures of channel weights on [0, 1] show weight w in the channel canvas's table entry round(255 w)
    (the channel canvas of DANet's X draws CHANNEL_COLOURS), by Plotly's own interpolation of their scale."""
    weights = np.asarray(LEVELS, np.float32) / 255
    scale = layer_weights_heatmap(["layer"], [weights]).data[0].colorscale
    others = (
        sorted_weights_figure(weights, "w").data[0].marker.colorscale,
        branch_weights_figure(np.stack([weights, 1 - weights]), "b").data[0].colorscale,
        coordinate_attention_figure(weights[:, None], weights[:, None], "ca").layout.coloraxis.colorscale,
    )
    assert all(other == scale for other in others)
    sampled = plotly.colors.sample_colorscale([list(stop) for stop in scale], list(weights))
    shown = np.asarray([plotly.colors.unlabel_rgb(colour) for colour in sampled])
    # every 5th entry, linearly interpolated: within 1.2 of the table (attnviz.viz.colours.PLOTLY_STEP)
    np.testing.assert_allclose(shown, CHANNEL_COLOURS[list(LEVELS)], atol=1.2)


_RENDER = """async ({script, data}) => {
  const url = URL.createObjectURL(new Blob([script], {type: "text/javascript"}));
  const draw = (await import(url)).default;
  const parent = document.getElementById("parent");
  draw({data, parentElement: parent, setTriggerValue: () => {}});
  const context = parent.querySelector("canvas.overlay").getContext("2d");
  return data.points.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data));
}"""


@pytest.mark.browser
def test_the_live_canvas_shows_the_figures_colour_at_each_value():
    from attnviz.browser import CHROMIUM, chromium_page
    from attnviz.i18n import section
    from attnviz.viz.canvas import page_script

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    values = _row()
    record = GlobalContextRecord("gc", torch.from_numpy(values)[None])  # one shared map: the row is the map
    payload = {**hover_payload(record, IMAGE_HW).data, "title": ""}
    blank = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    data = {
        "version": "1",
        "photo": blank,
        "image_hw": list(IMAGE_HW),
        "panels": [payload],
        "mode": "row",
        "opacity": OPACITY,
        "scale": "own",
        "pixel": [4, 4],
        "pins": [],
        "labels": section("canvas", "en"),
        "colours": page_table(),
        "points": _middles(),
    }
    script = page_script(Path(__file__).resolve().parents[1] / "attnviz" / "app" / "attention_canvas.js")
    with chromium_page(60_000) as page:
        page.set_content('<div id="parent"><div class="attnviz-canvas"></div></div>')
        pixels = page.evaluate(_RENDER, {"script": script, "data": data})
    # the overlay canvas over the photo: its unpremultiplied read-back laid over the photo by hand. Beyond the
    # figure's tolerance, the browser keeps 8-bit premultiplied colour in two canvases (the cells, the overlay):
    # at most 0.5 each on the colour shown
    for (r, g, b, a), expected in zip(pixels, _plotly_expected(), strict=True):
        np.testing.assert_allclose(_on_photo((r, g, b), a / 255), expected, atol=PLOTLY_TOLERANCE + 1.0)
