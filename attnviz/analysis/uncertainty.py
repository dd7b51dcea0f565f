"""How sure a test mIoU is: percentile bootstrap over test photos (Efron & Tibshirani, 1993).

The unit of resampling is the photo: a resample draws as many photos as the
split has, with replacement, sums their confusion matrices and takes the mIoU
of the sum, exactly as the split's own mIoU is taken (`attnviz.analysis.metrics`). The
95% interval is the 2.5th to 97.5th percentile of 1,000 or more such mIoUs.

For two models on the same photos the *paired* bootstrap resamples the photos
once and scores both models on the same draw, so that the difference keeps
what the photos share (a hard photo is hard for both). A difference whose
interval excludes 0 is beyond test-sampling noise.

What the intervals do not cover: the training seed. Two trainings of one model
differ by more than the test photos make them differ (README, "Seed noise");
an interval here says how much the figure would move on other photos like
these, for this one trained network.
"""

from __future__ import annotations

import numpy as np

from attnviz.analysis.metrics import iou_from_confusion

__all__ = [
    "DEFAULT_RESAMPLES",
    "resample_counts",
    "resampled_miou",
    "bootstrap_interval",
    "paired_difference_interval",
    "photo_mean_interval",
]

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


def resample_counts(photos: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, photos): how often each photo is drawn in each resample (rows sum to `photos`).

    The same seed gives the same draws, so models scored on one set of counts are paired.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, photos, size=(resamples, photos))
    counts = np.zeros((resamples, photos), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    return counts


def resampled_miou(per_photo_confusion: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """mIoU of each resample: per_photo_confusion (P, K, K), counts (R, P) -> (R,).

    Classes with an empty union in a resample are left out of its mean, as for the split itself.
    """
    confusions = np.asarray(per_photo_confusion, dtype=np.float64)
    photos, classes, _ = confusions.shape
    summed = (counts @ confusions.reshape(photos, classes * classes)).reshape(-1, classes, classes)
    true_positive = np.diagonal(summed, axis1=1, axis2=2)
    union = summed.sum(1) + summed.sum(2) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    return np.nanmean(iou, axis=1)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(
    per_photo_confusion: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = DEFAULT_LEVEL
) -> dict:
    """The split's mIoU and its percentile-bootstrap interval over photos.

    {"miou", "low", "high", "std", "level", "resamples", "seed", "photos"}.
    """
    confusions = np.asarray(per_photo_confusion)
    values = resampled_miou(confusions, resample_counts(len(confusions), resamples, seed))
    low, high = _interval(values, level)
    return {
        "miou": float(np.nanmean(iou_from_confusion(confusions.sum(0)))),
        "low": low,
        "high": high,
        "std": float(values.std(ddof=1)),
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "photos": int(len(confusions)),
    }


def paired_difference_interval(
    confusion_a: np.ndarray,
    confusion_b: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict:
    """mIoU(a) - mIoU(b) on the same photos, with its paired-bootstrap interval.

    {"difference", "low", "high", "beyond_noise" (the interval excludes 0), "level", "resamples", "seed"}.
    """
    confusion_a, confusion_b = np.asarray(confusion_a), np.asarray(confusion_b)
    if confusion_a.shape != confusion_b.shape:
        raise ValueError(f"the two models were scored on different photos: {confusion_a.shape} vs {confusion_b.shape}")
    counts = resample_counts(len(confusion_a), resamples, seed)
    differences = resampled_miou(confusion_a, counts) - resampled_miou(confusion_b, counts)
    low, high = _interval(differences, level)
    difference = float(
        np.nanmean(iou_from_confusion(confusion_a.sum(0))) - np.nanmean(iou_from_confusion(confusion_b.sum(0)))
    )
    return {
        "difference": difference,
        "low": low,
        "high": high,
        "beyond_noise": bool(low > 0 or high < 0),
        "level": level,
        "resamples": resamples,
        "seed": seed,
    }


def photo_mean_interval(
    per_photo_values: list[np.ndarray], resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = DEFAULT_LEVEL
) -> dict | None:
    """The mean of per-query values pooled over photos, with a bootstrap interval that resamples photos.

    The queries of one photo are not independent (40 cells of one street scene), so the photo is the unit
    that is drawn, as for mIoU; non-finite values are left out. None when no value is finite.
    {"mean", "low", "high", "level", "resamples", "seed", "photos"}.
    """
    sums = np.array([float(np.nansum(np.where(np.isfinite(v), v, np.nan))) for v in per_photo_values])
    counts = np.array([int(np.isfinite(v).sum()) for v in per_photo_values])
    if counts.sum() == 0:
        return None
    draws = resample_counts(len(per_photo_values), resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (draws @ sums) / (draws @ counts)
    low, high = _interval(means[np.isfinite(means)], level)
    return {
        "mean": float(sums.sum() / counts.sum()),
        "low": low,
        "high": high,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "photos": int(len(per_photo_values)),
    }
