"""Attribution for one output pixel of a segmentation model, with captum, and how it compares with attention.

Attention weights say how a module mixed its inputs; an attribution says how
much each input changed one output. The two can disagree (Jain and Wallace,
"Attention is not Explanation", NAACL 2019; Wiegreffe and Pinter, "Attention
is not not Explanation", EMNLP 2019): attention is one intermediate step among
many layers, its values are mixed by what follows, and a row of S can be
spread over pixels whose features barely change the logit. This module
computes, for the logit of class c at image pixel (y, x):

- Grad-CAM (Selvaraju et al., ICCV 2017) at a chosen layer, captum's
  `LayerGradCam` with `relu_attributions=True`: the channel-mean gradient
  times the activation, summed over channels, one value per cell of that
  layer's grid;
- Integrated Gradients (Sundararajan et al., ICML 2017), captum's
  `IntegratedGradients` on the input image against a black baseline, with
  `n_steps` steps evaluated `internal_batch_size` at a time (memory bounded);
- two numbers comparing an attention row with an attribution over the
  feature grid: Spearman's rank correlation, and the overlap of their top-k
  cells.

A segmentation model returns (B, C, H, W); captum's target (c, y, x) picks
one logit of that output per example. `MainLogits` makes any of our models
(FCN or DANet) a plain function of the image returning the main logits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn

from attnviz.analysis.geometry import cell_means, check_pixel

__all__ = [
    "MainLogits",
    "UserLogits",
    "pixel_target",
    "grad_cam",
    "integrated_gradients",
    "cell_mass",
    "input_magnitude",
    "rank_correlation",
    "top_overlap",
    "attribution_layer",
]


class UserLogits(nn.Module):
    """A user's model (`attnviz.models.user.UserModel`) as a function image in [0, 1] -> its logits, with its
    own normalisation and output rule, resized (bilinear) to the photo when they come out smaller, as for its
    prediction (`attnviz.analysis.forward.analyse_user_model`), so that a target (class, y, x) is in photo pixels. The
    network is a child, so captum can hook its layers."""

    def __init__(self, user_model):
        super().__init__()
        self.model = user_model.model
        self._user = user_model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self._user.forward_logits(image)
        if logits.dim() == 4 and logits.shape[-2:] != image.shape[-2:]:
            logits = nn.functional.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return logits


class MainLogits(nn.Module):
    """model(image) -> main logits (B, C, H, W), whatever auxiliary outputs the model also has."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(image)
        return out[0] if isinstance(out, (tuple, list)) else out


def attribution_layer(model: nn.Module) -> nn.Module:
    """The layer whose output feeds the attention head: the backbone's last stage."""
    return model.backbone.layer4


def pixel_target(prediction, x: int, y: int) -> tuple[int, int, int]:
    """captum's target (class, y, x) for the logit of the predicted class at integer pixel (x, y) of a
    (H, W) prediction: the chosen pixel itself (attnviz.analysis.geometry), never a float truncated."""
    x, y = check_pixel(x, y, tuple(np.shape(prediction)[-2:]))
    return int(prediction[y, x]), y, x


def _checked_target(target: tuple[int, int, int], image: torch.Tensor) -> tuple[int, int, int]:
    class_id, y, x = target
    x, y = check_pixel(x, y, tuple(image.shape[-2:]))
    return int(class_id), y, x


def grad_cam(
    model: nn.Module,
    image: torch.Tensor,
    target: tuple[int, int, int],
    layer: nn.Module | None = None,
    upsample: bool = True,
    layer_input: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Grad-CAM at the layer's grid (h, w), the same upsampled bilinearly to the image (H, W)).

    image (1, 3, H, W); target (class, y, x), an integer pixel (see `pixel_target`). The bilinear upsampling
    (align_corners=False) puts cell c's value at (c + 0.5) W / w, the centre of that cell (attnviz.analysis.geometry).
    layer_input: attribute to the layer's input instead of its output (for a user's model: the features that
    feed its attention module).
    """
    target = _checked_target(target, image)
    layer = layer or attribution_layer(model)
    explainer = LayerGradCam(MainLogits(model).eval(), layer)
    with torch.enable_grad():
        cam = explainer.attribute(
            image, target=target, relu_attributions=True, attribute_to_layer_input=layer_input
        ).detach()
    full = LayerAttribution.interpolate(cam, tuple(image.shape[-2:]), "bilinear") if upsample else cam
    return cam[0, 0], full[0, 0]


# the most photo pixels one internal batch of Integrated Gradients takes through the network at once: four
# 360x480 photos. A 768x1024 upload goes one path point at a time (four at once held 3.1 GB of activations
# for the backward pass on danet-eca, one about 1 GB)
IG_BATCH_PIXELS = 4 * 360 * 480


def integrated_gradients(
    model: nn.Module,
    image: torch.Tensor,
    target: tuple[int, int, int],
    steps: int = 32,
    internal_batch_size: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Integrated Gradients of the target logit w.r.t. the input, against a black image: (3, H, W).
    internal_batch_size: path points through the network at once (None: as many as IG_BATCH_PIXELS allows,
    1 to 4).

    on_batch(done, total): called before each of captum's internal batches (`internal_batch_size` of the
    `steps` points along the path each), with the number of steps done so far and in all; it may raise to stop
    the computation there (attnviz.workpool's Control.check), so a stop takes effect within one batch."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    target = _checked_target(target, image)
    if internal_batch_size is None:
        internal_batch_size = max(1, min(4, IG_BATCH_PIXELS // (image.shape[-2] * image.shape[-1])))
    logits = MainLogits(model).eval()
    forward = logits
    if on_batch is not None:
        done = [0]

        def forward(batch: torch.Tensor) -> torch.Tensor:  # captum calls it once per internal batch
            on_batch(done[0], steps)
            done[0] += batch.shape[0]
            return logits(batch)

    explainer = IntegratedGradients(forward)
    with torch.enable_grad():
        attributions = explainer.attribute(
            image,
            baselines=torch.zeros_like(image),
            target=target,
            n_steps=steps,
            internal_batch_size=internal_batch_size,
        )
    return attributions.detach()[0]


def cell_mass(attribution: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Attribution magnitude per cell of a (h, w) grid: |attribution| summed over channels, then the mean
    over the image pixels of each cell (the cells of attnviz.analysis.geometry), normalised to sum to 1."""
    magnitude = attribution.abs()
    if magnitude.ndim == 3:
        magnitude = magnitude.sum(0)
    pooled = cell_means(magnitude.double(), grid)
    total = pooled.sum()
    return pooled / total if total > 0 else pooled


def input_magnitude(attribution, clip_percentile: float = 99.5) -> tuple[np.ndarray, float]:
    """(|attribution| summed over channels (H, W), the value at `clip_percentile` for a colour scale that a
    few extreme pixels do not wash out)."""
    magnitude = np.abs(np.asarray(attribution, dtype=np.float64)).sum(0)
    return magnitude, float(np.percentile(magnitude, clip_percentile))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):  # ties share the mean of their ranks
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0
        start = stop + 1
    return ranks


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equally shaped maps (average ranks for ties); nan if constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.shape} vs {b.shape}")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def top_overlap(a, b, k: int = 20) -> float:
    """Share of the k largest cells of `a` that are also among the k largest of `b` (0 to 1)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    k = min(k, a.size)
    top_a = set(np.argsort(-a, kind="mergesort")[:k].tolist())
    top_b = set(np.argsort(-b, kind="mergesort")[:k].tolist())
    return len(top_a & top_b) / k if k else float("nan")
