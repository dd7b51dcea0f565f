"""Build each family's record from what the hooks kept, and verify it by reconstruction.

Every builder takes one `Call` (the module's input x, its output, and the inputs / outputs of the
sub-modules its family taps) and one variant, rebuilds the module's output from the recorded parts
alone, and returns an `Outcome`: the record, the reconstruction error and, when the check could not
decide, why. The error is the largest absolute difference relative to the largest absolute value of
what is compared (the module's output, or an intermediate the module really fed to its next layer,
such as the non-local y entering W or GCNet's context entering its transforms). Position attention
is rebuilt in chunks of query rows (chunk x N energies at a time): S is never formed, and what a
record keeps is O(N·C').

Where a scalar gamma scales the attention term (PAM, criss-cross, CAM), gamma = 0 (the usual
initialisation) hides the attention from the output: then the softmax the module really ran is
compared with the rebuilt one where the module has a Softmax child, and otherwise the check is
inconclusive (not verified), as it is whenever |gamma · term| is below RESOLUTION of the output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from attnviz.capture.families.catalogue import eca_conv, gamma_of, shared_mlp_gate, spatial_weights_conv
from attnviz.capture.records import (ChannelAttentionRecord, ChannelMapRecord, CoordinateAttentionRecord,
                             CrissCrossAttentionRecord, GlobalContextRecord, PositionAttentionRecord,
                             SpatialAttentionRecord)

__all__ = ["Call", "Outcome", "BUILDERS", "TOLERANCE", "RESOLUTION", "tolerance", "attend", "relative_error"]

TOLERANCE = 1e-4    # verified: reconstruction error <= this (float32 / float64), relative to the output's scale
RESOLUTION = 1e-3   # the attention term must reach this share of the output for the output to show it
CHUNK_ELEMENTS = 1 << 21   # energies per chunk of query rows (8 MiB in float32: stays in cache) ...
MIN_CHUNK_ROWS = 128       # ... but not fewer rows: products of a few rows against N keys are slow


class Missing(Exception):
    """A part the variant needs was not produced (a tapped sub-module did not run) or has the wrong shape."""


@dataclass
class Call:
    module: torch.nn.Module
    x: torch.Tensor
    out: torch.Tensor
    outputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    inputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    keep_features: bool = False

    def output(self, part: str) -> torch.Tensor:
        found = self.outputs.get(part)
        if not found:
            raise Missing(f"{part} did not run")
        return found[0]

    def input(self, part: str) -> torch.Tensor:
        found = self.inputs.get(part)
        if not found:
            raise Missing(f"{part} did not run")
        return found[0]


@dataclass
class Outcome:
    record: object | None
    error: float
    note: str = ""       # non-empty: the check could not decide, or the variant did not apply


def tolerance(dtype: torch.dtype) -> float:
    """TOLERANCE for float32 / float64; 8 machine epsilons for half precision (bf16: 0.06, fp16: 0.008)."""
    if dtype in (torch.float32, torch.float64):
        return TOLERANCE
    return max(TOLERANCE, 8 * torch.finfo(dtype).eps)


def _work(t: torch.Tensor) -> torch.Tensor:
    """The dtype the checks run in: float64 stays, everything else float32."""
    return t if t.dtype == torch.float64 else t.float()


def relative_error(rebuilt: torch.Tensor, actual: torch.Tensor) -> float:
    if rebuilt.shape != actual.shape:
        raise Missing(f"shape {tuple(rebuilt.shape)} rebuilt, {tuple(actual.shape)} produced")
    actual = _work(actual)
    scale = float(actual.abs().max()) if actual.numel() else 0.0
    diff = float((_work(rebuilt) - actual).abs().max()) if actual.numel() else 0.0
    if not math.isfinite(diff):
        return math.inf
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def _worse(worst: float, value: float) -> float:
    """The larger error, with NaN counted as infinitely bad (max() would silently keep `worst`)."""
    return math.inf if math.isnan(value) else max(worst, value)


def _chunk_rows(num_keys: int) -> int:
    return max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // max(num_keys, 1))


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T) applied to V without forming S: query (B, N, d), key (B, M, d), value (B, c, M).

    Returns (V S^T (B, c, N), log_normaliser (B, N)), chunk x M energies at a time, one exp per energy.
    """
    batch, num, _ = query.shape
    out = value.new_empty(batch, value.shape[1], num)
    log_normaliser = query.new_empty(batch, num)
    key_t = key.transpose(1, 2)
    step = _chunk_rows(key.shape[1])
    for start in range(0, num, step):
        stop = min(start + step, num)
        energy = torch.bmm(query[:, start:stop], key_t)          # (B, n, M)
        peak = energy.amax(-1, keepdim=True)
        weights = energy.sub_(peak).exp_()
        total = weights.sum(-1, keepdim=True)
        log_normaliser[:, start:stop] = (peak + total.log()).squeeze(-1)
        out[:, :, start:stop] = torch.bmm(value, weights.transpose(1, 2)) / total.transpose(1, 2)
    return out, log_normaliser


