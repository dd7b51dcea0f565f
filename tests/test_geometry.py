"""One geometry (attnviz.analysis.geometry): every path from a photo pixel to a feature cell agrees, for any photo
size."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from attnviz.analysis import geometry
from attnviz.analysis.affinity import cell_labels
from attnviz.analysis.attribution import cell_mass, pixel_target
from attnviz.analysis.forward import (
    class_fractions,
    click_to_image_point,
    feature_centre,
    feature_index,
    parse_image_point,
)
from attnviz.viz.overlays import blend_heatmap

FIXED_SIZES = [(37, 53), (361, 479), (360, 480), (8, 8), (9, 17), (1, 1), (3, 200)]


def _sizes():
    rng = np.random.default_rng(13)
    return FIXED_SIZES + [tuple(int(v) for v in rng.integers(1, 400, 2)) for _ in range(8)]


def _naive_cell(x, y, image_hw, feature_hw):
    """The proportional rule written out with exact fractions."""
    (height, width), (fh, fw) = image_hw, feature_hw
    return int(Fraction(y * fh, height)) * fw + int(Fraction(x * fw, width))


@pytest.mark.parametrize("image_hw", _sizes())
def test_every_path_maps_a_pixel_to_the_same_cell(image_hw):
    height, width = image_hw
    feature_hw = geometry.feature_size(image_hw)
    fh, fw = feature_hw
    assert feature_hw == (-(-height // 8), -(-width // 8))
    rng = np.random.default_rng(height * 1000 + width)
    prediction = rng.integers(0, 11, image_hw).astype(np.uint8)
    for _ in range(25):
        # a click anywhere on the photo shown at some size, at a fractional position
        shown_w = float(rng.uniform(0.3, 2.5) * width)
        shown_h = shown_w * height / width
        click = {
            "x": float(rng.uniform(0, shown_w)),
            "y": float(rng.uniform(0, shown_h)),
            "width": shown_w,
            "height": shown_h,
        }
        x, y = click_to_image_point(click, image_hw)
        assert isinstance(x, int) and isinstance(y, int) and 0 <= x < width and 0 <= y < height
        cell = feature_index(x, y, image_hw, feature_hw)
        assert cell == _naive_cell(x, y, image_hw, feature_hw)
        # what the page shows and what the link holds are these integers; reading the link gives them back
        assert f"{x:.0f}" == str(x) and parse_image_point(str(x), str(y), image_hw) == (x, y)
        assert feature_index(*parse_image_point(str(x), str(y), image_hw), image_hw, feature_hw) == cell
        # the cell's pixel span holds the pixel, and its centre maps back to it
        row, col = divmod(cell, fw)
        (x0, x1), (y0, y1) = geometry.cell_span(col, width, fw), geometry.cell_span(row, height, fh)
        assert x0 <= x < x1 and y0 <= y < y1
        assert feature_index(*feature_centre(cell, image_hw, feature_hw), image_hw, feature_hw) == cell
        # class shares: a label that marks just this pixel's class shows up in this cell and no other
        label = np.full(image_hw, 3, dtype=np.uint8)
        label[y, x] = 5
        shares = class_fractions(label, feature_hw)[5].ravel()
        assert np.flatnonzero(shares).tolist() == [cell]
        batch = torch.from_numpy(np.stack([label, np.full(image_hw, 5, dtype=np.uint8)]))
        torch_shares = geometry.cell_shares(batch.long(), feature_hw, 12)[:, 5].flatten(1)
        assert torch.nonzero(torch_shares[0]).ravel().tolist() == [cell] and (torch_shares[1] == 1).all()
        # the attribution target is this pixel; attribution at this pixel only pools into this cell
        class_id, ty, tx = pixel_target(prediction, x, y)
        assert class_id == prediction[y, x] and feature_index(tx, ty, image_hw, feature_hw) == cell
        attribution = torch.zeros(3, height, width)
        attribution[1, ty, tx] = -2.0
        assert torch.nonzero(cell_mass(attribution, feature_hw).ravel()).ravel().tolist() == [cell]
        # a map of this cell alone, drawn over a black photo (smoothly, as the canvas draws it), is brightest in
        # this cell
        grid = np.zeros(feature_hw, dtype=np.float32)
        grid.flat[cell] = 1.0
        drawn = blend_heatmap(np.zeros((height, width, 3), np.uint8), grid, opacity=1.0).sum(-1)
        brightest_y, brightest_x = np.unravel_index(int(drawn.argmax()), drawn.shape)
        assert feature_index(int(brightest_x), int(brightest_y), image_hw, feature_hw) == cell


def test_a_fractional_click_keeps_its_cell_through_the_link():
    # the reported bug: x = 151.94 on a 480-wide photo shown at 480 showed "x = 152", column 18 (index 1398);
    # the link held x=152 and reopened column 19 (index 1399)
    image_hw, feature_hw = (360, 480), (45, 60)
    x, y = click_to_image_point({"x": 151.94, "y": 187.5, "width": 480, "height": 360}, image_hw)
    assert (x, y) == (151, 187)
    before = feature_index(x, y, image_hw, feature_hw)
    assert before == 23 * 60 + 18 == 1398
    link = {"x": str(x), "y": str(y)}  # what write_link puts in the address bar
    assert feature_index(*parse_image_point(link["x"], link["y"], image_hw), image_hw, feature_hw) == before


def test_clicks_and_links_snap_once_to_a_pixel_inside_the_photo():
    hw = (37, 53)
    assert click_to_image_point({"x": 1e6, "y": -3.2, "width": 53, "height": 37}, hw) == (52, 0)
    assert click_to_image_point({"x": 52.999, "y": 36.5, "width": 53, "height": 37}, hw) == (52, 36)
    for bad in (
        {"x": 1, "y": 1},
        {"x": "inf", "y": 1, "width": 5, "height": 5},
        {"x": 1, "y": 1, "width": -5, "height": 5},
    ):
        assert click_to_image_point(bad, hw) is None
    assert parse_image_point("12.7", "3", hw) == (12, 3)
    for x, y in (("53", "0"), ("0", "37"), ("-0.5", "1"), ("nan", "1"), ("inf", "1"), ("", "1"), (None, None)):
        assert parse_image_point(x, y, hw) is None
    with pytest.raises(TypeError):
        feature_index(151.94, 187.0, (360, 480), (45, 60))
    with pytest.raises(ValueError):
        feature_index(480, 0, (360, 480), (45, 60))
    with pytest.raises(TypeError):
        pixel_target(np.zeros((4, 4)), 1.5, 2)


@pytest.mark.parametrize("image_hw", _sizes())
def test_pooling_shares_sum_to_one_and_a_constant_label_is_one_class(image_hw):
    feature_hw = geometry.feature_size(image_hw)
    constant = np.full(image_hw, 7, dtype=np.uint8)
    shares = class_fractions(constant, feature_hw)
    np.testing.assert_array_equal(shares[7], 1.0)
    assert shares.sum() == shares[7].sum()
    rng = np.random.default_rng(image_hw[0] + 7 * image_hw[1])
    label = rng.integers(0, 12, image_hw).astype(np.uint8)
    np.testing.assert_allclose(class_fractions(label, feature_hw).sum(0), 1.0, rtol=0, atol=1e-12)
    batch = torch.from_numpy(rng.integers(0, 12, (3, *image_hw)))
    np.testing.assert_allclose(geometry.cell_shares(batch, feature_hw, 12).sum(1).numpy(), 1.0, atol=1e-6)
    # every cell holds pixels, and cell sizes differ by at most one row or column
    counts = geometry.pixel_counts(image_hw, feature_hw)
    assert counts.min() > 0 and counts.sum() == image_hw[0] * image_hw[1]
    spans = [[b - a for a, b in (geometry.cell_span(c, n, m) for c in range(m))] for n, m in zip(image_hw, feature_hw)]
    assert all(max(s) - min(s) <= 1 for s in spans)


@pytest.mark.parametrize("image_hw, feature_hw", [((37, 53), (5, 7)), ((20, 30), (7, 4)), ((16, 16), (2, 2))])
def test_pooling_averages_exactly_the_pixels_of_each_cell(image_hw, feature_hw):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, (2, *image_hw))
    values = rng.normal(size=(2, *image_hw))
    cells = np.array(
        [[_naive_cell(x, y, image_hw, feature_hw) for x in range(image_hw[1])] for y in range(image_hw[0])]
    )
    n = feature_hw[0] * feature_hw[1]
    expected_shares = np.zeros((2, 4, n))
    expected_majority = np.zeros((2, n), dtype=np.int64)
    expected_means = np.zeros((2, n))
    for b in range(2):
        for cell in range(n):
            inside = cells == cell
            counts = np.bincount(labels[b][inside], minlength=4)
            expected_shares[b, :, cell] = counts / inside.sum()
            expected_majority[b, cell] = counts.argmax()
            expected_means[b, cell] = values[b][inside].mean()
    np.testing.assert_array_equal(geometry.cell_map(image_hw, feature_hw), cells)
    np.testing.assert_allclose(geometry.cell_shares(labels, feature_hw, 4).reshape(2, 4, n), expected_shares)
    np.testing.assert_allclose(
        geometry.cell_shares(torch.from_numpy(labels), feature_hw, 4).reshape(2, 4, n).numpy(),
        expected_shares,
        rtol=1e-6,
    )
    np.testing.assert_array_equal(cell_labels(torch.from_numpy(labels), feature_hw).numpy(), expected_majority)
    np.testing.assert_array_equal(geometry.cell_majority(labels, feature_hw, 4).reshape(2, n), expected_majority)
    np.testing.assert_allclose(geometry.cell_means(values, feature_hw).reshape(2, n), expected_means)
    np.testing.assert_allclose(
        geometry.cell_means(torch.from_numpy(values), feature_hw).reshape(2, n).numpy(), expected_means
    )


def test_labels_outside_the_classes_are_refused_or_unlabelled():
    with pytest.raises(ValueError):
        geometry.cell_shares(np.array([[0, 4]]), (1, 1), 4)
    with pytest.raises(ValueError):  # a grid finer than the photo would have cells without pixels
        geometry.cell_shares(np.zeros((4, 4), dtype=np.int64), (5, 4), 2)
    label = np.array([[3, 255], [3, 3]], dtype=np.uint8)  # 255: not a class, counted as unlabelled (11)
    np.testing.assert_allclose(class_fractions(label, (1, 1))[[3, 11], 0, 0], [0.75, 0.25])
    assert cell_labels(torch.tensor([[[255, 255], [255, 3]]]), (1, 1)).tolist() == [[11]]


@pytest.fixture
def runs_enter_through_app_py(monkeypatch):
    """As in tests/test_app.py: every AppTest run executes app.py (st.navigation), as the served app does."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def test_the_position_page_link_reopens_the_clicked_cell(runs_enter_through_app_py):
    """End to end on the Position page: the click at x = 151.94 shows x = 151 and cell 1398, writes x=151 into the
    link, and the link reopens cell 1398."""
    from streamlit.testing.v1 import AppTest

    from attnviz.models import list_checkpoints

    if "danet-eca" not in list_checkpoints():
        pytest.skip("no shipped danet-eca checkpoint")
    from pathlib import Path

    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=180)
    at.query_params.update({"model": "danet-eca"})
    at.switch_page("pages/position.py").run()
    at.session_state["pam_click"] = {"x": 151.94, "y": 187.5, "width": 480, "height": 360}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "x = 151, y = 187 in the photo" in text and "row 23, column 18 (index i = 1398 " in text
    link = {k: at.query_params[k] for k in at.query_params}
    link = {k: v[0] if isinstance(v, list) else v for k, v in link.items()}
    assert (link["x"], link["y"]) == ("151", "187")
    again = AppTest.from_file(app, default_timeout=180)
    again.query_params.update(link)
    again.switch_page("pages/position.py").run()
    assert not again.exception, [e.value for e in again.exception]
    assert "row 23, column 18 (index i = 1398 " in " ".join(m.value for m in again.markdown)


@pytest.mark.parametrize("image_hw", [(37, 53), (361, 479), (64, 96)])
def test_feature_size_is_the_grid_the_network_gives(image_hw):
    from attnviz.capture import PositionAttentionRecord, capture
    from attnviz.models import build_model

    torch.manual_seed(0)
    model = build_model("danet-none", width=0.125).eval()
    with torch.no_grad(), capture(model) as rec:
        model(torch.rand(1, 3, *image_hw))
    pam = next(iter(rec.of_type(PositionAttentionRecord).values()))
    assert (pam.height, pam.width) == geometry.feature_size(image_hw)
