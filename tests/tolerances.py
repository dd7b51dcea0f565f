"""Tolerances derived from float32 arithmetic, for tests that compare attention computed in two orders.

Standard error bounds (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., ch. 3 and 4), with
u = 2^-24 the unit roundoff of float32 and gamma_n = n u / (1 - n u):

- a dot product of length d, computed in any order: |fl(q . k) - q . k| <= gamma_d |q| . |k|;
- a sum of n non-negative terms, in any order: relative error <= gamma_(n-1);
- a softmax computed as exp(e_j - max e) / sum (what torch.softmax does, and the rows of
  `attnviz.capture.records`): whatever error the exps carry cancels from the row's sum, since the row is divided
  by the sum of those same rounded exps; what is left is the sum's rounding (gamma_(n-1)), the division (two
  roundings: a reciprocal and a product) and the test's own float32 sum of the row (gamma_(n-1) again).

So a row of n softmax weights sums to 1 within 2 gamma_(n-1) + 2u. An entry's relative difference from the same
softmax of energies computed in another order is at most exp(2 delta) - 1, delta the largest energy error of the
row (the entry's own error plus that of the row's maximum), plus the exps' and the sum's rounding.
"""

from __future__ import annotations

import torch

UNIT_ROUNDOFF_32 = 2.0**-24


def gamma(n: int, u: float = UNIT_ROUNDOFF_32) -> float:
    """Higham's gamma_n = n u / (1 - n u)."""
    return n * u / (1 - n * u)


def softmax_row_sum_tolerance(num_keys: int, u: float = UNIT_ROUNDOFF_32) -> float:
    """How far from 1 a float32 softmax row of `num_keys` weights may sum, the test's float32 sum included."""
    return 2 * gamma(num_keys - 1, u) + 2 * u


def energy_error_bound(query: torch.Tensor, key: torch.Tensor, u: float = UNIT_ROUNDOFF_32) -> float:
    """The largest error of any float32 energy q_i . k_j (query (..., N, d), key (..., M, d)), in any order."""
    magnitudes = query.detach().double().abs() @ key.detach().double().abs().transpose(-1, -2)
    return gamma(query.shape[-1], u) * float(magnitudes.max())


def softmax_entry_rtol(query: torch.Tensor, key: torch.Tensor, u: float = UNIT_ROUNDOFF_32) -> float:
    """Relative difference allowed between two float32 softmaxes of Q K^T whose energies were summed in two
    orders: exp(2 delta) - 1 for delta the energies' error bound, plus a few roundings of the exp and the sum."""
    delta = energy_error_bound(query, key, u)
    return float(torch.tensor(2 * delta, dtype=torch.float64).expm1()) + gamma(key.shape[-2], u) + 4 * u
