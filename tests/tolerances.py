"""Tolerances derived from float32 arithmetic, for tests that compare attention computed in two orders.

Standard error bounds (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., ch. 3 and 4), with
u = 2^-24 the unit roundoff of float32 and gamma_n = n u / (1 - n u):

- a dot product of length d, computed in any order: |fl(q . k) - q . k| <= gamma_d |q| . |k|;
- a sum of n non-negative terms, in any order: relative error <= gamma_(n-1);
- a softmax computed as exp(e_j - max e) / sum (what torch.softmax does, and the rows of
  `attnviz.capture.records`): each exp adds a relative error of about u on top of the subtraction's
  u |e_j - max e|; the sum adds gamma_(n-1), the division u.

So a row of n softmax weights sums to 1 within gamma_(n-1) + (3 + spread) u, where spread is the largest
|e_j - max e| that carries weight; we bound it by the whole range of the row's energies. An entry's relative
difference from the same softmax of energies computed in another order is at most exp(2 delta) - 1, delta the
largest energy error of the row (the entry's own error plus the normaliser's).
"""

from __future__ import annotations

import torch

UNIT_ROUNDOFF_32 = 2.0**-24


def gamma(n: int, u: float = UNIT_ROUNDOFF_32) -> float:
    """Higham's gamma_n = n u / (1 - n u)."""
    return n * u / (1 - n * u)


def softmax_row_sum_tolerance(energies: torch.Tensor, u: float = UNIT_ROUNDOFF_32) -> float:
    """How far from 1 a float32 softmax of `energies` (one row, any shape) may sum."""
    energies = energies.detach().double().flatten()
    spread = float(energies.max() - energies.min())
    return gamma(energies.numel() - 1, u) + (3 + spread) * u


def energy_error_bound(query: torch.Tensor, key: torch.Tensor, u: float = UNIT_ROUNDOFF_32) -> float:
    """The largest error of any float32 energy q_i . k_j (query (..., N, d), key (..., M, d)), in any order."""
    magnitudes = query.detach().double().abs() @ key.detach().double().abs().transpose(-1, -2)
    return gamma(query.shape[-1], u) * float(magnitudes.max())


def softmax_entry_rtol(query: torch.Tensor, key: torch.Tensor, u: float = UNIT_ROUNDOFF_32) -> float:
    """Relative difference allowed between two float32 softmaxes of Q K^T whose energies were summed in two
    orders: exp(2 delta) - 1 for delta the energies' error bound, plus a few roundings of the exp and the sum."""
    delta = energy_error_bound(query, key, u)
    return float(torch.tensor(2 * delta, dtype=torch.float64).expm1()) + gamma(key.shape[-2], u) + 4 * u
