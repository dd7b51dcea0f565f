"""CBAM's two gates, each a family: the channel gate and the spatial gate.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (Jongchan/attention-module ChannelGate:
mlp + pool_types; SpatialGate: compress, with no parameters, + spatial holding a Conv2d(2 -> 1)).
xmu-xiaoma666/External-Attention-pytorch writes them differently: its ChannelAttention pools with its own
children (an average and a max AdaptiveXPool2d(1), one shared MLP under any name) and its SpatialAttention is a
Conv2d(2 -> 1) and a Sigmoid; both return their weights instead of the weighted features (its CBAMBlock
multiplies, then adds the residual). That is each gate's "weights" form: verified against the gate's own
output, its record's features being the gate's input (the x the block multiplies).
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import child_of, children_of, first_of, is_global
from attnviz.capture.families.verify import (
    Call,
    Missing,
    Outcome,
    check_input_shape,
    for_checks,
    gate_error,
    pool_error,
    relative_error,
    weights_error,
)
from attnviz.capture.records import ChannelAttentionRecord, SpatialAttentionRecord

__all__ = [
    "FAMILIES",
    "CHANNEL_GATE",
    "SPATIAL_GATE",
    "build_cbam_channel",
    "build_cbam_spatial",
    "shared_mlp_gate",
    "spatial_weights_conv",
]


def shared_mlp_gate(m: nn.Module) -> nn.Module | None:
    """The shared MLP of a CBAM channel gate that pools with its own children (External-Attention-pytorch's
    ChannelAttention: maxpool, avgpool, se, sigmoid): one global average pool, one global max pool, and
    exactly one child with parameters (the MLP, any name)."""
    if getattr(m, "pool_types", None) is not None:
        return None
    averages = [p for p in children_of(m, nn.AdaptiveAvgPool2d) if is_global(p)]
    maxima = [p for p in children_of(m, nn.AdaptiveMaxPool2d) if is_global(p)]
    learned = [c for c in m.children() if any(True for _ in c.parameters())]
    return learned[0] if len(averages) == 1 and len(maxima) == 1 and len(learned) == 1 else None


def spatial_weights_conv(m: nn.Module) -> nn.Conv2d | None:
    """The Conv2d(2 -> 1) of a spatial gate whose only children are it and a Sigmoid (External-Attention-
    pytorch's SpatialAttention: the channels' max and mean, convolved, through the sigmoid: the map)."""
    children = list(m.children())
    convs = children_of(m, nn.Conv2d)
    if (
        len(children) != 2
        or len(convs) != 1
        or not children_of(m, nn.Sigmoid)
        or convs[0].in_channels != 2
        or convs[0].out_channels != 1
    ):
        return None
    return convs[0]


def _order_gate(m: nn.Module) -> tuple[int, ...]:
    return (1,) if shared_mlp_gate(m) is not None or spatial_weights_conv(m) is not None else (0,)


# ----------------------------------------------------------------------------- the channel gate


def _match_cbam_channel(m: nn.Module) -> bool:
    if shared_mlp_gate(m) is not None:
        return True
    mlp = child_of(m, "mlp")
    pools = getattr(m, "pool_types", None)
    return (
        mlp is not None
        and any(True for _ in mlp.parameters())
        and isinstance(pools, (list, tuple))
        and len(pools) > 0
        and all(isinstance(p, str) for p in pools)
    )


def _taps_cbam_channel(m: nn.Module) -> list[Tap]:
    mlp = shared_mlp_gate(m)
    if mlp is not None:  # its pools' outputs say which MLP call was which branch
        averages = [p for p in children_of(m, nn.AdaptiveAvgPool2d) if is_global(p)]
        maxima = [p for p in children_of(m, nn.AdaptiveMaxPool2d) if is_global(p)]
        return [
            Tap("mlp", mlp, keep_input=True, copy=True),
            Tap("avg", averages[0], copy=True),
            Tap("max", maxima[0], copy=True),
        ]
    return [Tap("mlp", m.mlp, keep_input=True, copy=True)]


def build_cbam_channel(call: Call, form: str) -> Outcome:
    if form == "weights":
        return _cbam_channel_weights(call)
    batch, channels, _, _ = check_input_shape(call)
    pools = list(call.module.pool_types)
    branches, pooled = call.outputs.get("mlp", []), call.inputs.get("mlp", [])
    if len(branches) != len(pools):
        raise Missing(f"the mlp ran {len(branches)} times for pool_types {pools}")
    error, parts, total = 0.0, {}, 0
    for how, branch, inp in zip(pools, branches, pooled, strict=False):
        branch = for_checks(branch.detach()).reshape(batch, -1)
        error = max(error, pool_error(call, for_checks(inp.detach()).reshape(batch, -1), how))
        parts[f"{how}_branch"] = branch
        total = total + branch
    weights = torch.sigmoid(total)
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(error, gate_error(call, weights[:, :, None, None]))
    record = ChannelAttentionRecord(
        "flexible", weights, parts, features=call.x.detach() if call.keep_features else None
    )
    return Outcome(record, error)


def _cbam_channel_weights(call: Call) -> Outcome:
    """External-Attention-pytorch's ChannelAttention: sigmoid(MLP(maxpool x) + MLP(avgpool x)), returned."""
    if shared_mlp_gate(call.module) is None:
        raise Missing("not a gate that pools with its own children")
    batch, channels, _, _ = check_input_shape(call)
    pooled = {how: for_checks(call.output(how).detach()).reshape(batch, -1) for how in ("avg", "max")}
    branches = {}
    for inp, out in zip(call.inputs.get("mlp", []), call.outputs.get("mlp", []), strict=False):
        inp = for_checks(inp.detach()).reshape(batch, -1)
        how = min(pooled, key=lambda h: relative_error(inp, pooled[h]))  # which pool this call of the MLP read
        branches[how] = for_checks(out.detach()).reshape(batch, -1)
    if set(branches) != {"avg", "max"}:
        raise Missing(f"the MLP ran on {sorted(branches)} of the avg and max pools")
    weights = torch.sigmoid(branches["avg"] + branches["max"])
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(
        pool_error(call, pooled["avg"], "avg"), pool_error(call, pooled["max"], "max"), weights_error(call, weights)
    )
    record = ChannelAttentionRecord(
        "flexible",
        weights,
        {"avg_branch": branches["avg"], "max_branch": branches["max"]},
        features=call.x.detach() if call.keep_features else None,
    )
    return Outcome(record, error)


