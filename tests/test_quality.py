"""Honest comparisons: the bootstrap on confusion sets whose answer is known, and the
semantic-vs-near measures on attention rows built by hand."""

import math

import numpy as np
import pytest

from attnviz.analysis.forward import own_class_ratio
from attnviz.analysis.metrics import iou_from_confusion
from attnviz.analysis.quality import (
    far_key_own_class_ratio,
    near_mass,
    nearest_cells_mask,
    query_measures,
    row_entropy,
    summarise_measures,
)
from attnviz.analysis.uncertainty import bootstrap_interval, paired_difference_interval, resample_counts, resampled_miou

K = 3


def photo_confusions(rng, photos, accuracy):
    """(photos, K, K) confusion matrices of a model that labels `accuracy` of each photo's pixels right."""
    out = np.zeros((photos, K, K), dtype=np.int64)
    for p in range(photos):
        for c in range(K):
            pixels = int(rng.integers(50, 500))
            right = int(round(accuracy[p] * pixels))
            out[p, c, c] = right
            out[p, c, (c + 1) % K] = pixels - right
    return out


def naive_miou(confusion):
    return float(np.nanmean(iou_from_confusion(confusion)))


def test_resampled_miou_equals_the_miou_of_the_drawn_photos():
    rng = np.random.default_rng(1)
    confusions = photo_confusions(rng, 12, rng.uniform(0.3, 0.9, 12))
    counts = resample_counts(12, resamples=5, seed=4)
    assert (counts.sum(1) == 12).all()
    for row, value in zip(counts, resampled_miou(confusions, counts)):
        drawn = np.repeat(np.arange(12), row)
        assert value == pytest.approx(naive_miou(confusions[drawn].sum(0)))


def test_interval_holds_the_split_miou_and_narrows_with_more_photos():
    rng = np.random.default_rng(2)
    few = photo_confusions(rng, 20, rng.uniform(0.4, 0.9, 20))
    many = photo_confusions(rng, 400, rng.uniform(0.4, 0.9, 400))
    small, large = bootstrap_interval(few, 1000), bootstrap_interval(many, 1000)
    assert small["low"] < small["miou"] < small["high"]
    assert small["miou"] == pytest.approx(naive_miou(few.sum(0)))
    assert (large["high"] - large["low"]) < (small["high"] - small["low"]) / 2


def test_identical_models_differ_by_an_interval_around_zero():
    rng = np.random.default_rng(3)
    confusions = photo_confusions(rng, 60, rng.uniform(0.3, 0.9, 60))
    result = paired_difference_interval(confusions, confusions.copy(), 1000)
    assert result["difference"] == 0 and result["low"] <= 0 <= result["high"]
    assert not result["beyond_noise"]


def test_two_models_equal_on_average_but_not_per_photo_are_within_noise():
    rng = np.random.default_rng(5)
    accuracy = rng.uniform(0.3, 0.9, 80)
    a = photo_confusions(np.random.default_rng(9), 80, accuracy)
    b = photo_confusions(np.random.default_rng(9), 80, rng.permutation(accuracy))
    result = paired_difference_interval(a, b, 1000)
    assert result["low"] <= 0 <= result["high"] and not result["beyond_noise"]


def test_a_model_better_on_every_photo_is_beyond_noise():
    rng = np.random.default_rng(4)
    accuracy = rng.uniform(0.3, 0.8, 40)
    worse = photo_confusions(np.random.default_rng(7), 40, accuracy)
    better = photo_confusions(np.random.default_rng(7), 40, accuracy + 0.02)  # same pixels, 2 points more right
    result = paired_difference_interval(better, worse, 1000)
    assert result["low"] > 0 and result["beyond_noise"]
    reverse = paired_difference_interval(worse, better, 1000)
    assert reverse["high"] < 0 and reverse["difference"] == pytest.approx(-result["difference"])


def test_paired_difference_refuses_different_photo_sets():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="different photos"):
        paired_difference_interval(photo_confusions(rng, 5, np.full(5, 0.5)), photo_confusions(rng, 6, np.full(6, 0.5)))


# ----------------------------------------------------------------------------- semantic or near
H, W = 24, 32  # feature grid
N = H * W


