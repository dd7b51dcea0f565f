"""Downloads: CSV tables and PNG images read back to the numbers they came from."""

import csv
import io
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from attnviz.analysis.forward import click_to_image_point, parse_image_point
from attnviz.viz.colours import ATTENTION_COLOURS, CHANNEL_COLOURS
from attnviz.viz.exports import (
    channel_map_export,
    channel_map_png,
    channel_ticks,
    grid_csv,
    nice_ticks,
    overlay_export,
    overlay_png,
    png_bytes,
    vector_csv,
)
from attnviz.viz.overlays import position_overlay


def test_grid_csv_round_trips_every_cell_at_full_precision():
    values = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    rows = list(csv.DictReader(io.StringIO(grid_csv(values, "S_row_5"))))
    assert len(rows) == 12 and list(rows[0]) == ["feature_row", "feature_col", "index", "S_row_5"]
    for row in rows:
        r, c, i = int(row["feature_row"]), int(row["feature_col"]), int(row["index"])
        assert i == r * 4 + c and float(row["S_row_5"]) == float(values[r, c])


def test_vector_csv_columns_and_length_check():
    text = vector_csv({"weight": np.array([0.25, 0.5]), "avg": np.array([1.0, -2.0])})
    assert text == "channel,weight,avg\n0,0.25,1.0\n1,0.5,-2.0\n"
    with pytest.raises(ValueError):
        vector_csv({"a": np.zeros(2), "b": np.zeros(3)})


def test_png_bytes_decode_to_the_same_rgb_image():
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(png_bytes(image), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, image)


def test_clicks_and_link_points_map_onto_the_photo():
    # a 480x360 photo shown 240 pixels wide: display coordinates double
    assert click_to_image_point({"x": 60, "y": 45, "width": 240, "height": 180}, (360, 480)) == (120.0, 90.0)
    assert click_to_image_point({"x": 1000, "y": -5, "width": 240, "height": 180}, (360, 480)) == (479.0, 0.0)
    assert click_to_image_point({"x": 1, "y": 1, "width": 0, "height": 180}, (360, 480)) is None
    assert click_to_image_point({"x": "nan", "y": 1, "width": 240, "height": 180}, (360, 480)) is None
    assert parse_image_point("100", "200", (360, 480)) == (100.0, 200.0)
    for x, y in (("480", "10"), ("-1", "10"), ("abc", "10"), (None, "10"), ("10", "360")):
        assert parse_image_point(x, y, (360, 480)) is None