def _compare_rows(query, key, log_normaliser, ran: torch.Tensor) -> float:
    """Largest |S_rebuilt - S_ran| relative to max S_ran, S rebuilt in chunks of rows (ran: (B, N, M))."""
    ran = ran.reshape(query.shape[0], query.shape[1], key.shape[1])
    key_t = key.transpose(1, 2)
    step, worst, scale = _chunk_rows(key.shape[1]), 0.0, 0.0
    for start in range(0, query.shape[1], step):
        stop = min(start + step, query.shape[1])
        rows = torch.exp(torch.bmm(query[:, start:stop], key_t) - log_normaliser[:, start:stop, None])
        actual = _work(ran[:, start:stop])
        worst = _worse(worst, float((rows - actual).abs().max()))
        scale = max(scale, float(actual.abs().max()))
    return worst / scale if scale > 0 else math.inf


def _check_input_shape(call: Call, *parts: torch.Tensor) -> tuple[int, int, int, int]:
    if call.x.dim() != 4:
        raise Missing(f"input of {call.x.dim()} dimensions, expected (B, C, H, W)")
    batch, channels, height, width = call.x.shape
    for part in parts:
        if part.dim() != 4 or part.shape[0] != batch or tuple(part.shape[2:]) != (height, width):
            raise Missing(f"a projection of shape {tuple(part.shape)} for an input of {tuple(call.x.shape)}")
    return batch, channels, height, width


def _gamma_note(gamma: float, term: torch.Tensor, out: torch.Tensor) -> str:
    """Why the output cannot show the attention term (empty when it can)."""
    reach = abs(gamma) * float(term.abs().max()) if term.numel() else 0.0
    scale = float(out.abs().max()) if out.numel() else 0.0
    if reach <= RESOLUTION * scale:
        return (f"inconclusive: gamma = {gamma:.3g}, the attention term reaches {reach / scale if scale else 0:.1e}"
                " of the output, too little to verify it")
    return ""


# ----------------------------------------------------------------------------- position attention


def build_pam(call: Call, form: str) -> Outcome:
    q, k, v = call.output("query"), call.output("key"), call.output("value")
    batch, channels, height, width = _check_input_shape(call, q, k, v)
    gamma = gamma_of(call.module)
    query = _work(q.detach()).flatten(2).transpose(1, 2)     # (B, N, C')
    key = _work(k.detach()).flatten(2).transpose(1, 2)
    value = _work(v.detach()).flatten(2)                       # (B, C, N)
    x, out = _work(call.x).flatten(2), _work(call.out)
    term, log_normaliser = attend(query, key, value)
    error = relative_error((gamma * term + x).view(out.shape), out)
    note = ""
    ran = call.outputs.get("softmax")
    if ran and tuple(ran[0].shape[-2:]) == (height * width, height * width):
        error = max(error, _compare_rows(query, key, log_normaliser, ran[0]))
    else:
        note = _gamma_note(gamma, term, out)
    record = PositionAttentionRecord("pam", query, key, log_normaliser, height, width, gamma)
    return Outcome(record, error, note)


