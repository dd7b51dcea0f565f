"""What every family's builder shares: the call it reads, the outcome it returns, and the checks.

Every builder (one per variant, in the family's own file) takes one `Call` (the module's input x, its output,
and the inputs / outputs of the sub-modules its family taps) and one form, rebuilds the module's output from
the recorded parts alone, and returns an `Outcome`: the record, the reconstruction error and, when the check
could not decide, why. The error is the largest absolute difference relative to the largest absolute value of
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

__all__ = [
    "Call",
    "Outcome",
    "Missing",
    "TOLERANCE",
    "RESOLUTION",
    "tolerance",
    "for_checks",
    "relative_error",
    "worse",
    "attend",
    "compare_rows",
    "check_input_shape",
    "gamma_note",
    "gate_error",
    "pool_error",
    "weights_error",
]

TOLERANCE = 1e-4  # verified: reconstruction error <= this (float32 / float64), relative to the output's scale
RESOLUTION = 1e-3  # the attention term must reach this share of the output for the output to show it
CHUNK_ELEMENTS = 1 << 21  # energies per chunk of query rows (8 MiB in float32: stays in cache) ...
MIN_CHUNK_ROWS = 128  # ... but not fewer rows: products of a few rows against N keys are slow


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
    note: str = ""  # non-empty: the check could not decide, or the variant did not apply


def tolerance(dtype: torch.dtype) -> float:
    """TOLERANCE for float32 / float64; 8 machine epsilons for half precision (bf16: 0.06, fp16: 0.008)."""
    if dtype in (torch.float32, torch.float64):
        return TOLERANCE
    return max(TOLERANCE, 8 * torch.finfo(dtype).eps)


def for_checks(t: torch.Tensor) -> torch.Tensor:
    """The dtype the checks run in: float64 stays, everything else float32."""
    return t if t.dtype == torch.float64 else t.float()


def relative_error(rebuilt: torch.Tensor, actual: torch.Tensor) -> float:
    if rebuilt.shape != actual.shape:
        raise Missing(f"shape {tuple(rebuilt.shape)} rebuilt, {tuple(actual.shape)} produced")
    actual = for_checks(actual)
    scale = float(actual.abs().max()) if actual.numel() else 0.0
    diff = float((for_checks(rebuilt) - actual).abs().max()) if actual.numel() else 0.0
    if not math.isfinite(diff):
        return math.inf
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def worse(worst: float, value: float) -> float:
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
        energy = torch.bmm(query[:, start:stop], key_t)  # (B, n, M)
        peak = energy.amax(-1, keepdim=True)
        weights = energy.sub_(peak).exp_()
        total = weights.sum(-1, keepdim=True)
        log_normaliser[:, start:stop] = (peak + total.log()).squeeze(-1)
        out[:, :, start:stop] = torch.bmm(value, weights.transpose(1, 2)) / total.transpose(1, 2)
    return out, log_normaliser


def compare_rows(query, key, log_normaliser, ran: torch.Tensor) -> float:
    """Largest |S_rebuilt - S_ran| relative to max S_ran, S rebuilt in chunks of rows (ran: (B, N, M))."""
    ran = ran.reshape(query.shape[0], query.shape[1], key.shape[1])
    key_t = key.transpose(1, 2)
    step, worst, scale = _chunk_rows(key.shape[1]), 0.0, 0.0
    for start in range(0, query.shape[1], step):
        stop = min(start + step, query.shape[1])
        rows = torch.exp(torch.bmm(query[:, start:stop], key_t) - log_normaliser[:, start:stop, None])
        actual = for_checks(ran[:, start:stop])
        worst = worse(worst, float((rows - actual).abs().max()))
        scale = max(scale, float(actual.abs().max()))
    return worst / scale if scale > 0 else math.inf


def check_input_shape(call: Call, *parts: torch.Tensor) -> tuple[int, int, int, int]:
    if call.x.dim() != 4:
        raise Missing(f"input of {call.x.dim()} dimensions, expected (B, C, H, W)")
    batch, channels, height, width = call.x.shape
    for part in parts:
        if part.dim() != 4 or part.shape[0] != batch or tuple(part.shape[2:]) != (height, width):
            raise Missing(f"a projection of shape {tuple(part.shape)} for an input of {tuple(call.x.shape)}")
    return batch, channels, height, width


def gamma_note(gamma: float, term: torch.Tensor, out: torch.Tensor) -> str:
    """Why the output cannot show the attention term (empty when it can)."""
    reach = abs(gamma) * float(term.abs().max()) if term.numel() else 0.0
    scale = float(out.abs().max()) if out.numel() else 0.0
    if reach <= RESOLUTION * scale:
        return (
            f"inconclusive: gamma = {gamma:.3g}, the attention term reaches {reach / scale if scale else 0:.1e}"
            " of the output, too little to verify it"
        )
    return ""


def gate_error(call: Call, gate: torch.Tensor) -> float:
    return relative_error(for_checks(call.x) * gate, call.out)


def pool_error(call: Call, pooled: torch.Tensor, how: str) -> float:
    x = for_checks(call.x)
    reference = {"avg": lambda: x.mean((2, 3)), "max": lambda: x.amax((2, 3))}.get(how)
    return 0.0 if reference is None else relative_error(pooled, reference())


def weights_error(call: Call, weights: torch.Tensor) -> float:
    """A gate that returns its weights: they are its output."""
    return relative_error(weights.reshape(call.out.shape), call.out)
