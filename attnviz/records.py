"""What capture records: one dataclass per kind of attention, with the maths to read it.

Each record holds the tensors one attention module computed in one forward
call (moved off the graph), plus methods that derive what the pages show
from them, so that the app never recomputes attention itself:
`PositionAttentionRecord.row/rows/column/entry` rebuild any part of DANet's S
from the query and key projections and the per-row log-sum-exp (S itself is
never stored), `ChannelMapRecord.row/softmax_terms/similar_channels` read
DANet's X in either form.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = ["ChannelAttentionRecord", "SpatialAttentionRecord", "CoordinateAttentionRecord",
           "PositionAttentionRecord", "ChannelMapRecord", "Record", "of_type"]


@dataclass
class ChannelAttentionRecord:
    """Per-channel weights w in (0, 1) that scale the feature map: y = x * w.

    `kind` names the module ("eca", "se", "flexible"); `parts` holds what the
    page explains besides w, e.g. the pooled descriptor, or the two branch
    outputs MLP(avgpool) and MLP(maxpool) of the flexible/CBAM channel gate.
    `kernel` is ECA's learned 1D kernel (k,), None for the others.
    """

    kind: str
    weights: torch.Tensor  # (B, C)
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    kernel: torch.Tensor | None = None
    features: torch.Tensor | None = None  # the module's input (B, C, H, W), if asked for

    @property
    def channels(self) -> int:
        return self.weights.shape[1]


@dataclass
class SpatialAttentionRecord:
    """A spatial gate (CBAM's 7x7 branch): y = x * m, m in (0, 1)^(H x W)."""

    kind: str
    map: torch.Tensor  # (B, H, W)


@dataclass
class CoordinateAttentionRecord:
    """Coordinate attention: y[c, h, w] = x[c, h, w] * a_h[c, h] * a_w[c, w]."""

    kind: str
    height_weights: torch.Tensor  # (B, C, H)
    width_weights: torch.Tensor  # (B, C, W)


@dataclass
class PositionAttentionRecord:
    """DANet position attention, S = softmax(Q K^T) over the last axis, kept implicit.

    query: (B, N, C'), key: (B, N, C'), log_normaliser: (B, N) with
    log_normaliser[b, i] = logsumexp_j (q_i . k_j), so that
    S[b, i, j] = exp(q_i . k_j - log_normaliser[b, i]).
    """

    kind: str
    query: torch.Tensor
    key: torch.Tensor
    log_normaliser: torch.Tensor
    height: int
    width: int
    alpha: float

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_pixels:
            raise IndexError(f"pixel index {index} outside 0..{self.num_pixels - 1}")
        return index

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[index, :] as (H, W): where pixel `index` attends. Sums to 1."""
        index = self._check_index(index)
        q = self.query[batch, index].float()
        energy = self.key[batch].float() @ q
        return torch.exp(energy - self.log_normaliser[batch, index]).view(self.height, self.width)

    def rows(self, indices: torch.Tensor, batch: int = 0) -> torch.Tensor:
        """S[indices, :] as (R, H, W) for R flat pixel indices: one matrix product for all of them."""
        indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if indices.numel() and not (0 <= int(indices.min()) and int(indices.max()) < self.num_pixels):
            raise IndexError(f"pixel indices outside 0..{self.num_pixels - 1}")
        energy = self.query[batch, indices].float() @ self.key[batch].float().T
        weights = torch.exp(energy - self.log_normaliser[batch, indices][:, None])
        return weights.view(-1, self.height, self.width)

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[:, index] as (H, W): how much every pixel attends to pixel `index`."""
        index = self._check_index(index)
        k = self.key[batch, index].float()
        energy = self.query[batch].float() @ k
        return torch.exp(energy - self.log_normaliser[batch]).view(self.height, self.width)

    def entry(self, i: int, j: int, batch: int = 0) -> tuple[float, float, float]:
        """S[i, j] with its parts: (energy q_i . k_j, log-normaliser of row i, S[i, j] = exp(energy - lse))."""
        i, j = self._check_index(i), self._check_index(j)
        energy = float(self.query[batch, i].double() @ self.key[batch, j].double())
        log_normaliser = float(self.log_normaliser[batch, i])
        return energy, log_normaliser, math.exp(energy - log_normaliser)

    def matrix(self, batch: int = 0, max_pixels: int = 4096) -> torch.Tensor:
        """The full S (N x N). Refuses when N > max_pixels: S costs N^2 memory."""
        if self.num_pixels > max_pixels:
            raise MemoryError(
                f"S would be {self.num_pixels} x {self.num_pixels}; "
                f"use row()/column() or raise max_pixels (now {max_pixels})"
            )
        energy = self.query[batch].float() @ self.key[batch].float().T
        return torch.exp(energy - self.log_normaliser[batch][:, None])


@dataclass
class ChannelMapRecord:
    """DANet channel attention X (C x C), row c = how channel c mixes the others."""

    kind: str
    attention: torch.Tensor  # (B, C, C)
    form: str  # "official" (softmax(rowmax - energy)) or "paper" (softmax(energy))
    beta: float
    features: torch.Tensor | None = None  # the module's input A (B, C, H, W), if asked for

    def _features(self, batch: int) -> torch.Tensor:
        if self.features is None:
            raise ValueError("this record has no features: capture with keep_features=True")
        return self.features[batch].flatten(1).double()

    def similarity(self, channel: int, batch: int = 0) -> torch.Tensor:
        """(C,) energies A_c . A_j of row `channel`, in float64 from the recorded features."""
        flat = self._features(batch)
        return flat @ flat[channel]

    def softmax_argument(self, channel: int, form: str | None = None, batch: int = 0) -> torch.Tensor:
        """(C,) what the softmax of row `channel` takes in `form` (default: this model's form):
        A_c . A_j ("paper") or max_m A_c . A_m - A_c . A_j ("official"), float64."""
        energy = self.similarity(channel, batch)
        form = form or self.form
        if form == "official":
            return energy.max() - energy
        if form != "paper":
            raise ValueError(f"form must be 'official' or 'paper', got {form!r}")
        return energy

    def softmax_terms(self, channel: int, j: int, batch: int = 0) -> tuple[float, float]:
        """(the softmax argument of X[channel, j], the row's log-normaliser), float64, this model's form."""
        argument = self.softmax_argument(channel, batch=batch)
        return float(argument[j]), float(torch.logsumexp(argument, 0))

    def similar_channels(self, channel: int, batch: int = 0) -> tuple[int, int]:
        """(most, least) similar other channel to `channel` by the energy A_c . A_j."""
        energy = self.similarity(channel, batch).clone()
        others = torch.ones_like(energy, dtype=torch.bool)
        others[channel] = False
        most = int(torch.where(others, energy, -math.inf).argmax())
        least = int(torch.where(others, energy, math.inf).argmin())
        return most, least

    def row(self, channel: int, form: str | None = None, batch: int = 0) -> torch.Tensor:
        """Row `channel` of X: the recorded one for this model's form, else recomputed (float64) from A."""
        if form is None or form == self.form:
            return self.attention[batch, channel]
        return torch.softmax(self.softmax_argument(channel, form, batch), dim=0).float()


Record = (
    ChannelAttentionRecord
    | SpatialAttentionRecord
    | CoordinateAttentionRecord
    | PositionAttentionRecord
    | ChannelMapRecord
)


def of_type(records: Mapping, record_type: type) -> dict:
    """The records (a name -> record mapping) of one type, in call order."""
    return {name: rec for name, rec in records.items() if isinstance(rec, record_type)}
