"""Channel attention behind a scalar gamma and a Softmax child, with no other parameters: DANet's CAM.

Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019 (CASIA-IVA-Lab/DANet CAM_Module).
The official code takes the softmax of max(E) - E (E = X X^T, C x C); the paper writes softmax(E): the two
forms put their mass on opposite channels, and the one that reproduces the output is kept.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import child_of, gamma_of, has_gamma
from attnviz.capture.families.verify import (
    Call,
    Outcome,
    check_input_shape,
    for_checks,
    gamma_note,
    relative_error,
    tolerance,
)
from attnviz.capture.records import ChannelMapRecord, branch_ratios

__all__ = ["FAMILY", "build_cam"]


def _match_cam(m: nn.Module) -> bool:
    if not has_gamma(m) or child_of(m, "softmax", nn.Softmax) is None:
        return False
    gamma = m._parameters.get("gamma")
    others = [p for p in m.parameters() if p is not gamma]
    if m._modules.get("gamma") is not None:
        others = [p for p in others if all(p is not q for q in m.gamma.parameters())]
    return not others


def _taps_cam(m: nn.Module) -> list[Tap]:
    return [Tap("softmax", m.softmax)]  # C x C: small, always kept


def build_cam(call: Call, form: str) -> Outcome:
    check_input_shape(call)
    gamma = gamma_of(call.module)
    x = for_checks(call.x.detach()).flatten(2)  # (B, C, N)
    energy = torch.bmm(x, x.transpose(1, 2))
    argument = energy.amax(-1, keepdim=True) - energy if form == "official" else energy
    attention = torch.softmax(argument, dim=-1)
    out = for_checks(call.out)
    note, error = "", 0.0
    ran = call.outputs.get("softmax")
    if ran and tuple(ran[0].shape) == tuple(attention.shape):
        ran_attention = for_checks(ran[0].detach())
        # the module's own energies carry float rounding of order eps * |energy|: allow for it
        allowance = max(tolerance(call.x.dtype), 16 * torch.finfo(x.dtype).eps * float(energy.abs().max()))
        error_s = float((attention - ran_attention).abs().max()) / max(float(ran_attention.abs().max()), 1e-30)
        if not math.isfinite(error_s):
            error = math.inf
        elif allowance <= 0.1:
            error = error_s * tolerance(call.x.dtype) / allowance
        else:
            # energies so large that float rounding blurs the softmax itself: only tell the two forms apart,
            # which put their mass on opposite channels (a difference of order 1 at the peak)
            error = 0.0 if error_s < 0.25 else error_s
            note = f"energies up to {float(energy.abs().max()):.1e}: the form is told apart only coarsely"
        attention = ran_attention  # the map that ran, for the record and the output check
        term = torch.bmm(attention, x)
    else:
        term = torch.bmm(attention, x)
        note = gamma_note(gamma, term, out)
    error = max(error, relative_error((gamma * term + x).view(out.shape), out))
    record = ChannelMapRecord(
        "cam",
        attention,
        form,
        gamma,
        features=call.x.detach() if call.keep_features else None,
        branch_ratio=branch_ratios(gamma * term, x),
    )
    return Outcome(record, error, note)


FAMILY = Family(
    "cam",
    "channel attention (DANet CAM)",
    _match_cam,
    _taps_cam,
    (Variant("cam", "official", build_cam, ChannelMapRecord), Variant("cam", "paper", build_cam, ChannelMapRecord)),
    "the channel map X (C x C)",
    tells=("gamma", "softmax"),
)
