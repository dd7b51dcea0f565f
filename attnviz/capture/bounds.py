"""How far a rebuilt attention may be from the op's own, in float32: the bounds the dataflow reader's checks use.

The dataflow reader (attnviz.capture.dataflow) never trusts its reading of a softmax or of an SDPA call: it
rebuilds a few rows from the factors it keeps and compares them with what the op computed. The two differ by
rounding only, summed in another order, so the tolerance is the rounding's bound, not a number picked: Higham's
gamma_n = n u / (1 - n u) for a dot product of length n (Higham, "Accuracy and Stability of Numerical
Algorithms", 2nd ed., sec. 3.1), carried through the exponential of the softmax. `unit_roundoff` says which u
applies (the tensors' dtypes; TF32 on a GPU that allows it); `softmax_rtol` bounds a softmax's entries;
`check_sdpa` bounds S V entry by entry on `check_rows` rows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "CHECK_ROWS",
    "check_rows",
    "check_sdpa",
    "sdpa_error",
    "sdpa_rows",
    "energy_rows",
    "log_normalisers",
    "mask_rows",
    "softmax_rtol",
    "softmax_rtol_of",
    "unit_roundoff",
    "unit_rows",
]

CHECK_ROWS = 4  # rows of a factored map compared with the op's output at capture


def unit_rows(rows: torch.Tensor, unit: float) -> bool:
    """Whether every row (..., n) has length 1 within rounding: a row scaled to unit length (F.normalize) and
    measured again is off by at most (2n + 2) u."""
    length = rows.shape[-1]
    return bool(((torch.linalg.vector_norm(rows, dim=-1) - 1).abs() <= (2 * length + 2) * unit).all())


def unit_roundoff(inp: torch.Tensor, out: torch.Tensor) -> float:
    """The unit roundoff of the least precise arithmetic on either side of a check: the op's (its tensors' dtypes,
    and TF32, a 10-bit mantissa, for float32 matrix products on a GPU that allows it) and the rebuild's, float32
    (what the records keep): a float64 model's op is then checked against float32 arithmetic's bound."""
    unit = max(2.0**-24, *(torch.finfo(t.dtype).eps / 2 for t in (inp, out)))
    if inp.is_cuda and inp.dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        unit = max(unit, 2.0**-11)
    return unit


def softmax_rtol(query: torch.Tensor, key: torch.Tensor, unit: float) -> float:
    """How far (relative) the op's softmax may be from the same softmax of energies summed in another order:
    each energy q . k is off by at most (gamma_d + 2u) |q| . |k| (Higham's bound for a dot product of length d,
    and the scale's rounding), so an entry, a ratio of two exps, by exp(2 delta) - 1; plus the exps' and the
    sum's rounding (gamma_Nk + 4u). Energies of a few hundred give ~1e-4; of thousands, a few 1e-3."""
    products = float((query.abs() @ key.abs().transpose(-1, -2)).max())
    return softmax_rtol_of(products, query.shape[-1], key.shape[-2], unit)


def softmax_rtol_of(products, depth: int, keys: int, unit: float):
    """`softmax_rtol` from `products`, a bound on |q_i| . |k_j| (the sum of |q_ic| |k_jc| over the depth): a
    number, or a tensor or numpy array of them (one per row: then as many bounds)."""
    gamma = depth * unit / (1 - depth * unit)
    expm1 = (
        torch.expm1
        if isinstance(products, torch.Tensor)
        else np.expm1
        if isinstance(products, np.ndarray)
        else math.expm1
    )
    return expm1(2 * (gamma + 2 * unit) * products) + keys * unit / (1 - keys * unit) + 4 * unit


def mask_rows(bias, causal: bool, queries: int, keys: int, rows: slice, device) -> torch.Tensor | None:
    """The additive mask on query rows `rows` of (B, heads, queries, keys) energies: the bias's rows, -inf where
    is_causal masks (key j > query i); None when there is neither."""
    mask = None if bias is None else bias[:, :, rows] if bias.shape[2] > 1 else bias
    if causal:
        after = torch.arange(keys, device=device)[None] > torch.arange(queries, device=device)[rows][:, None]
        blocked = torch.zeros(after.shape, device=device).masked_fill(after, -math.inf)
        mask = blocked if mask is None else mask + blocked
    return mask


def energy_rows(query, key, bias, causal: bool, rows: slice) -> torch.Tensor:
    """q_i · k_j · scale + bias_ij (-inf where masked) for query rows `rows`: (B, heads, R, Nk)."""
    energy = query[:, :, rows] @ key.transpose(-1, -2)
    if bias is None and not causal:
        return energy
    return energy + mask_rows(bias, causal, query.shape[2], key.shape[2], rows, key.device)


def log_normalisers(query, key, bias, causal: bool) -> torch.Tensor:
    """Every row's log-sum-exp over all key tokens, (B, heads, Nq), a block of rows at a time (O(N d) memory)."""
    batch, heads, queries, _ = query.shape
    step = max(1, 2**22 // max(1, batch * heads * key.shape[2]))
    parts = [
        torch.logsumexp(energy_rows(query, key, bias, causal, slice(i, i + step)), -1) for i in range(0, queries, step)
    ]
    return torch.cat(parts, -1)


def check_rows(queries: int) -> slice:
    """About `CHECK_ROWS` query rows evenly spread from the first, as a slice (views, no copies)."""
    return slice(0, queries, max(1, (queries - 1) // max(1, CHECK_ROWS - 1)))


def check_sdpa(query, key, value, bias, causal: bool, seen: torch.Tensor, unit: float, rows) -> float | None:
    """The largest |S V - output| on query rows `rows` (S rebuilt from the op's arguments; `seen`, the op's output
    on those rows, (B, heads, R, d)), or None when any entry is off by more than float32 arithmetic allows
    (`sdpa_error`). `rows`: `check_rows`, or every row of a small map."""
    rebuilt, spread = sdpa_rows(query, key, value, bias, causal, rows)
    return sdpa_error(query, key, bias, rows, rebuilt, spread, seen, unit)


def sdpa_rows(query, key, value, bias, causal: bool, rows) -> tuple[torch.Tensor, torch.Tensor]:
    """(S V, S |V|) on query rows `rows`, S rebuilt from the factors as a record's rows are: what of a check needs
    v, which the op's caller may free once the op returns (`sdpa_error` bounds the rest)."""
    weights = torch.softmax(energy_rows(query, key, bias, causal, rows), dim=-1)
    return weights @ value, weights @ value.abs()


def sdpa_error(query, key, bias, rows, rebuilt, spread, seen, unit: float) -> float | None:
    """The largest |S V - output| (`rebuilt` - `seen`), or None when any entry is off by more than float32
    arithmetic allows, entry by entry: row i's weights by the softmax's bound (`softmax_rtol_of` with a bound on
    row i's own largest |q_i| . |k_j|: Cauchy-Schwarz, |q_i|_2 max_j |k_j|_2, one norm per token rather than a
    product of |Q| and |K|; plus the bias's rounding), and gamma_Nk on each side's sum of S_ij v_j, so
    |diff_ic| <= (rtol_i + 2 gamma_Nk) (S |V|)_ic (`spread`). Bounds from maxima over a whole tensor (max|k|,
    max|v|) were cheaper, and let a 10% error of the scale pass wherever one channel of k and one of v were large
    (as ViTs' are). Cauchy-Schwarz is looser where one key is far longer than the others (an attention sink):
    with one key 30x the others' length, a 1% wrong scale is still rejected, 0.1% no longer is. The bound's
    arithmetic on these small results (R rows per head) runs in numpy, in float64."""
    picked = query[:, :, rows]
    lengths = torch.linalg.vector_norm(picked, dim=-1) * torch.linalg.vector_norm(key, dim=-1).amax(-1, keepdim=True)
    rebuilt, spread, lengths, seen = (_numpy(t) for t in (rebuilt, spread, lengths, seen))
    keys, depth = key.shape[2], key.shape[-1]
    rtol = softmax_rtol_of(lengths[..., None], depth, keys, unit)  # (B, heads, R, 1)
    if bias is not None:
        finite = bias[torch.isfinite(bias)]
        rtol = rtol + (math.expm1(2 * unit * float(finite.abs().max())) if finite.numel() else 0.0)
    diff = np.abs(rebuilt - seen)
    bound = (rtol + 2 * keys * unit / (1 - keys * unit)) * spread + float(np.finfo(np.float32).tiny)
    return float(diff.max()) if bool((diff <= bound).all()) else None


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.device.type == "cpu" and tensor.dtype == torch.float32:
        return tensor.numpy()  # no copy
    return tensor.double().cpu().numpy()