def _cross_energies(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, H, W, H + W): energies of each pixel with its column (self masked to -inf) then its row."""
    height = q.shape[2]
    column = torch.einsum("bchw,bcgw->bhwg", q, k)
    eye = torch.eye(height, dtype=torch.bool, device=q.device)
    column = column.masked_fill(eye[:, None, :], -math.inf)   # [h, w, g]: g == h is the pixel itself
    row = torch.einsum("bchw,bchv->bhwv", q, k)
    return torch.cat([column, row], dim=-1)


def build_criss_cross(call: Call, form: str) -> Outcome:
    q, k, v = call.output("query"), call.output("key"), call.output("value")
    batch, channels, height, width = _check_input_shape(call, q, k, v)
    gamma = gamma_of(call.module)
    q, k, v = (_work(t.detach()) for t in (q, k, v))
    energy = _cross_energies(q, k)
    log_normaliser = torch.logsumexp(energy, dim=-1)                     # (B, H, W)
    weights = torch.exp(energy - log_normaliser[..., None])
    term = (torch.einsum("bhwg,bcgw->bchw", weights[..., :height], v)
            + torch.einsum("bhwv,bchv->bchw", weights[..., height:], v))
    x, out = _work(call.x), _work(call.out)
    error = relative_error(gamma * term + x, out)
    note = ""
    ran = call.outputs.get("softmax")
    if ran and tuple(ran[0].shape) == tuple(weights.shape):
        ran = _work(ran[0])
        scale = float(ran.abs().max())
        error = _worse(error, float((weights - ran).abs().max()) / scale if scale > 0 else math.inf)
    else:
        note = _gamma_note(gamma, term, out)
    del weights, energy
    record = CrissCrossAttentionRecord("criss-cross", q.flatten(2).transpose(1, 2), k.flatten(2).transpose(1, 2),
                                       log_normaliser.flatten(1), height, width, gamma)
    return Outcome(record, error, note)


def build_non_local(call: Call, form: str) -> Outcome:
    g, w_in, w_out = call.output("g"), call.input("W"), call.output("W")
    if form == "gaussian":
        if "theta" in call.outputs:
            raise Missing("theta ran: not the Gaussian form")
        theta = call.x
        phi = call.output("phi") if call.outputs.get("phi") else call.x
    else:
        theta, phi = call.output("theta"), call.output("phi")
    batch, channels, height, width = _check_input_shape(call, theta)
    if tuple(phi.shape[2:]) != tuple(g.shape[2:]) or phi.shape[1] != theta.shape[1]:
        raise Missing(f"phi {tuple(phi.shape)} and g {tuple(g.shape)} do not pair with theta {tuple(theta.shape)}")
    key_height, key_width = phi.shape[2:]
    query = _work(theta.detach()).flatten(2).transpose(1, 2)   # (B, N, Ci)
    key = _work(phi.detach()).flatten(2).transpose(1, 2)       # (B, Nk, Ci)
    value = _work(g.detach()).flatten(2)                        # (B, Cg, Nk)
    num_keys = key.shape[1]
    if form == "dot":   # f = theta . phi / Nk: (g phi^T) theta / Nk, no N x Nk product at all
        y = torch.bmm(torch.bmm(value, key), query.transpose(1, 2)) / num_keys
        log_normaliser = query.new_full((batch, height * width), math.log(num_keys))
    else:
        y, log_normaliser = attend(query, key, value)
    error_y = relative_error(y.view(w_in.shape), w_in.detach())
    error_out = relative_error(_work(w_out.detach()) + _work(call.x), call.out)
    record = PositionAttentionRecord(
        "non-local", query, key, log_normaliser, height, width, math.nan,
        key_height=int(key_height), key_width=int(key_width),
        normalisation="dot" if form == "dot" else "softmax")
    return Outcome(record, max(error_y, error_out))


def build_cam(call: Call, form: str) -> Outcome:
    _check_input_shape(call)
    gamma = gamma_of(call.module)
    x = _work(call.x.detach()).flatten(2)                       # (B, C, N)
    energy = torch.bmm(x, x.transpose(1, 2))
    argument = energy.amax(-1, keepdim=True) - energy if form == "official" else energy
    attention = torch.softmax(argument, dim=-1)
    out = _work(call.out)
    note, error = "", 0.0
    ran = call.outputs.get("softmax")
    if ran and tuple(ran[0].shape) == tuple(attention.shape):
        ran_attention = _work(ran[0].detach())
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
        attention = ran_attention           # the map that ran, for the record and the output check
        term = torch.bmm(attention, x)
    else:
        term = torch.bmm(attention, x)
        note = _gamma_note(gamma, term, out)
    error = max(error, relative_error((gamma * term + x).view(out.shape), out))
    record = ChannelMapRecord("cam", attention, form, gamma,
                              features=call.x.detach() if call.keep_features else None)
    return Outcome(record, error, note)


def build_gcnet(call: Call, form: str) -> Outcome:
    batch, channels, height, width = _check_input_shape(call, call.output("mask"))
    mask = torch.softmax(_work(call.output("mask").detach()).flatten(1), dim=-1)   # (B, N)
    x = _work(call.x.detach())
    context = torch.einsum("bcn,bn->bc", x.flatten(2), mask)
    error, ran_context = 0.0, None
    rebuilt = x
    for part in ("channel_mul_conv", "channel_add_conv"):
        if part not in call.inputs and part not in call.outputs:
            continue
        ran_context = call.input(part).detach()
        error = max(error, relative_error(context, ran_context.flatten(1)))
        transformed = _work(call.output(part).detach())
        rebuilt = rebuilt * torch.sigmoid(transformed) if part == "channel_mul_conv" else rebuilt + transformed
    if ran_context is None:
        raise Missing("neither channel_add_conv nor channel_mul_conv ran")
    error = max(error, relative_error(rebuilt, call.out))
    record = GlobalContextRecord("gcnet", mask.view(batch, height, width), ran_context.flatten(1))
    return Outcome(record, error)


# ----------------------------------------------------------------------------- gates


def _gate_error(call: Call, gate: torch.Tensor) -> float:
    return relative_error(_work(call.x) * gate, call.out)


def _pool_error(call: Call, pooled: torch.Tensor, how: str) -> float:
    x = _work(call.x)
    reference = {"avg": lambda: x.mean((2, 3)), "max": lambda: x.amax((2, 3))}.get(how)
    return 0.0 if reference is None else relative_error(pooled, reference())


def build_eca(call: Call, form: str) -> Outcome:
    batch, channels, _, _ = _check_input_shape(call)
    pooled = _work(call.input("conv").detach()).reshape(batch, -1)
    weights = torch.sigmoid(_work(call.output("conv").detach())).reshape(batch, -1)
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(_pool_error(call, pooled, "avg"), _gate_error(call, weights[:, :, None, None]))
    conv = eca_conv(call.module)
    record = ChannelAttentionRecord("eca", weights, {"pooled": pooled}, kernel=conv.weight.detach().flatten(),
                                    features=call.x.detach() if call.keep_features else None,
                                    kernel_bias=float(conv.bias) if conv.bias is not None else 0.0)
    return Outcome(record, error)


def build_se(call: Call, form: str) -> Outcome:
    batch, channels, _, _ = _check_input_shape(call)
    pooled = _work(call.input("fc").detach()).reshape(batch, -1)
    weights = _work(call.output("fc").detach()).reshape(batch, -1)
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(_pool_error(call, pooled, "avg"), _gate_error(call, weights[:, :, None, None]))
    record = ChannelAttentionRecord("se", weights, {"pooled": pooled},
                                    features=call.x.detach() if call.keep_features else None)
    return Outcome(record, error)


def _weights_error(call: Call, weights: torch.Tensor) -> float:
    """A gate that returns its weights: they are its output."""
    return relative_error(weights.reshape(call.out.shape), call.out)


def build_cbam_channel(call: Call, form: str) -> Outcome:
    if form == "weights":
        return _cbam_channel_weights(call)
    batch, channels, _, _ = _check_input_shape(call)
    pools = list(call.module.pool_types)
    branches, pooled = call.outputs.get("mlp", []), call.inputs.get("mlp", [])
    if len(branches) != len(pools):
        raise Missing(f"the mlp ran {len(branches)} times for pool_types {pools}")
    error, parts, total = 0.0, {}, 0
    for how, branch, inp in zip(pools, branches, pooled):
        branch = _work(branch.detach()).reshape(batch, -1)
        error = max(error, _pool_error(call, _work(inp.detach()).reshape(batch, -1), how))
        parts[f"{how}_branch"] = branch
        total = total + branch
    weights = torch.sigmoid(total)
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(error, _gate_error(call, weights[:, :, None, None]))
    record = ChannelAttentionRecord("flexible", weights, parts,
                                    features=call.x.detach() if call.keep_features else None)
    return Outcome(record, error)


def _cbam_channel_weights(call: Call) -> Outcome:
    """External-Attention-pytorch's ChannelAttention: sigmoid(MLP(maxpool x) + MLP(avgpool x)), returned."""
    if shared_mlp_gate(call.module) is None:
        raise Missing("not a gate that pools with its own children")
    batch, channels, _, _ = _check_input_shape(call)
    pooled = {how: _work(call.output(how).detach()).reshape(batch, -1) for how in ("avg", "max")}
    branches = {}
    for inp, out in zip(call.inputs.get("mlp", []), call.outputs.get("mlp", [])):
        inp = _work(inp.detach()).reshape(batch, -1)
        how = min(pooled, key=lambda h: relative_error(inp, pooled[h]))   # which pool this call of the MLP read
        branches[how] = _work(out.detach()).reshape(batch, -1)
    if set(branches) != {"avg", "max"}:
        raise Missing(f"the MLP ran on {sorted(branches)} of the avg and max pools")
    weights = torch.sigmoid(branches["avg"] + branches["max"])
    if weights.shape[1] != channels:
        raise Missing(f"{weights.shape[1]} weights for {channels} channels")
    error = max(_pool_error(call, pooled["avg"], "avg"), _pool_error(call, pooled["max"], "max"),
                _weights_error(call, weights))
    record = ChannelAttentionRecord("flexible", weights, {"avg_branch": branches["avg"], "max_branch": branches["max"]},
                                    features=call.x.detach() if call.keep_features else None)
    return Outcome(record, error)