def striped_label(stripe=4, classes=6):
    """A label map at 8x the grid: vertical stripes `stripe` cells wide, repeating over `classes` classes."""
    cols = (np.arange(W * 8) // (8 * stripe)) % classes
    return np.tile(cols, (H * 8, 1)).astype(np.int64)


def queries(label, count=30, seed=0):
    rng = np.random.default_rng(seed)
    cells = rng.choice(N, size=count, replace=False)
    rows, cols = np.divmod(cells, W)
    classes = label[rows * 8 + 4, cols * 8 + 4]
    return cells, classes


def test_nearest_mask_counts_cells_by_grid_distance():
    mask = nearest_cells_mask([0, 5 * W + 7], (H, W), 5 / N)
    assert mask.sum(1).tolist() == [5, 5]
    # around an inner cell: itself and its 4 neighbours (distance 1) are the 5 nearest
    expected = {5 * W + 7, 4 * W + 7, 6 * W + 7, 5 * W + 6, 5 * W + 8}
    assert set(np.flatnonzero(mask[1])) == expected
    # the corner cell: itself, 2 at distance 1, 1 at sqrt(2), then ties at 2 broken by the lower index
    assert set(np.flatnonzero(mask[0])) == {0, 1, W, W + 1, 2}


def test_local_attention_is_near_not_semantic():
    """A row spread evenly over the query's nearest 5% of cells, over a class-blind uniform floor:
    own-class ratio high (neighbours share the class), far-key ratio 1 (the far keys are uniform)."""
    label = striped_label()
    cells, classes = queries(label)
    local = nearest_cells_mask(cells, (H, W), 0.05).astype(np.float64)
    rows = 0.95 * local / local.sum(1, keepdims=True) + 0.05 / N
    rows = rows.reshape(-1, H, W)
    plain = own_class_ratio(rows, label, classes)
    far = far_key_own_class_ratio(rows, label, cells, classes)
    assert np.nanmean(plain) > 2.5
    np.testing.assert_allclose(far, 1.0, atol=1e-9)
    assert near_mass(rows, cells).mean() == pytest.approx(0.95 + 0.05 * math.ceil(0.05 * N) / N)


def test_class_uniform_attention_is_semantic_near_and_far():
    label = striped_label()
    cells, classes = queries(label)
    cell_class = label[4::8, 4::8]  # (H, W): one class per cell
    rows = (cell_class[None] == classes[:, None, None]).astype(np.float64)
    rows /= rows.sum((1, 2), keepdims=True)
    chance = np.bincount(label.ravel(), minlength=6)[classes] / label.size
    plain = own_class_ratio(rows, label, classes)
    far = far_key_own_class_ratio(rows, label, cells, classes)
    np.testing.assert_allclose(plain, 1 / chance)  # all mass on the class
    assert (far > 2.5).all()
    # all far mass is on the class too: the ratio is 1 / (the class's share of the far cells)
    far_cells = ~nearest_cells_mask(cells, (H, W), 0.10)
    far_chance = (far_cells & (cell_class.ravel()[None] == classes[:, None])).sum(1) / far_cells.sum(1)
    np.testing.assert_allclose(far, 1 / far_chance)


def test_entropy_of_a_uniform_row_is_log_n_and_of_a_one_hot_row_zero():
    uniform = np.full((2, H, W), 1 / N)
    one_hot = np.zeros((1, H, W))
    one_hot[0, 3, 4] = 1
    np.testing.assert_allclose(row_entropy(uniform), math.log(N))
    assert row_entropy(one_hot)[0] == 0


def test_summary_has_per_class_figures_and_the_uniform_references():
    label = striped_label()
    cells, classes = queries(label)
    rows = np.full((len(cells), H, W), 1 / N)
    summary = summarise_measures([query_measures(rows, label, cells, classes)], [f"c{i}" for i in range(6)])
    assert summary["row_entropy"]["mean"] == pytest.approx(math.log(N))
    assert summary["row_entropy"]["log_n"] == pytest.approx(math.log(N))
    assert summary["near_mass"]["mean"] == pytest.approx(math.ceil(0.05 * N) / N)
    assert summary["far_key_ratio"]["mean"] == pytest.approx(1.0)
    assert sum(v["queries"] for v in summary["per_class"].values()) == len(cells)
    assert set(summary["per_class"]) == {f"c{c}" for c in np.unique(classes)}


# ----------------------------------------------------------------------------- the table that shows them
def test_compare_rows_show_intervals_and_dashes_never_none():
    from attnviz.results import COLUMN_HELP, paired_difference, results_rows

    results = {
        "models": {
            "fcn-none": {
                "miou": 0.50,
                "pixel_accuracy": 0.8,
                "miou_interval": {"low": 0.48, "high": 0.52},
                "parameters": 10,
                "attention_parameters": 0,
                "macs": 2e9,
                "latency_ms": 5.0,
            },
            "fcn-eca": {"miou": 0.53, "miou_interval": {"low": 0.51, "high": 0.55}},
            "danet-eca": {
                "miou": "high",
                "pam_own_class_ratio": {"mean": 1.5},
                "pam_alpha": -0.1,
                "pam_quality": {"far_key_ratio": {"mean": 1.8}},
            },
        },
        "paired_differences": {"fcn-none - fcn-eca": {"difference": -0.03, "low": -0.05, "high": -0.01}},
    }
    rows = results_rows(results)
    assert [r["model"] for r in rows] == ["fcn-eca", "fcn-none", "danet-eca"]
    assert all(set(r) == set(COLUMN_HELP) for r in rows)
    assert all(isinstance(v, str) and v not in ("None", "nan", "") for r in rows for v in r.values())
    eca, none, danet = rows
    assert eca["test mIoU (%)"] == "53.0" and eca["95% interval (%)"] == "51.0–55.0"
    assert eca["vs fcn-none (points)"] == "+3.00 [+1.00, +5.00]" and eca["beyond test noise"] == "yes"
    assert none["vs fcn-none (points)"] == "–" and none["PAM α"] == "–"
    assert danet["test mIoU (%)"] == "–" and danet["PAM far-key own-class (x chance)"] == "1.80x"
    assert paired_difference(results, "fcn-none", "fcn-eca")["difference"] == pytest.approx(-0.03)
    assert paired_difference(results, "danet-eca") is None


def test_photo_mean_interval_resamples_photos_not_queries():
    from attnviz.analysis.uncertainty import photo_mean_interval

    rng = np.random.default_rng(0)
    # 30 photos whose queries share a photo-level offset: the interval must reflect 30 photos, not 1,200 queries
    photos = [rng.normal(loc, 0.01, size=40) for loc in rng.normal(2.0, 0.5, size=30)]
    result = photo_mean_interval(photos + [np.array([np.nan, np.inf])], resamples=1000)
    pooled = np.concatenate(photos)
    assert result["mean"] == pytest.approx(pooled.mean())
    assert result["low"] < pooled.mean() < result["high"]
    naive_half_width = 1.96 * pooled.std() / np.sqrt(pooled.size)  # as if the 1,200 queries were independent
    assert (result["high"] - result["low"]) / 2 > 2 * naive_half_width
    assert photo_mean_interval([np.array([np.nan])]) is None
