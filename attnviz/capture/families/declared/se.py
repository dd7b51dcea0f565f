"""Squeeze-and-excitation: an avg_pool and an fc = Sequential(..., Sigmoid).

Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (the SELayer people copy, e.g. moskomule/senet.pytorch).
"""

from __future__ import annotations

from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import child_of
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

__all__ = ["FAMILY", "build_se"]


def _match_se(m: nn.Module) -> bool:
    fc = child_of(m, "fc", nn.Sequential)
    return (
        child_of(m, "avg_pool") is not None
        and fc is not None
        and len(fc) > 0
        and isinstance(fc[-1], (nn.Sigmoid, nn.Hardsigmoid))
    )


def _taps_se(m: nn.Module) -> list[Tap]:
    return [Tap("fc", m.fc, keep_input=True, copy=True)]


def build_se(call: Call, form: str) -> Outcome:
    batch, channels, _, _ = check_input_shape(call)
    pooled = for_checks(call.input("fc").detach()).reshape(batch, -1)
    weights = for_checks(call.output("fc").detach()).reshape(batch, -1)
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(pool_error(call, pooled, "avg"), gate_error(call, weights[:, :, None, None]))
    record = ChannelAttentionRecord(
        "se", weights, {"pooled": pooled}, features=call.x.detach() if call.keep_features else None
    )
    return Outcome(record, error)


FAMILY = Family(
    "se",
    "squeeze-and-excitation (SE)",
    _match_se,
    _taps_se,
    (Variant("se", "", build_se, ChannelAttentionRecord),),
    "channel weights (B, C) and the pooled descriptor",
    tells=("squeeze", "excitation"),
)