def _cbam_spatial_weights(call: Call) -> Outcome:
    """External-Attention-pytorch's SpatialAttention: sigmoid(conv([max_c x; mean_c x])), returned."""
    if spatial_weights_conv(call.module) is None:
        raise Missing("not a gate of one Conv2d(2 -> 1) and a Sigmoid")
    logits, pooled = call.output("spatial"), _work(call.input("spatial").detach())
    _check_input_shape(call, logits)
    x = _work(call.x)
    channel_max, channel_mean = x.amax(1, keepdim=True), x.mean(1, keepdim=True)
    pool_error = min(relative_error(pooled, torch.cat([channel_max, channel_mean], 1)),
                     relative_error(pooled, torch.cat([channel_mean, channel_max], 1)))
    weights = torch.sigmoid(_work(logits.detach()))        # (B, 1, H, W)
    return Outcome(SpatialAttentionRecord("cbam-spatial", weights[:, 0]),
                   max(pool_error, _weights_error(call, weights)))


def build_cbam_spatial(call: Call, form: str) -> Outcome:
    if form == "weights":
        return _cbam_spatial_weights(call)
    spatial = call.output("spatial")
    _check_input_shape(call, spatial)
    weights = torch.sigmoid(_work(spatial.detach()))        # (B, 1, H, W)
    if weights.shape[1] != 1:
        raise Missing(f"a spatial map of {weights.shape[1]} channels")
    return Outcome(SpatialAttentionRecord("cbam-spatial", weights[:, 0]), _gate_error(call, weights))


def build_coord(call: Call, form: str) -> Outcome:
    batch, channels, height, width = _check_input_shape(call)
    a_h = torch.sigmoid(_work(call.output("conv_h").detach()))
    a_w = torch.sigmoid(_work(call.output("conv_w").detach()))
    if a_h.numel() != batch * channels * height or a_w.numel() != batch * channels * width:
        raise Missing(f"conv_h {tuple(a_h.shape)} / conv_w {tuple(a_w.shape)} for an input of {tuple(call.x.shape)}")
    a_h, a_w = a_h.reshape(batch, channels, height), a_w.reshape(batch, channels, width)
    error = _gate_error(call, a_h[..., None] * a_w[:, :, None, :])
    return Outcome(CoordinateAttentionRecord("ca", a_h, a_w), error)


BUILDERS = {
    "pam": build_pam, "criss-cross": build_criss_cross, "non-local": build_non_local, "cam": build_cam,
    "gcnet": build_gcnet, "eca": build_eca, "se": build_se, "cbam-channel": build_cbam_channel,
    "cbam-spatial": build_cbam_spatial, "coord": build_coord,
}
