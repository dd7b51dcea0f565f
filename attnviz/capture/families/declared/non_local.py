"""The non-local block: g + an output transform W (or W_z / conv_out), theta + phi, or neither (Gaussian).

Wang et al., "Non-local Neural Networks", CVPR 2018 (AlexHex7/Non-local_pytorch). Three forms behind one
structure: embedded Gaussian (softmax of theta · phi), dot product (theta · phi / N, no softmax) and Gaussian
(softmax of x · x, no theta, phi absent or a pool). With sub-sampling, phi and g are max-pooled: the keys lie
on their own grid. AlexHex7's Gaussian file uses ONE MaxPool object both inside `g` and as `phi`, so each of
g, theta and phi is read only on the block's own input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.structure import child_of, first_of
from attnviz.capture.families.verify import (
    Call,
    Missing,
    Outcome,
    attend,
    check_input_shape,
    for_checks,
    relative_error,
)
from attnviz.capture.records import PositionAttentionRecord

__all__ = ["FAMILY", "build_non_local", "output_layer"]


def output_layer(module: nn.Module) -> tuple[str, nn.Module] | None:
    """A non-local block's output transform: W (AlexHex7), W_z, or conv_out."""
    for name in ("W", "W_z", "conv_out"):
        child = child_of(module, name)
        if child is not None and first_of(child, nn.Conv2d) is not None:
            return name, child
    return None


def _match_non_local(m: nn.Module) -> bool:
    g, out = child_of(m, "g"), output_layer(m)
    if g is None or out is None or first_of(g, nn.Conv2d) is None:
        return False
    theta, phi = child_of(m, "theta"), child_of(m, "phi")
    if theta is not None:  # embedded Gaussian / dot product
        return first_of(theta, nn.Conv2d) is not None and first_of(phi, nn.Conv2d) is not None
    return phi is None or not any(True for _ in phi.parameters())  # Gaussian: phi absent or a pool


def _taps_non_local(m: nn.Module) -> list[Tap]:
    name, out = output_layer(m)
    taps = [Tap("g", m.g, on_owner_input=True), Tap("W", out, keep_input=True)]
    if child_of(m, "theta") is not None:
        taps.append(Tap("theta", m.theta, on_owner_input=True))
    if child_of(m, "phi") is not None:
        taps.append(Tap("phi", m.phi, on_owner_input=True))
    return taps


def _order_non_local(m: nn.Module) -> tuple[int, ...]:
    if child_of(m, "theta") is None:
        return (2,)
    mode = getattr(m, "mode", "")
    return (1,) if isinstance(mode, str) and "dot" in mode else (0,)


def build_non_local(call: Call, form: str) -> Outcome:
    g, w_in, w_out = call.output("g"), call.input("W"), call.output("W")
    if form == "gaussian":
        if "theta" in call.outputs:
            raise Missing("theta ran: not the Gaussian form")
        theta = call.x
        phi = call.output("phi") if call.outputs.get("phi") else call.x
    else:
        theta, phi = call.output("theta"), call.output("phi")
    batch, channels, height, width = check_input_shape(call, theta)
    if tuple(phi.shape[2:]) != tuple(g.shape[2:]) or phi.shape[1] != theta.shape[1]:
        raise Missing(f"phi {tuple(phi.shape)} and g {tuple(g.shape)} do not pair with theta {tuple(theta.shape)}")
    key_height, key_width = phi.shape[2:]
    query = for_checks(theta.detach()).flatten(2).transpose(1, 2)  # (B, N, Ci)
    key = for_checks(phi.detach()).flatten(2).transpose(1, 2)  # (B, Nk, Ci)
    value = for_checks(g.detach()).flatten(2)  # (B, Cg, Nk)
    num_keys = key.shape[1]
    if form == "dot":  # f = theta . phi / Nk: (g phi^T) theta / Nk, no N x Nk product at all
        y = torch.bmm(torch.bmm(value, key), query.transpose(1, 2)) / num_keys
        log_normaliser = query.new_full((batch, height * width), math.log(num_keys))
    else:
        y, log_normaliser = attend(query, key, value)
    error_y = relative_error(y.view(w_in.shape), w_in.detach())
    error_out = relative_error(for_checks(w_out.detach()) + for_checks(call.x), call.out)
    record = PositionAttentionRecord(
        "non-local",
        query,
        key,
        log_normaliser,
        height,
        width,
        math.nan,
        key_height=int(key_height),
        key_width=int(key_width),
        normalisation="dot" if form == "dot" else "softmax",
    )
    return Outcome(record, max(error_y, error_out))


FAMILY = Family(
    "non-local",
    "non-local block (Wang et al.)",
    _match_non_local,
    _taps_non_local,
    tuple(
        Variant("non-local", form, build_non_local, PositionAttentionRecord) for form in ("embedded", "dot", "gaussian")
    ),
    "theta, phi (on the pooled grid when sub-sampled) and each row's normaliser: rows / columns on demand",
    tells=("theta", "phi", "g", "W"),
    order=_order_non_local,
)
