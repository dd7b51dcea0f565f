"""Is a position attention semantic, or merely near? Measures on rows of S and a label map.

A row S[i, :] of a spatial self-attention (DANet's PAM, a non-local block) can
put much of its mass on the query's own class for two different reasons: it
groups pixels by class (semantic), or it looks at the query's neighbourhood,
which in a street photo is mostly the same class anyway (local). The plain
own-class ratio (`forward.own_class_ratio`: the row's share on the query's
class over the class's share of the photo) cannot tell them apart: a row
spread evenly over the query's nearest 5% of cells scores about 4x chance on
CamVid, as high as a model trained to group classes.

What separates them here:

- **far-key own-class ratio**: drop the query's nearest `FAR_EXCLUDED` (10%)
  of cells, renormalise the rest of the row, and compare its share on the
  query's class with that class's share of the same far cells. A local
  attention with a class-blind tail scores about 1; a semantic one stays high.
- **near mass**: the row's mass within the nearest `NEAR_SHARE` (5%) of
  cells (uniform attention: 5%).
- **row entropy** in nats, against log N for a uniform row.
- all of them **per class** of the query, since the mean over queries is
  dominated by the large classes (road, sky, building).

"Nearest" is the Euclidean distance between feature cells on the grid, ties
broken by the cell index, the query's own cell included. Class shares of a
cell are its area shares (`forward.class_fractions`); unlabelled area counts
neither for the class nor for the chance level. These are this project's
measures, not a paper's; the far-key idea answers the question "semantic or
near?" that an own-class ratio alone leaves open.
"""

from __future__ import annotations

import math

import numpy as np

from attnviz.analysis.forward import class_fractions, own_class_ratio
from attnviz.analysis.uncertainty import photo_mean_interval
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES

__all__ = [
    "FAR_EXCLUDED",
    "NEAR_SHARE",
    "nearest_cells_mask",
    "row_entropy",
    "near_mass",
    "far_key_own_class_ratio",
    "query_measures",
    "summarise_measures",
]

FAR_EXCLUDED = 0.10
NEAR_SHARE = 0.05


def nearest_cells_mask(cells, feature_hw: tuple[int, int], share: float) -> np.ndarray:
    """(R, N) bool: for each query cell (flat index), its ceil(share * N) nearest cells on the grid."""
    height, width = feature_hw
    num_cells = height * width
    count = min(num_cells, max(1, math.ceil(share * num_cells)))
    cells = np.asarray(cells, dtype=np.int64).reshape(-1)
    grid_row, grid_col = np.divmod(np.arange(num_cells), width)
    query_row, query_col = np.divmod(cells, width)
    squared = (grid_row[None] - query_row[:, None]) ** 2 + (grid_col[None] - query_col[:, None]) ** 2
    order = squared * num_cells + np.arange(num_cells)[None]  # distance first, then the index
    nearest = np.argpartition(order, count - 1, axis=1)[:, :count]
    mask = np.zeros((cells.size, num_cells), dtype=bool)
    np.put_along_axis(mask, nearest, True, axis=1)
    return mask


def row_entropy(rows: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row (R, ...) of a row-stochastic matrix; log N for a uniform row."""
    flat = np.asarray(rows, dtype=np.float64).reshape(np.shape(rows)[0], -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(flat > 0, flat * np.log(flat), 0.0)
    return -terms.sum(1)


def near_mass(rows: np.ndarray, cells, share: float = NEAR_SHARE) -> np.ndarray:
    """Each row's mass on its query's nearest `share` of cells. rows (R, h, w), cells (R,) flat indices."""
    rows = np.asarray(rows, dtype=np.float64)
    mask = nearest_cells_mask(cells, rows.shape[-2:], share)
    return (rows.reshape(rows.shape[0], -1) * mask).sum(1)


def far_key_own_class_ratio(
    rows: np.ndarray, label: np.ndarray, cells, classes, excluded: float = FAR_EXCLUDED
) -> np.ndarray:
    """Own-class ratio of each row over its far keys only (nearest `excluded` of cells dropped).

    (share of the row's far mass on labelled far area of the query's class, among labelled far area)
    / (the class's share of the labelled far area). NaN where either is undefined.
    """
    rows = np.asarray(rows, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    flat = rows.reshape(rows.shape[0], -1)
    far = ~nearest_cells_mask(cells, rows.shape[-2:], excluded)
    fractions = class_fractions(label, rows.shape[-2:]).reshape(NUM_CLASSES + 1, -1)
    labelled = 1.0 - fractions[IGNORE_INDEX]
    own = fractions[classes]  # (R, N)
    far_rows = flat * far
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (far_rows * own).sum(1) / (far_rows * labelled).sum(1)
        chance = (far * own).sum(1) / (far * labelled).sum(1)
        return share / chance


def query_measures(rows: np.ndarray, label: np.ndarray, cells, classes) -> dict[str, np.ndarray]:
    """Every measure for a set of query rows of one photo: arrays of length R.

    {"own_class_ratio", "far_key_ratio", "entropy", "log_n", "near_mass", "classes"}.
    """
    rows = np.asarray(rows, dtype=np.float64)
    num_cells = rows.shape[-2] * rows.shape[-1]
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    return {
        "own_class_ratio": own_class_ratio(rows, label, classes),
        "far_key_ratio": far_key_own_class_ratio(rows, label, cells, classes),
        "entropy": row_entropy(rows),
        "log_n": np.full(len(rows), math.log(num_cells)),
        "near_mass": near_mass(rows, cells),
        "classes": classes,
    }


def _stats(values: np.ndarray) -> dict:
    values = values[np.isfinite(values)]
    if not values.size:
        return {"mean": None, "median": None, "above_chance": None, "queries": 0}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "above_chance": float((values > 1).mean()),
        "queries": int(values.size),
    }


def _bounds(interval: dict | None) -> list[float] | None:
    return None if interval is None else [interval["low"], interval["high"]]


def summarise_measures(measures: list[dict[str, np.ndarray]], class_names, resamples: int = 2000) -> dict:
    """Model-level figures from the `query_measures` of many photos (one dict a photo: the JSON that evaluate
    writes). The own-class and far-key means carry a 95% bootstrap interval over photos
    (`attnviz.analysis.uncertainty.photo_mean_interval`: the queries of one photo are not independent)."""
    if not measures:
        return {}
    joined = {key: np.concatenate([m[key] for m in measures]) for key in measures[0]}
    intervals = {
        key: photo_mean_interval([m[key] for m in measures], resamples) for key in ("own_class_ratio", "far_key_ratio")
    }
    per_class = {}
    for index, name in enumerate(class_names):
        chosen = joined["classes"] == index
        if chosen.any():
            per_class[name] = {
                "queries": int(chosen.sum()),
                "own_class_ratio": _stats(joined["own_class_ratio"][chosen])["mean"],
                "far_key_ratio": _stats(joined["far_key_ratio"][chosen])["mean"],
                "far_key_above_chance": _stats(joined["far_key_ratio"][chosen])["above_chance"],
            }
    return {
        "far_key_ratio": {
            **_stats(joined["far_key_ratio"]),
            "excluded_nearest": FAR_EXCLUDED,
            "interval": _bounds(intervals["far_key_ratio"]),
        },
        "own_class_interval": _bounds(intervals["own_class_ratio"]),
        "row_entropy": {"mean": float(joined["entropy"].mean()), "log_n": float(joined["log_n"].mean())},
        "near_mass": {"mean": float(joined["near_mass"].mean()), "nearest": NEAR_SHARE, "uniform": NEAR_SHARE},
        "per_class": per_class,
    }
