"""The global context block: a Conv2d conv_mask (to one channel) + channel_add_conv and / or channel_mul_conv.

Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond", ICCVW 2019
(xvjiarui/GCNet ContextBlock). One attention map, softmax(conv_mask(x)) over positions, is shared by every
query; the context it pools is checked against what entered the transforms, and the output rebuilt from them.
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import child_of
from attnviz.capture.families.verify import Call, Missing, Outcome, check_input_shape, for_checks, relative_error
from attnviz.capture.records import GlobalContextRecord

__all__ = ["FAMILY", "build_gcnet"]


def _match_gcnet(m: nn.Module) -> bool:
    mask = child_of(m, "conv_mask", nn.Conv2d)
    return (
        mask is not None
        and mask.out_channels == 1
        and (child_of(m, "channel_add_conv") is not None or child_of(m, "channel_mul_conv") is not None)
    )


def _taps_gcnet(m: nn.Module) -> list[Tap]:
    taps = [Tap("mask", m.conv_mask, copy=True)]
    for part in ("channel_add_conv", "channel_mul_conv"):
        if child_of(m, part) is not None:
            taps.append(Tap(part, getattr(m, part), keep_input=True, copy=True))
    return taps


def build_gcnet(call: Call, form: str) -> Outcome:
    batch, channels, height, width = check_input_shape(call, call.output("mask"))
    mask = torch.softmax(for_checks(call.output("mask").detach()).flatten(1), dim=-1)  # (B, N)
    x = for_checks(call.x.detach())
    context = torch.einsum("bcn,bn->bc", x.flatten(2), mask)
    error, ran_context = 0.0, None
    rebuilt = x
    for part in ("channel_mul_conv", "channel_add_conv"):
        if part not in call.inputs and part not in call.outputs:
            continue
        ran_context = call.input(part).detach()
        error = max(error, relative_error(context, ran_context.flatten(1)))
        transformed = for_checks(call.output(part).detach())
        rebuilt = rebuilt * torch.sigmoid(transformed) if part == "channel_mul_conv" else rebuilt + transformed
    if ran_context is None:
        raise Missing("neither channel_add_conv nor channel_mul_conv ran")
    error = max(error, relative_error(rebuilt, call.out))
    record = GlobalContextRecord("gcnet", mask.view(batch, height, width), ran_context.flatten(1))
    return Outcome(record, error)


FAMILY = Family(
    "gcnet",
    "global context block (GCNet)",
    _match_gcnet,
    _taps_gcnet,
    (Variant("gcnet", "att", build_gcnet, GlobalContextRecord),),
    "the one attention map softmax(conv_mask(x)) shared by every query, and the context vector",
    tells=("conv_mask", "channel_add_conv", "channel_mul_conv"),
)