CHANNEL_GATE = Family(
    "cbam-channel",
    "CBAM channel gate",
    _match_cbam_channel,
    _taps_cbam_channel,
    (
        Variant("cbam-channel", "", build_cbam_channel, ChannelAttentionRecord),
        Variant("cbam-channel", "weights", build_cbam_channel, ChannelAttentionRecord),
    ),
    "channel weights (B, C) and each pooling branch's MLP output",
    tells=("mlp", "pool_types"),
    order=_order_gate,
)


# ----------------------------------------------------------------------------- the spatial gate


def _match_cbam_spatial(m: nn.Module) -> bool:
    if spatial_weights_conv(m) is not None:
        return True
    compress, spatial = child_of(m, "compress"), child_of(m, "spatial")
    if compress is None or spatial is None or any(True for _ in compress.parameters()):
        return False
    conv = first_of(spatial, nn.Conv2d)
    return conv is not None and conv.in_channels == 2 and conv.out_channels == 1


def _taps_cbam_spatial(m: nn.Module) -> list[Tap]:
    conv = spatial_weights_conv(m)
    if conv is not None:
        return [Tap("spatial", conv, keep_input=True, copy=True)]
    return [Tap("spatial", m.spatial, copy=True)]


def build_cbam_spatial(call: Call, form: str) -> Outcome:
    if form == "weights":
        return _cbam_spatial_weights(call)
    spatial = call.output("spatial")
    check_input_shape(call, spatial)
    weights = torch.sigmoid(for_checks(spatial.detach()))  # (B, 1, H, W)
    if weights.shape[1] != 1:
        raise Missing(f"a spatial map of {weights.shape[1]} channels")
    return Outcome(SpatialAttentionRecord("cbam-spatial", weights[:, 0]), gate_error(call, weights))


def _cbam_spatial_weights(call: Call) -> Outcome:
    """External-Attention-pytorch's SpatialAttention: sigmoid(conv([max_c x; mean_c x])), returned."""
    if spatial_weights_conv(call.module) is None:
        raise Missing("not a gate of one Conv2d(2 -> 1) and a Sigmoid")
    logits, pooled = call.output("spatial"), for_checks(call.input("spatial").detach())
    check_input_shape(call, logits)
    x = for_checks(call.x)
    channel_max, channel_mean = x.amax(1, keepdim=True), x.mean(1, keepdim=True)
    pool_error = min(
        relative_error(pooled, torch.cat([channel_max, channel_mean], 1)),
        relative_error(pooled, torch.cat([channel_mean, channel_max], 1)),
    )
    weights = torch.sigmoid(for_checks(logits.detach()))  # (B, 1, H, W)
    return Outcome(SpatialAttentionRecord("cbam-spatial", weights[:, 0]), max(pool_error, weights_error(call, weights)))


SPATIAL_GATE = Family(
    "cbam-spatial",
    "CBAM spatial gate",
    _match_cbam_spatial,
    _taps_cbam_spatial,
    (
        Variant("cbam-spatial", "", build_cbam_spatial, SpatialAttentionRecord),
        Variant("cbam-spatial", "weights", build_cbam_spatial, SpatialAttentionRecord),
    ),
    "the spatial map (B, H, W)",
    tells=("compress", "spatial"),
    order=_order_gate,
)

FAMILIES = (CHANNEL_GATE, SPATIAL_GATE)  # tried in this order