def _decoded(png: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _bar_follows(framed, table: np.ndarray) -> None:
    """The bar's middle column, bottom to top, is the table from its first entry to its last, in order."""
    top, left, height, width = framed.bar
    column = framed.image[top : top + height, left + width // 2].astype(int)[::-1]
    distance = np.abs(column[:, None, :] - table[None].astype(int)).sum(-1)
    nearest = distance.argmin(1)
    assert distance.min(1).max() == 0  # every pixel is an entry of the table itself
    assert nearest[0] == 0 and nearest[-1] == 255 and np.all(np.diff(nearest) >= 0)


def _caption_inked(framed) -> int:
    strip = framed.image[framed.caption_top :]
    return int((strip.min(-1) < 128).sum())


def _view(mode: str = "row"):
    values = np.random.default_rng(2).random((9, 12)) ** 4
    return SimpleNamespace(
        values=values / values.sum(),
        top_centres=[(100, 60)],
        pixel_centre=(200, 150),
        pixel=(203, 148),
        mode=mode,
        index=57,
    )


def test_the_overlay_png_is_the_overlay_twice_with_its_colour_bar_and_caption():
    photo = np.random.default_rng(3).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    view = _view()
    framed = overlay_export(photo, view, 0.6, "DANet PAM · model m · photo p")
    image = _decoded(overlay_png(photo, view, 0.6, "DANet PAM · model m · photo p"))
    np.testing.assert_array_equal(image, framed.image)  # the file is the framed image
    top, left, height, width = framed.body
    assert (height, width) == (720, 960) and framed.zoom == 2  # a 480 x 360 photo twice
    # the rest (bar, ticks, caption) adds a border, not another photo's worth
    assert 960 < image.shape[1] < 960 + 240 and 720 < image.shape[0] < 720 + 240
    body = image[top : top + height, left : left + width]
    overlay = position_overlay(photo, view, 0.6)
    np.testing.assert_array_equal(body[::2, ::2], overlay)
    np.testing.assert_array_equal(body[1::2, 1::2], overlay)
    _bar_follows(framed, ATTENTION_COLOURS)
    assert framed.bar[0] == top and framed.bar[2] == height and framed.bar[1] >= left + width
    assert _caption_inked(framed) > 200  # text under the photo
    zh = overlay_export(photo, view, 0.6, "", "zh")
    assert _caption_inked(zh) > 50


def test_the_overlay_png_of_a_large_photo_is_not_enlarged():
    photo = np.zeros((600, 1000, 3), np.uint8)
    framed = overlay_export(photo, _view("column"), 0.6)
    assert framed.zoom == 1 and framed.body[2:] == (600, 1000)


def test_the_x_png_draws_x_in_the_channel_colours_with_ticks_bar_and_caption():
    rng = np.random.default_rng(4)
    x = rng.random((64, 64))
    x /= x.sum(1, keepdims=True)
    framed = channel_map_export(x, "DANet CAM · model m · photo p", "zh")
    np.testing.assert_array_equal(_decoded(channel_map_png(x, "DANet CAM · model m · photo p", "zh")), framed.image)
    top, left, height, width = framed.body
    zoom = framed.zoom
    assert height == width == 64 * zoom and width >= 0.8 * 960
    # each entry is its block, coloured by the canvas's rule on X's own range (channel_canvas.js)
    t = (x - x.min()) / (x.max() - x.min())
    expected = CHANNEL_COLOURS[np.floor(t * 255 + 0.5).astype(int)]
    np.testing.assert_array_equal(framed.image[top : top + height : zoom, left : left + width : zoom], expected)
    _bar_follows(framed, CHANNEL_COLOURS)
    # ticks: ink left of the map and under it, at the ticked channels' rows and columns
    step = channel_ticks(64, zoom)
    assert step * zoom >= 48 and (step == 1 or step // 2 * zoom < 48)
    for channel in range(0, 64, step):
        y = top + channel * zoom + zoom // 2
        assert (framed.image[y, left - 6 : left - 1].min(-1) < 128).all()
        x_pixel = left + channel * zoom + zoom // 2
        assert (framed.image[top + height : top + height + 5, x_pixel].min(-1) < 128).all()
    assert _caption_inked(framed) > 100


def test_nice_ticks_are_round_and_inside_the_range():
    assert nice_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ticks = nice_ticks(0.00013, 0.0213)
    assert all(0.00013 <= v <= 0.0213 for v in ticks) and 3 <= len(ticks) <= 8
    steps = np.diff(ticks)
    np.testing.assert_allclose(steps, steps[0])
    assert nice_ticks(2.0, 2.0) == [2.0]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_flexible_charts_legend_sits_whole_below_the_axis_title(language):
    """The exported legend was cut and ran into the axis title when it hung under the plot at y = -0.25 of the
    plot's height: it now sits on the figure's bottom edge, in a bottom margin with room for the ticks, the axis
    title and two rows of legend at a slide's 18 px (3 lines of 18 px and their gaps, about 26 px each, and
    the ticks' 18 px)."""
    from attnviz.viz.figures import branches_figure

    weights = np.linspace(0.1, 0.9, 8)
    figure = branches_figure(np.zeros(8), np.zeros(8), weights, "t", language=language)
    legend, margin = figure.layout.legend, figure.layout.margin
    assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom")
    assert margin.b >= 18 + 3 * 26 and figure.layout.height - margin.t - margin.b >= 200  # the plot keeps its room
    assert [trace.name for trace in figure.data][-1] == "ω = σ(avg + max)"


def _panels(figure) -> list[np.ndarray]:
    """The RGB rasters of a pinned-maps figure, in order."""
    import base64

    sources = [trace.source for trace in figure.data if trace.type == "image"]
    return [_decoded(base64.b64decode(source.split(",", 1)[1])) for source in sources]


def _pins_rows(photo):
    """Two pins: a 2 x 2 block of cells at the top of its map (whose middle pixel is exactly the block's value
    after bilinear upsampling), the second map half the first; the pins far from the block."""
    first = np.zeros((4, 4))
    first[1:3, 1:3] = 0.02
    return [("", photo, [("pin 1", first, (2, 2)), ("pin 2", first / 2, (3, 3))])]


@pytest.mark.parametrize(("scale", "second_level"), [("own", 1.0), ("shared", 0.5)])
def test_the_pins_figure_draws_each_map_on_the_pages_colour_scale(scale, second_level):
    """ "own": each map's highest value takes the top of the colour map (no panel dark for a small maximum);
    "shared": the second map, half the first, takes the middle. Expected colours from the table and the canvas's
    rule (attnviz.viz.colours): t = (v - low) / (high - low), entry round(255 t) at opacity `opacity * t`."""
    from attnviz.viz.figures import pinned_maps_figure

    photo = np.full((256, 256, 3), 128, np.uint8)
    opacity = 0.8
    figure = pinned_maps_figure(_pins_rows(photo), opacity, panel_width=256, scale=scale)
    for panel, level in zip(_panels(figure), (1.0, second_level), strict=True):
        alpha = np.floor(255 * opacity * level + 0.5) / 255
        expected = 128 * (1 - alpha) + ATTENTION_COLOURS[int(np.floor(255 * level + 0.5))] * alpha
        np.testing.assert_allclose(panel[128, 128], expected, atol=1.0)
        # where the map is at its lowest the photo shows as it is (colour only where attention is high)
        np.testing.assert_array_equal(panel[250, 128], [128, 128, 128])
    bar = figure.layout.coloraxis
    if scale == "shared":
        assert (bar.cmin, bar.cmax) == (0.0, 0.02)
    else:
        assert (bar.cmin, bar.cmax) == (0.0, 1.0) and len(bar.colorbar.ticktext) == 2
        titles = [annotation.text for annotation in figure.layout.annotations]
        assert "0 – 0.02" in titles[0] and "0 – 0.01" in titles[1]


@pytest.mark.parametrize("scale", ["own", "shared"])
def test_the_pins_figures_panels_fill_their_plots_under_their_titles(scale):
    """No gap under a title: each panel's plot is exactly the photo at panel_width pixels (its image fills it),
    and a title sits on its plot's top edge."""
    from attnviz.viz.figures import pinned_maps_figure

    photo = np.full((360, 480, 3), 128, np.uint8)
    rows = _pins_rows(photo) + [("beside", photo, _pins_rows(photo)[0][2][:1])]
    figure = pinned_maps_figure(rows, panel_width=320, scale=scale)
    layout = figure.layout
    plot_width = layout.width - layout.margin.l - layout.margin.r
    plot_height = layout.height - layout.margin.t - layout.margin.b
    for n in (1, 2, 3):
        x_domain = layout[f"xaxis{n if n > 1 else ''}"].domain
        y_domain = layout[f"yaxis{n if n > 1 else ''}"].domain
        assert abs((x_domain[1] - x_domain[0]) * plot_width - 320) < 0.5
        assert abs((y_domain[1] - y_domain[0]) * plot_height - 240) < 0.5
    tops = {round(layout[f"yaxis{n if n > 1 else ''}"].domain[1], 6) for n in (1, 2, 3)}
    title_heights = {round(annotation.y, 6) for annotation in layout.annotations if annotation.text}
    assert title_heights and title_heights <= tops
