"""CBAM's spatial gate over the photo on its own range (gate_over_photo_figure) and DANet's two branch sizes
(branch_sizes_figure), against the overlay rule they are drawn with and the numbers they are given."""

import base64

import cv2
import numpy as np
import pytest

from attnviz.viz.colours import ATTENTION_COLOURS, plotly_scale
from attnviz.viz.figures import branch_sizes_figure, gate_over_photo_figure
from attnviz.viz.overlays import blend_heatmap


def decoded(source: str) -> np.ndarray:
    """The RGB image of a PNG data URL."""
    data = base64.b64decode(source.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def narrow_gate() -> np.ndarray:
    """A gate of 0.978 to 1.000 (as CBAM's last spatial gate on the first sample) with a pattern: low on the left."""
    columns = np.linspace(0.978, 1.0, 16)
    return np.tile(columns, (12, 1)).astype(np.float32)


def test_a_narrow_gate_is_drawn_on_its_own_range_and_its_colour_bar_says_so():
    photo = np.full((96, 128, 3), 128, np.uint8)
    gate = narrow_gate()
    fig = gate_over_photo_figure(photo, gate, "M_s from 0.9780 to 1.0000")
    heat, image = fig.data
    assert heat.zmin == pytest.approx(0.978, abs=1e-6) and heat.zmax == pytest.approx(1.0, abs=1e-6)
    assert heat.colorbar.title.text == "M_s" and list(map(list, heat.colorscale)) == plotly_scale()
    np.testing.assert_array_equal(heat.z, gate)  # the exact values on hover
    drawn = decoded(image.source)
    np.testing.assert_array_equal(drawn, blend_heatmap(photo, gate, 0.75, float(gate.min()), float(gate.max())))
    # on its own range the pattern shows: the left edge keeps the photo, the right is the brightest colour
    assert np.abs(drawn[:, 0].astype(int) - 128).max() <= 1
    right = drawn[48, -1].astype(float)
    expected = 0.25 * 128 + 0.75 * ATTENTION_COLOURS[255].astype(float)
    assert np.abs(right - expected).max() <= 2  # the bilinear upsampling's rounding at the edge
    # the same gate on 0 to 1 would barely differ from one side to the other: what the figure avoids
    flat = blend_heatmap(photo, gate, 0.75, 0.0, 1.0)
    assert np.abs(flat[:, 0].astype(int) - flat[:, -1].astype(int)).max() < 20 < np.abs(drawn[:, 0] - right).max()


def test_the_hover_grid_covers_the_photo_cell_by_cell():
    photo = np.zeros((90, 200, 3), np.uint8)
    gate = np.random.default_rng(0).random((9, 20)).astype(np.float32)
    heat, _ = gate_over_photo_figure(photo, gate, "t", panel_width=100).data
    width, height = 100, 45  # the photo scaled to the panel
    assert heat.x[0] == pytest.approx(width / 20 / 2 - 0.5) and heat.x[-1] == pytest.approx(width - width / 40 - 0.5)
    assert heat.y[0] == pytest.approx(height / 9 / 2 - 0.5) and len(heat.y) == 9


def test_the_branch_sizes_figure_shows_each_number():
    sizes = {"PAM: ‖αDSᵀ‖ / ‖A_p‖": 0.1861, "CAM: ‖βXA_c‖ / ‖A_c‖": 0.0117}
    fig = branch_sizes_figure(sizes, "t")
    (bars,) = fig.data
    assert list(bars.y) == list(sizes) and list(bars.x) == list(sizes.values())
    assert list(bars.text) == ["0.186", "0.012"]
    assert fig.layout.xaxis.range[1] > max(sizes.values())  # the longest bar and its number fit
