"""Efficient channel attention: a global AdaptiveAvgPool2d(1) and a Conv1d(1, 1, k), under any names.

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020
(BangguWu/ECANet eca_layer). xmu-xiaoma666/External-Attention-pytorch's ECAAttention names its pool `gap`
and keeps nn.Conv1d's default bias: the bias is read and kept as a term of the formula.
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import children_of, is_global
from attnviz.capture.families.verify import (
    Call,
    Missing,
    Outcome,
    check_input_shape,
    for_checks,
    gate_error,
    pool_error,
)
from attnviz.capture.records import ChannelAttentionRecord

__all__ = ["FAMILY", "build_eca", "eca_conv"]


def eca_conv(m: nn.Module) -> nn.Conv1d | None:
    """ECA's Conv1d(1, 1, k), whatever its name, beside a global average pool (whatever its name)."""
    convs = children_of(m, nn.Conv1d)
    pools = [p for p in children_of(m, nn.AdaptiveAvgPool2d) if is_global(p)]
    if len(convs) != 1 or len(pools) != 1 or convs[0].in_channels != 1 or convs[0].out_channels != 1:
        return None
    return convs[0]


def _match_eca(m: nn.Module) -> bool:
    return eca_conv(m) is not None


def _taps_eca(m: nn.Module) -> list[Tap]:
    return [Tap("conv", eca_conv(m), keep_input=True, copy=True)]


def build_eca(call: Call, form: str) -> Outcome:
    batch, channels, _, _ = check_input_shape(call)
    pooled = for_checks(call.input("conv").detach()).reshape(batch, -1)
    weights = torch.sigmoid(for_checks(call.output("conv").detach())).reshape(batch, -1)
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(pool_error(call, pooled, "avg"), gate_error(call, weights[:, :, None, None]))
    conv = eca_conv(call.module)
    record = ChannelAttentionRecord(
        "eca",
        weights,
        {"pooled": pooled},
        kernel=conv.weight.detach().flatten(),
        features=call.x.detach() if call.keep_features else None,
        kernel_bias=float(conv.bias) if conv.bias is not None else 0.0,
    )
    return Outcome(record, error)


FAMILY = Family(
    "eca",
    "efficient channel attention (ECA)",
    _match_eca,
    _taps_eca,
    (Variant("eca", "", build_eca, ChannelAttentionRecord),),
    "channel weights (B, C), the pooled descriptor and the 1D kernel",
    tells=(),
)  # recognised under any names (a pool and a Conv1d): no name gives a near miss away
