"""Coordinate attention: pool_h, pool_w, conv1, conv_h and conv_w.

Hou et al., "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021 (houqb/CoordAttention CoordAtt).
y = x · sigmoid(conv_h) · sigmoid(conv_w): one weight per row and one per column of every channel. The family is
named by its kind, "ca" (attnviz.kinds.AttentionKind.CA), as attnviz's own CoordinateAttention records itself.
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import child_of
from attnviz.capture.families.verify import Call, Missing, Outcome, check_input_shape, for_checks, gate_error
from attnviz.capture.records import CoordinateAttentionRecord
from attnviz.kinds import AttentionKind

__all__ = ["FAMILY", "build_ca"]


def _match_ca(m: nn.Module) -> bool:
    return all(child_of(m, n) is not None for n in ("pool_h", "pool_w")) and all(
        child_of(m, n, nn.Conv2d) is not None for n in ("conv1", "conv_h", "conv_w")
    )


def _taps_ca(m: nn.Module) -> list[Tap]:
    return [Tap("conv_h", m.conv_h, copy=True), Tap("conv_w", m.conv_w, copy=True)]


def build_ca(call: Call, form: str) -> Outcome:
    batch, channels, height, width = check_input_shape(call)
    a_h = torch.sigmoid(for_checks(call.output("conv_h").detach()))
    a_w = torch.sigmoid(for_checks(call.output("conv_w").detach()))
    if a_h.numel() != batch * channels * height or a_w.numel() != batch * channels * width:
        raise Missing(f"conv_h {tuple(a_h.shape)} / conv_w {tuple(a_w.shape)} for an input of {tuple(call.x.shape)}")
    a_h, a_w = a_h.reshape(batch, channels, height), a_w.reshape(batch, channels, width)
    error = gate_error(call, a_h[..., None] * a_w[:, :, None, :])
    return Outcome(CoordinateAttentionRecord("ca", a_h, a_w), error)


FAMILY = Family(
    AttentionKind.CA.value,
    "coordinate attention (CoordAtt)",
    _match_ca,
    _taps_ca,
    (Variant(AttentionKind.CA.value, "", build_ca, CoordinateAttentionRecord),),
    "height weights (B, C, H) and width weights (B, C, W)",
    tells=("pool_h", "pool_w", "conv_h", "conv_w"),
)
