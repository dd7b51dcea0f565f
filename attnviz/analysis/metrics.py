"""Segmentation metrics: confusion matrix, per-class IoU, mIoU, pixel accuracy.

IoU_c = TP_c / (TP_c + FP_c + FN_c) over the whole split (the confusion
matrix is accumulated over all images before dividing), ignore label excluded.
A class absent from both prediction and ground truth gets NaN and is left
out of the mean.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["confusion_matrix", "iou_from_confusion", "summarise_confusion", "score_prediction"]


def confusion_matrix(
    prediction: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """(num_classes, num_classes) int64, rows = ground truth, columns = prediction."""
    prediction = prediction.reshape(-1).long()
    target = target.reshape(-1).long()
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    index = target[keep] * num_classes + prediction[keep].clamp(0, num_classes - 1)
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes).cpu()


def iou_from_confusion(confusion: torch.Tensor | np.ndarray) -> np.ndarray:
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def summarise_confusion(confusion, class_names) -> dict:
    iou = iou_from_confusion(confusion)
    confusion = np.asarray(confusion, dtype=np.float64)
    return {
        "miou": float(np.nanmean(iou)),
        "pixel_accuracy": float(np.diag(confusion).sum() / max(confusion.sum(), 1)),
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
    }


def score_prediction(prediction: np.ndarray, label: np.ndarray) -> dict:
    """mIoU (over the classes present), pixel accuracy and per-class IoU of one CamVid prediction."""
    from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX

    confusion = confusion_matrix(
        torch.from_numpy(np.asarray(prediction, dtype=np.int64)),
        torch.from_numpy(np.asarray(label, dtype=np.int64)),
        len(CLASS_NAMES),
        IGNORE_INDEX,
    )
    return summarise_confusion(confusion, CLASS_NAMES)
