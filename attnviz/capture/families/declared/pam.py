"""Position attention behind query_conv, key_conv, value_conv and a scalar gamma: DANet's PAM, SAGAN's
Self_Attn, and CCNet's criss-cross attention, which hides behind the same attributes.

- PAM: Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019 (CASIA-IVA-Lab/DANet
  PAM_Module); SAGAN: Zhang et al., ICML 2019 (heykeetae/Self-Attention-GAN Self_Attn, which returns
  (out, attention)). out = gamma · V softmax(Q^T K)^T + x.
- Criss-cross: Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation", ICCV 2019
  (speedinghzl/CCNet CrissCrossAttention): each pixel attends to its column (itself masked) and its row in one
  softmax. Told apart by an `INF` helper or a Softmax(dim=3); tried first then.

Both records keep Q, K and each row's log-sum-exp (S is never stored), and the branch's size
‖gamma · term‖ / ‖x‖ (attnviz.capture.records.branch_ratios) from the term rebuilt to verify the output.
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
    attend,
    check_input_shape,
    compare_rows,
    for_checks,
    gamma_note,
    relative_error,
    worse,
)
from attnviz.capture.records import CrissCrossAttentionRecord, PositionAttentionRecord, branch_ratios

__all__ = ["FAMILY", "build_pam", "build_criss_cross"]


def _gamma_is_zero(module: nn.Module) -> bool:
    return gamma_of(module) == 0.0


def _match_qkv(m: nn.Module) -> bool:
    q, k, v = (child_of(m, n, nn.Conv2d) for n in ("query_conv", "key_conv", "value_conv"))
    return (
        q is not None
        and k is not None
        and v is not None
        and has_gamma(m)
        and q.out_channels == k.out_channels
        and q.in_channels == k.in_channels == v.in_channels
    )


def _taps_qkv(m: nn.Module) -> list[Tap]:
    taps = [Tap("query", m.query_conv), Tap("key", m.key_conv), Tap("value", m.value_conv)]
    softmax = child_of(m, "softmax", nn.Softmax)
    if softmax is not None:  # what ran, kept (as a reference, to the module's return) only when gamma = 0
        taps.append(Tap("softmax", softmax, only_if=_gamma_is_zero))
    return taps


def _order_qkv(m: nn.Module) -> tuple[int, ...]:
    softmax = child_of(m, "softmax", nn.Softmax)
    criss_cross = hasattr(m, "INF") or (softmax is not None and softmax.dim == 3)
    return (1,) if criss_cross else (0,)


def build_pam(call: Call, form: str) -> Outcome:
    q, k, v = call.output("query"), call.output("key"), call.output("value")
    batch, channels, height, width = check_input_shape(call, q, k, v)
    gamma = gamma_of(call.module)
    query = for_checks(q.detach()).flatten(2).transpose(1, 2)  # (B, N, C')
    key = for_checks(k.detach()).flatten(2).transpose(1, 2)
    value = for_checks(v.detach()).flatten(2)  # (B, C, N)
    x, out = for_checks(call.x).flatten(2), for_checks(call.out)
    term, log_normaliser = attend(query, key, value)
    error = relative_error((gamma * term + x).view(out.shape), out)
    note = ""
    ran = call.outputs.get("softmax")
    if ran and tuple(ran[0].shape[-2:]) == (height * width, height * width):
        error = max(error, compare_rows(query, key, log_normaliser, ran[0]))
    else:
        note = gamma_note(gamma, term, out)
    record = PositionAttentionRecord(
        "pam", query, key, log_normaliser, height, width, gamma, branch_ratio=branch_ratios(gamma * term, x)
    )
    return Outcome(record, error, note)


def _cross_energies(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, H, W, H + W): energies of each pixel with its column (self masked to -inf) then its row."""
    height = q.shape[2]
    column = torch.einsum("bchw,bcgw->bhwg", q, k)
    eye = torch.eye(height, dtype=torch.bool, device=q.device)
    column = column.masked_fill(eye[:, None, :], -math.inf)  # [h, w, g]: g == h is the pixel itself
    row = torch.einsum("bchw,bchv->bhwv", q, k)
    return torch.cat([column, row], dim=-1)


def build_criss_cross(call: Call, form: str) -> Outcome:
    q, k, v = call.output("query"), call.output("key"), call.output("value")
    batch, channels, height, width = check_input_shape(call, q, k, v)
    gamma = gamma_of(call.module)
    q, k, v = (for_checks(t.detach()) for t in (q, k, v))
    energy = _cross_energies(q, k)
    log_normaliser = torch.logsumexp(energy, dim=-1)  # (B, H, W)
    weights = torch.exp(energy - log_normaliser[..., None])
    term = torch.einsum("bhwg,bcgw->bchw", weights[..., :height], v) + torch.einsum(
        "bhwv,bchv->bchw", weights[..., height:], v
    )
    x, out = for_checks(call.x), for_checks(call.out)
    error = relative_error(gamma * term + x, out)
    note = ""
    ran = call.outputs.get("softmax")
    if ran and tuple(ran[0].shape) == tuple(weights.shape):
        ran = for_checks(ran[0])
        scale = float(ran.abs().max())
        error = worse(error, float((weights - ran).abs().max()) / scale if scale > 0 else math.inf)
    else:
        note = gamma_note(gamma, term, out)
    del weights, energy
    record = CrissCrossAttentionRecord(
        "criss-cross",
        q.flatten(2).transpose(1, 2),
        k.flatten(2).transpose(1, 2),
        log_normaliser.flatten(1),
        height,
        width,
        gamma,
        branch_ratio=branch_ratios(gamma * term, x),
    )
    return Outcome(record, error, note)


FAMILY = Family(
    "pam",
    "position attention (DANet PAM / SAGAN Self_Attn) or criss-cross (CCNet)",
    _match_qkv,
    _taps_qkv,
    (
        Variant("pam", "softmax", build_pam, PositionAttentionRecord),
        Variant(
            "criss-cross",
            "softmax",
            build_criss_cross,
            CrissCrossAttentionRecord,
            "Q, K and each pixel's log-sum-exp over its row and column",
        ),
    ),
    "Q, K and each row's log-sum-exp (O(N·C')): any row or column of S on demand",
    tells=("query_conv", "key_conv", "value_conv", "gamma"),
    order=_order_qkv,
)
