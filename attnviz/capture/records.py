"""What capture records: one dataclass per kind of attention, with the maths to read it.

Each record holds the tensors one attention module computed in one forward
call (moved off the graph), plus methods that derive what the pages show
from them, so that the app never recomputes attention itself:
`PositionAttentionRecord.row/rows/column/entry` rebuild any part of DANet's S
from the query and key projections and the per-row log-sum-exp (S itself is
never stored), `ChannelMapRecord.row/softmax_terms/similar_channels` read
DANet's X in either form.

The spatial records (PositionAttentionRecord, CrissCrossAttentionRecord, GlobalContextRecord,
DenseAttentionRecord) share one
interface, `SpatialMap`: row / column / entry-free reading of S, the key grid and its size, the
normalisation ("softmax" or "dot"), the baseline a row is compared with (the number of keys; H + W - 1 for
the cross), whether every query shares one row (GCNet), the residual weight alpha (None where the
module has none) and the size of the branch it scales, `branch_size` (below). Views and pages read these,
never `getattr` with a default.

The branch size. DANet adds each attention branch to its input, E = α (D Sᵀ) + A (PAM) and E = β (X A) + A
(CAM). In PAM, D is a learned 1x1 convolution, so α D = (−α)(−D): the sign and the size of α mean nothing on
their own; what does is how large the branch is against the features it is added to, on this photo:
‖α D Sᵀ‖ / ‖A‖ = ‖E − A‖ / ‖A‖ (Frobenius norms over one batch item's whole feature map). The modules that
have such a residual weight record it at capture (`branch_ratio`, one number per batch item, from the branch
tensor the module computed; `branch_ratios` computes it); `branch_size(batch)` reads it, None where it was not
recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from attnviz.i18n import Phrase

__all__ = [
    "ChannelAttentionRecord",
    "SpatialAttentionRecord",
    "CoordinateAttentionRecord",
    "PositionAttentionRecord",
    "ChannelMapRecord",
    "CrossCovarianceRecord",
    "CrissCrossAttentionRecord",
    "GlobalContextRecord",
    "DenseAttentionRecord",
    "TokenAttentionRecord",
    "WindowAttentionRecord",
    "WindowEnergiesRecord",
    "BranchWeightRecord",
    "GateRecord",
    "Record",
    "of_type",
    "SpatialMap",
    "Provenance",
    "ResidualBranch",
    "branch_ratios",
]


@runtime_checkable
class SpatialMap(Protocol):
    """What every spatial attention record answers (see the module docstring)."""

    height: int
    width: int
    normalisation: str
    shared_by_all_queries: bool

    @property
    def columns_use_recorded_normalisers(self) -> bool:
        """True where a row is normalised by its own log-sum-exp but a column by the ones the forward recorded."""

    @property
    def num_pixels(self) -> int: ...
    @property
    def key_grid(self) -> tuple[int, int]: ...
    @property
    def num_keys(self) -> int: ...
    @property
    def baseline(self) -> int: ...
    @property
    def alpha(self) -> float | None: ...
    def branch_size(self, batch: int = 0) -> float | None: ...
    def row(self, index: int, batch: int = 0) -> torch.Tensor: ...
    def column(self, index: int, batch: int = 0) -> torch.Tensor: ...


@dataclass(kw_only=True)
class Provenance:
    """Where a record came from and whether it was checked; every record has these (keyword-only) fields."""

    family: str | None = None  # set by attnviz.capture.families (None: own module / library adapter / dataflow)
    verified: bool = True  # False: recognised, but its output was not reproduced
    max_error: float | None = None  # reconstruction error (None: not checked)
    verified_form: str = ""  # the variant that verified ("embedded", "gaussian", "weights", ...)
    found_by: Phrase | None = None  # how the dataflow reader found it, in no language ("its softmax over 45x60 ...")
    reader: str = "own"  # the reader that found it (attnviz.capture.readers): "own" (attnviz's modules
    #                                record themselves), "library" (timm / torchvision), "structure", "dataflow"


def branch_ratios(branch: torch.Tensor, features: torch.Tensor) -> tuple[float, ...]:
    """‖branch_b‖ / ‖features_b‖ for each batch item b (Frobenius norms over all its other axes), accumulated
    in float64; nan where ‖features_b‖ = 0. `branch` is what a module adds to its input `features`
    (α D Sᵀ for DANet's PAM, β X A for its CAM): cheap, O(C·N), no N x N."""
    norms = [torch.linalg.vector_norm(t.flatten(1), dim=1, dtype=torch.float64) for t in (branch, features)]
    return tuple(float(b / a) if a > 0 else math.nan for b, a in zip(*(n.tolist() for n in norms)))


@dataclass(kw_only=True)
class ResidualBranch:
    """The size of the branch a residual weight scales, E = weight · branch + A: ‖E − A‖ / ‖A‖ for each batch
    item, as the module computed it (see the module docstring); None where the module was not read so."""

    branch_ratio: tuple[float, ...] | None = None

    def branch_size(self, batch: int = 0) -> float | None:
        """‖E − A‖ / ‖A‖ for batch item `batch`; None when not recorded or not finite (‖A‖ = 0)."""
        if self.branch_ratio is None:
            return None
        value = self.branch_ratio[batch]
        return value if math.isfinite(value) else None


@dataclass
class ChannelAttentionRecord(Provenance):
    """Per-channel weights w in (0, 1) that scale the feature map: y = x * w.

    `kind` names the module ("eca", "se", "flexible"); `parts` holds what the
    page explains besides w, e.g. the pooled descriptor, or the two branch
    outputs MLP(avgpool) and MLP(maxpool) of the flexible/CBAM channel gate.
    `kernel` is ECA's learned 1D kernel (k,), None for the others; `kernel_bias` its bias (a copy with
    nn.Conv1d's default bias=True, e.g. External-Attention-pytorch's ECAAttention), 0 for the official code.
    """

    kind: str
    weights: torch.Tensor  # (B, C)
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    kernel: torch.Tensor | None = None
    features: torch.Tensor | None = None  # the module's input (B, C, H, W), if asked for
    kernel_bias: float = field(default=0.0, kw_only=True)

    @property
    def channels(self) -> int:
        return self.weights.shape[1]


@dataclass
class SpatialAttentionRecord(Provenance):
    """A spatial gate (CBAM's 7x7 branch): y = x * m, m in (0, 1)^(H x W)."""

    kind: str
    map: torch.Tensor  # (B, H, W)
    groups: torch.Tensor | None = None  # (B, G, H, W): one gate per channel group (SGE); `map` is their mean


@dataclass
class CoordinateAttentionRecord(Provenance):
    """Coordinate attention: y[c, h, w] = x[c, h, w] * a_h[c, h] * a_w[c, w]."""

    kind: str
    height_weights: torch.Tensor  # (B, C, H)
    width_weights: torch.Tensor  # (B, C, W)


@dataclass
class PositionAttentionRecord(ResidualBranch, Provenance):
    """DANet position attention, S = softmax(Q K^T) over the last axis, kept implicit.

    query: (B, N, C'), key: (B, N, C'), log_normaliser: (B, N) with
    log_normaliser[b, i] = logsumexp_j (q_i . k_j) as the forward pass computed it, so that
    S[b, i, j] = exp(q_i . k_j - log_normaliser[b, i]).

    A row is normalised by its own log-sum-exp, recomputed from the energies it is built from (a softmax of
    q_i . K): it is a distribution on any CPU. With the recorded L_i instead, a row sums to 1 only as far as the
    recompute adds its energies in the order the forward did; at energies of a few hundred one float32 ulp is
    ~3e-5, and on an AMD EPYC a row summed to 1 + 4.6e-5. A column needs every row's normaliser, which only the
    recorded L holds (recomputing them all would cost the N x N energies the record exists to avoid): columns
    use the recorded L, and sum to whatever the module's attention to that key adds up to.

    Also read from user modules by `attnviz.capture.families` (DANet PAM, SAGAN, non-local blocks), which may set:
    key_height / key_width: the keys lie on their own grid (a non-local block with sub-sampling max-pools
    phi and g): key is (B, key_height * key_width, C'), row(i) is (key_height, key_width) and column(j)
    takes a key index; None: the keys are the query grid. normalisation: "softmax" (above) or "dot"
    (the non-local dot-product form, S = Q K^T / num_keys, no softmax: log_normaliser then holds
    log(num_keys), the log of what every row is divided by). family / verified / max_error: see
    `attnviz.capture.families` (None / True / None for our own modules).
    """

    kind: str
    query: torch.Tensor
    key: torch.Tensor
    log_normaliser: torch.Tensor
    height: int
    width: int
    alpha: float
    key_height: int | None = field(default=None, kw_only=True)
    key_width: int | None = field(default=None, kw_only=True)
    normalisation: str = field(default="softmax", kw_only=True)  # "softmax" or "dot"

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    @property
    def key_grid(self) -> tuple[int, int]:
        """(height, width) of the key grid: the query grid unless the keys were sub-sampled."""
        return (self.key_height or self.height, self.key_width or self.width)

    shared_by_all_queries = False  # class constant

    @property
    def columns_use_recorded_normalisers(self) -> bool:
        return self.normalisation == "softmax"

    @property
    def baseline(self) -> int:
        """The keys a row spreads over (a uniform row is 1 / this): N, or the pooled grid's size."""
        return self.num_keys

    @property
    def num_keys(self) -> int:
        height, width = self.key_grid
        return height * width

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_pixels:
            raise IndexError(f"pixel index {index} outside 0..{self.num_pixels - 1}")
        return index

    def _check_key(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_keys:
            raise IndexError(f"key index {index} outside 0..{self.num_keys - 1}")
        return index

    def _weights(self, energy: torch.Tensor, log_normaliser: torch.Tensor) -> torch.Tensor:
        """S entries from energies q . k and the matching rows' recorded log-normalisers (broadcast)."""
        if self.normalisation == "dot":
            return energy / self.num_keys
        return torch.exp(energy - log_normaliser)

    def _row_weights(self, energy: torch.Tensor) -> torch.Tensor:
        """Rows of S from their energies (..., num_keys), each normalised by its own log-sum-exp."""
        if self.normalisation == "dot":
            return energy / self.num_keys
        return torch.softmax(energy, dim=-1)

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[index, :] as (H, W) (the key grid): where pixel `index` attends. Sums to 1 (softmax form)."""
        index = self._check_index(index)
        q = self.query[batch, index].float()
        energy = self.key[batch].float() @ q
        return self._row_weights(energy).view(*self.key_grid)

    def rows(self, indices: torch.Tensor, batch: int = 0) -> torch.Tensor:
        """S[indices, :] as (R, H, W) for R flat pixel indices: one matrix product for all of them."""
        indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if indices.numel() and not (0 <= int(indices.min()) and int(indices.max()) < self.num_pixels):
            raise IndexError(f"pixel indices outside 0..{self.num_pixels - 1}")
        energy = self.query[batch, indices].float() @ self.key[batch].float().T
        return self._row_weights(energy).view(-1, *self.key_grid)

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[:, index] as (H, W): how much every pixel attends to pixel (key) `index`, each row's entry
        normalised by the log-sum-exp the forward pass recorded for that row (see the class docstring)."""
        index = self._check_key(index)
        k = self.key[batch, index].float()
        energy = self.query[batch].float() @ k
        return self._weights(energy, self.log_normaliser[batch]).view(self.height, self.width)

    def entry(self, i: int, j: int, batch: int = 0) -> tuple[float, float, float]:
        """S[i, j] with its parts: (energy q_i . k_j, log-normaliser of row i, S[i, j] = exp(energy - lse)),
        in float64; the log-normaliser is row i's own log-sum-exp, as `row` normalises it."""
        i, j = self._check_index(i), self._check_key(j)
        energies = self.key[batch].double() @ self.query[batch, i].double()
        energy = float(energies[j])
        if self.normalisation == "dot":
            return energy, float(self.log_normaliser[batch, i]), energy / self.num_keys
        log_normaliser = float(torch.logsumexp(energies, 0))
        return energy, log_normaliser, math.exp(energy - log_normaliser)

    def matrix(self, batch: int = 0, max_pixels: int = 4096) -> torch.Tensor:
        """The full S (N x N). Refuses when N > max_pixels: S costs N^2 memory."""
        if self.num_pixels > max_pixels:
            raise MemoryError(
                f"S would be {self.num_pixels} x {self.num_keys}; "
                f"use row()/column() or raise max_pixels (now {max_pixels})"
            )
        energy = self.query[batch].float() @ self.key[batch].float().T
        return self._row_weights(energy)


@dataclass
class ChannelMapRecord(ResidualBranch, Provenance):
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


@dataclass
class CrossCovarianceRecord(ChannelMapRecord):
    """One head of a softmax over channels made from two token factors, as XCiT's cross-covariance attention
    (El-Nouby et al., "XCiT: Cross-Covariance Image Transformers", NeurIPS 2021, §3.2; timm's `XCA`), read by
    attnviz.capture.dataflow: X = softmax_j(τ q̂_c · k̂_j), a d x d map over the head's d channels, where q̂_c and
    k̂_j are channel c's query and channel j's key over the N tokens, each scaled to unit length (so q̂_c · k̂_j is a
    cosine), and τ the head's learned temperature. X mixes the head's value channels: out_c = Σ_j X_cj v_j.

    Drawn as DANet's X (the parent): row c = how channel c of this head mixes the head's channels. What differs
    from DANet's: the energy is not A_c · A_j of the module's features but τ q̂_c · k̂_j of learned projections,
    kept in `energy` (the softmax's input as the op computed it, τ included; the paper's q̂ᵀk̂ up to its
    transposes: timm lays q out as (d, N), so rows are query channels and columns key channels), which
    `similarity`, `softmax_argument` and `similar_channels` read instead of the features (`features` stays None:
    the module's input is tokens, not a feature map); there is one form, softmax of the energy itself (`form`
    "paper", no rowmax flip); XCiT's residual weight is the block's per-channel layer scale γ1, outside the
    module, so `beta` is nan. `head` (None with one head) indexes the head, whose channels are head·d to
    head·d + d − 1 of the module's C; `temperature` is τ of this head; `normalised` says whether both factors had
    unit length (else the energy is τ times a plain dot product over the tokens).
    """

    energy: torch.Tensor = field(kw_only=True)  # (B, d, d): the softmax's argument, τ q̂_c · k̂_j
    temperature: float = field(kw_only=True)
    head: int | None = field(default=None, kw_only=True)
    heads: int = field(default=1, kw_only=True)
    normalised: bool = field(default=True, kw_only=True)

    def similarity(self, channel: int, batch: int = 0) -> torch.Tensor:
        """(d,) q̂_c · k̂_j of row `channel` (a cosine when `normalised`): the energy without τ, float64."""
        return self.energy[batch, channel].double() / self.temperature

    def softmax_argument(self, channel: int, form: str | None = None, batch: int = 0) -> torch.Tensor:
        """(d,) the recorded softmax argument τ q̂_c · k̂_j of row `channel`, float64 (only the form it computes)."""
        if form not in (None, self.form):
            raise ValueError(f"a softmax over channels of token factors has one form ({self.form!r}), got {form!r}")
        return self.energy[batch, channel].double()


class _KeysOnTheQueryGrid:
    """For a spatial record whose keys are its own H x W query grid (the cross, GCNet's map)."""

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    @property
    def key_grid(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def num_keys(self) -> int:
        return self.num_pixels


@dataclass
class CrissCrossAttentionRecord(_KeysOnTheQueryGrid, ResidualBranch, Provenance):
    """CCNet criss-cross attention (Huang et al., ICCV 2019), kept implicit like PositionAttentionRecord.

    Pixel i = (h, w) attends only to its cross: the H pixels of its column and the W pixels of its row,
    one softmax over the H + W - 1 distinct positions (the official code masks the self term of the
    column branch with -inf, so the pixel itself is counted once, through the row branch).
    query, key: (B, N, C'); log_normaliser: (B, N), the log-sum-exp of each query's H + W - 1 energies.
    One call of the module is one record: CCNet's recurrence (R = 2) gives "name" and "name#1".
    As for PositionAttentionRecord, a row is normalised by its own cross's log-sum-exp, a column by the
    recorded one of each row.
    """

    kind: str
    query: torch.Tensor
    key: torch.Tensor
    log_normaliser: torch.Tensor
    height: int
    width: int
    alpha: float

    normalisation = "softmax"  # class constants: one softmax over each cross, rows of their own
    shared_by_all_queries = False
    columns_use_recorded_normalisers = True

    @property
    def baseline(self) -> int:
        """A row spreads over its cross: H + W - 1 positions (the pixel itself once)."""
        return self.height + self.width - 1

    def _check_index(self, index: int) -> tuple[int, int, int]:
        index = int(index)
        if not 0 <= index < self.num_pixels:
            raise IndexError(f"pixel index {index} outside 0..{self.num_pixels - 1}")
        return (index, *divmod(index, self.width))

    def _grid(self, tensor: torch.Tensor, batch: int) -> torch.Tensor:
        return tensor[batch].float().view(self.height, self.width, -1)

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[index, :] as (H, W): where pixel `index` attends; zero outside its row and column; sums to 1."""
        index, h, w = self._check_index(index)
        q = self.query[batch, index].float()
        key = self._grid(self.key, batch)
        column_energy, row_energy = key[:, w] @ q, key[h, :] @ q
        off_row = torch.arange(self.height, device=column_energy.device) != h
        cross = torch.softmax(torch.cat([column_energy[off_row], row_energy]), 0)  # the H + W - 1 keys, self once
        weights = torch.zeros(self.height, self.width, device=self.query.device)
        weights[off_row, w] = cross[: self.height - 1]  # column branch (its self term is masked) ...
        weights[h, :] = cross[self.height - 1 :]  # ... the row branch holds the pixel itself
        return weights

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[:, index] as (H, W): how much every pixel attends to pixel `index` (only its cross can)."""
        index, h, w = self._check_index(index)
        k = self.key[batch, index].float()
        query = self._grid(self.query, batch)
        lse = self.log_normaliser[batch].view(self.height, self.width)
        weights = torch.zeros(self.height, self.width, device=self.query.device)
        weights[:, w] = torch.exp(query[:, w] @ k - lse[:, w])
        weights[h, :] = torch.exp(query[h, :] @ k - lse[h, :])
        return weights

    def entry(self, i: int, j: int, batch: int = 0) -> tuple[float, float, float]:
        """(energy q_i . k_j, log-normaliser of row i, S[i, j]); S[i, j] = 0 when j is off i's cross."""
        i, hi, wi = self._check_index(i)
        j, hj, wj = self._check_index(j)
        key, q = self.key[batch].double().view(self.height, self.width, -1), self.query[batch, i].double()
        energy = float(key[hj, wj] @ q)
        off_row = torch.arange(self.height, device=key.device) != hi
        cross = torch.cat([(key[:, wi] @ q)[off_row], key[hi, :] @ q])
        log_normaliser = float(torch.logsumexp(cross, 0))  # row i's own, as `row` normalises it
        on_cross = hi == hj or wi == wj
        return energy, log_normaliser, math.exp(energy - log_normaliser) if on_cross else 0.0

    def matrix(self, batch: int = 0, max_pixels: int = 4096) -> torch.Tensor:
        """The full S (N x N), mostly zeros. Refuses when N > max_pixels."""
        if self.num_pixels > max_pixels:
            raise MemoryError(f"S would be {self.num_pixels} x {self.num_pixels}; use row()/column()")
        return torch.stack([self.row(i, batch).flatten() for i in range(self.num_pixels)])


@dataclass
class GlobalContextRecord(_KeysOnTheQueryGrid, Provenance):
    """GCNet's context block (Cao et al., ICCVW 2019): ONE attention map over all positions.

    map: (B, H, W) = softmax over all H*W positions of conv_mask(x); every query pixel gets the same
    context sum_j map[j] x[:, j], so S has N identical rows: `row(i)` returns the same map for every i
    (`shared_by_all_queries` says so) and `column(j)` is constant. context: (B, C), the pooled context
    the transforms (channel_add_conv / channel_mul_conv) received.
    """

    kind: str
    map: torch.Tensor
    context: torch.Tensor | None = None
    maps: torch.Tensor | None = None  # (B, M, H, W): M pooling maps found by the dataflow reader; `map` their mean

    shared_by_all_queries = True  # class constants: S has identical rows, a softmax over all positions,
    normalisation = "softmax"  # and no residual weight (the transform's output is added as it is)
    alpha = None
    columns_use_recorded_normalisers = False  # the map is kept as it ran

    def branch_size(self, batch: int = 0) -> None:
        """None: no residual weight to explain (the transform's output is added as it is)."""
        return None

    @property
    def height(self) -> int:
        return self.map.shape[1]

    @property
    def width(self) -> int:
        return self.map.shape[2]

    @property
    def baseline(self) -> int:
        return self.num_pixels

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_pixels:
            raise IndexError(f"pixel index {index} outside 0..{self.num_pixels - 1}")
        return index

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """(H, W): where pixel `index` attends, which is the one shared map for every pixel."""
        self._check_index(index)
        return self.map[batch].float()

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """(H, W): how much every pixel attends to pixel `index`: the same value map[index] everywhere."""
        index = self._check_index(index)
        return self.map[batch].float().flatten()[index].expand(self.height, self.width).clone()


@dataclass
class DenseAttentionRecord(_KeysOnTheQueryGrid, Provenance):
    """A spatial attention map kept as it ran, found by the dataflow reader (attnviz.capture.dataflow): S (B, Nq, Nk).

    For a softmax whose input was not a plain product of two recorded factors (a relative-position bias
    added, as in timm's BottleneckAttn), the map itself is the only exact record; the reader keeps it
    when it fits its memory cap (`attnviz.capture.dataflow.DENSE_LIMIT_BYTES`) and says so otherwise. One record
    per head (`head`), and one for the mean over the heads (head=None, `heads` > 1).
    """

    kind: str
    maps: torch.Tensor  # (B, Nq, Nk): rows sum to 1
    height: int
    width: int
    key_height: int | None = field(default=None, kw_only=True)
    key_width: int | None = field(default=None, kw_only=True)
    head: int | None = field(default=None, kw_only=True)  # None: the mean over `heads` heads (or the only one)
    heads: int = field(default=1, kw_only=True)

    normalisation = "softmax"
    shared_by_all_queries = False
    alpha = None
    columns_use_recorded_normalisers = False  # the maps are kept as they ran

    def branch_size(self, batch: int = 0) -> None:
        """None: the dataflow reader does not know what the map's output is added to."""
        return None

    @property
    def key_grid(self) -> tuple[int, int]:
        return (self.key_height or self.height, self.key_width or self.width)

    @property
    def num_keys(self) -> int:
        height, width = self.key_grid
        return height * width

    @property
    def baseline(self) -> int:
        return self.num_keys

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        index = int(index)
        if not 0 <= index < self.num_pixels:
            raise IndexError(f"pixel index {index} outside 0..{self.num_pixels - 1}")
        return self.maps[batch, index].float().view(*self.key_grid)

    def rows(self, indices, batch: int = 0) -> torch.Tensor:
        indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        return self.maps[batch, indices].float().view(-1, *self.key_grid)

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        index = int(index)
        if not 0 <= index < self.num_keys:
            raise IndexError(f"key index {index} outside 0..{self.num_keys - 1}")
        return self.maps[batch, :, index].float().view(self.height, self.width)

    def matrix(self, batch: int = 0, max_pixels: int = 4096) -> torch.Tensor:
        return self.maps[batch].float()


@dataclass
class TokenAttentionRecord(PositionAttentionRecord):
    """One head of a transformer's attention over tokens, read from `F.scaled_dot_product_attention`'s arguments
    (attnviz.capture.dataflow): S = softmax(q Kᵀ · scale + bias) over every key token, kept implicit.

    The tokens are a few prefix tokens (CLS, DeiT's distillation token, registers; Darcet et al., "Vision
    Transformers Need Registers", ICLR 2024), first, then the patch grid (height x width queries, key_height x
    key_width keys). As for DANet's S (the parent class), `query` (scaled: q · scale) and `key` are the patch tokens'
    (B, h·w, d) and `log_normaliser` their rows' log-sum-exp over all key tokens. What differs: the capture does
    not compute the log-sum-exps (as costly as the attention itself, and only a column or the page's payload needs
    them): they are computed from the recorded q, k and bias when first read, then kept
    (`_whole_log_normalisers`); a row is normalised over *all* key tokens, prefix keys and bias included, so
    `row(i)` (the patch keys on their grid) sums to 1 minus the share patch i gives the prefix tokens
    (`prefix_share`), and `baseline` is the number of all key tokens. The prefix tokens' own rows (DINO's CLS map,
    Caron et al., ICCV 2021) are read by `prefix_row`, the share every patch gives each prefix token by
    `prefix_shares`.

    `bias` is the additive mask as the op applied it to this head (a boolean mask as 0 / -inf), broadcastable to
    (B, all query tokens, all key tokens), or None; `causal` is SDPA's is_causal (key j > query i masked, counted
    over all tokens).
    """

    prefix_query: torch.Tensor | None = field(default=None, kw_only=True)  # (B, P_q, d), scaled
    prefix_key: torch.Tensor | None = field(default=None, kw_only=True)  # (B, P_k, d)
    prefix_names: tuple[str, ...] = field(default=(), kw_only=True)  # of the prefix key tokens ("cls", "reg0", ...)
    bias: torch.Tensor | None = field(default=None, kw_only=True)
    causal: bool = field(default=False, kw_only=True)
    scale: float = field(default=1.0, kw_only=True)  # the scale the op used (already in `query`)
    head: int | None = field(default=None, kw_only=True)
    heads: int = field(default=1, kw_only=True)

    @property
    def log_normaliser(self) -> torch.Tensor:
        """(B, h·w): each patch query's log-sum-exp over all key tokens (prefix keys and bias included)."""
        return self._whole_log_normalisers()[:, self.prefix_queries :]

    @log_normaliser.setter
    def log_normaliser(self, given: torch.Tensor | None) -> None:
        """None (computed when first read), every query token's log-sum-exp (B, all query tokens, prefix first),
        or the patch queries' alone (B, h·w), as this property reads them (what `dataclasses.replace` passes):
        the prefix tokens' are then computed when first read."""
        self._log_normalisers = given

    @property
    def prefix_log_normaliser(self) -> torch.Tensor | None:
        """(B, P_q): the prefix query tokens' log-sum-exps, or None without prefix queries."""
        return self._whole_log_normalisers()[:, : self.prefix_queries] if self.prefix_queries else None

    def _whole_log_normalisers(self) -> torch.Tensor:
        """(B, all query tokens, prefix first) log-sum-exps, computed once from q, k and bias, a block of rows at a
        time (O(N d) memory). Sessions sharing the record may both compute it once: the same numbers either way."""
        tokens = self.prefix_queries + self.num_pixels
        given = self._log_normalisers
        if given is None:
            self._log_normalisers = self._log_sum_exps(0, tokens)
        elif given.shape[-1] != tokens:
            if given.shape[-1] != self.num_pixels:
                raise ValueError(f"log_normaliser has {given.shape[-1]} rows, not {tokens} (or {self.num_pixels})")
            self._log_normalisers = torch.cat([self._log_sum_exps(0, self.prefix_queries).to(given), given], -1)
        return self._log_normalisers

    def _log_sum_exps(self, first: int, stop: int) -> torch.Tensor:
        """(B, stop - first): the log-sum-exps of query tokens first..stop-1 (prefix first) over all key tokens."""
        step = max(1, 2**22 // max(1, self.baseline))
        return torch.stack(
            [
                torch.cat(
                    [
                        torch.logsumexp(self._energies(torch.arange(start, min(start + step, stop)), batch), -1)
                        for start in range(first, stop, step)
                    ]
                    or [torch.zeros(0)]
                )
                for batch in range(self.query.shape[0])
            ]
        )

    @property
    def prefix_queries(self) -> int:
        return 0 if self.prefix_query is None else int(self.prefix_query.shape[1])

    @property
    def prefix_keys(self) -> int:
        return 0 if self.prefix_key is None else int(self.prefix_key.shape[1])

    @property
    def baseline(self) -> int:
        """A uniform row gives 1 / (all key tokens) to each: prefix keys count too."""
        return self.prefix_keys + self.num_keys

    @property
    def columns_use_recorded_normalisers(self) -> bool:
        return True

    def _all(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(every query token's scaled q, every key token's k), prefix tokens first, in float32."""
        parts = [(self.prefix_query, self.query), (self.prefix_key, self.key)]
        return tuple(
            torch.cat([prefix[batch].float(), patches[batch].float()]) if prefix is not None else patches[batch].float()
            for prefix, patches in parts
        )

    def _energies(self, tokens: torch.Tensor, batch: int, key_tokens=None, queries=None, keys=None) -> torch.Tensor:
        """q_t · k_j · scale + bias_tj (-inf where masked) for query tokens `tokens` over key tokens `key_tokens`
        (all when None); `queries` / `keys`: `_all(batch)` when already at hand (e.g. in float64)."""
        if queries is None:
            queries, keys = self._all(batch)
        if key_tokens is None:
            key_tokens = torch.arange(keys.shape[0])
        energy = queries[tokens] @ keys[key_tokens].T
        if self.bias is not None:
            bias = self.bias[min(batch, self.bias.shape[0] - 1)].to(energy.dtype)
            bias = bias[tokens] if bias.shape[0] > 1 else bias
            energy = energy + (bias[:, key_tokens] if bias.shape[1] > 1 else bias)
        if self.causal:
            energy = energy.masked_fill(key_tokens[None] > tokens[:, None], -math.inf)
        return energy

    def _patch_rows(self, indices: torch.Tensor, batch: int) -> torch.Tensor:
        energy = self._energies(indices + self.prefix_queries, batch)
        return torch.softmax(energy, dim=-1)[:, self.prefix_keys :]

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """Patch i's row over the patch keys, (key_height, key_width): sums to 1 - its prefix share."""
        index = self._check_index(index)
        return self._patch_rows(torch.tensor([index]), batch)[0].view(*self.key_grid)

    def rows(self, indices: torch.Tensor, batch: int = 0) -> torch.Tensor:
        indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if indices.numel() and not (0 <= int(indices.min()) and int(indices.max()) < self.num_pixels):
            raise IndexError(f"pixel indices outside 0..{self.num_pixels - 1}")
        return self._patch_rows(indices, batch).view(-1, *self.key_grid)

    def token_rows(self, tokens: torch.Tensor, batch: int = 0) -> torch.Tensor:
        """Whole rows (R, all key tokens, prefix first) for query tokens `tokens` (prefix first): sum to 1."""
        return torch.softmax(self._energies(torch.as_tensor(tokens, dtype=torch.long).reshape(-1), batch), dim=-1)

    def prefix_row(self, prefix: int = 0, batch: int = 0) -> torch.Tensor:
        """Prefix query token `prefix`'s row (the CLS map for 0 in a ViT) over the patch keys, (key_height,
        key_width): its share of the patch keys, the rest going to the prefix keys."""
        if not 0 <= prefix < self.prefix_queries:
            raise IndexError(f"prefix token {prefix} outside 0..{self.prefix_queries - 1}")
        return self.token_rows(torch.tensor([prefix]), batch)[0, self.prefix_keys :].view(*self.key_grid)

    def prefix_share(self, index: int, batch: int = 0) -> torch.Tensor:
        """(P_k,): the share of patch i's row that goes to each prefix key token."""
        index = self._check_index(index)
        return self.token_rows(torch.tensor([index + self.prefix_queries]), batch)[0, : self.prefix_keys]

    def prefix_shares(self, batch: int = 0) -> torch.Tensor:
        """(P_k, height, width): the share every patch query gives each prefix key token, from the recorded
        log-normalisers (a column of S per prefix key: O(N d), no N x N)."""
        return torch.stack([self._column(token, batch) for token in range(self.prefix_keys)])

    def _column(self, key_token: int, batch: int) -> torch.Tensor:
        """S[:, key token] over the patch queries, (height, width), normalised by the recorded log-sum-exps."""
        patches = torch.arange(self.num_pixels) + self.prefix_queries
        energy = self._energies(patches, batch, torch.tensor([key_token]))[:, 0]
        return torch.exp(energy - self.log_normaliser[batch].float()).view(self.height, self.width)

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[:, key] over the patch queries, (height, width), each entry normalised by its row's recorded
        log-sum-exp (over all key tokens)."""
        return self._column(self.prefix_keys + self._check_key(index), batch)

    def entry(self, i: int, j: int, batch: int = 0) -> tuple[float, float, float]:
        """(energy q_i · k_j · scale + bias, row i's log-sum-exp over all key tokens, S[i, j]) in float64."""
        i, j = self._check_index(i), self._check_key(j)
        queries, keys = (t.double() for t in self._all(batch))
        energies = self._energies(torch.tensor([i + self.prefix_queries]), batch, None, queries, keys)[0]
        energy = float(energies[self.prefix_keys + j])
        log_normaliser = float(torch.logsumexp(energies, 0))
        return energy, log_normaliser, math.exp(energy - log_normaliser)

    def matrix(self, batch: int = 0, max_pixels: int = 4096) -> torch.Tensor:
        """S over the patch tokens (h·w x key h·w; rows sum to 1 - their prefix shares). Refuses when N > max_pixels."""
        if self.num_pixels > max_pixels:
            raise MemoryError(f"S would be {self.num_pixels} x {self.num_keys}; use row()/column()")
        return self._patch_rows(torch.arange(self.num_pixels), batch)


@dataclass
class WindowAttentionRecord(_KeysOnTheQueryGrid, Provenance):
    """One head of (shifted) window attention, Swin's W-MSA and SW-MSA (Liu et al., "Swin Transformer: Hierarchical
    Vision Transformer using Shifted Windows", ICCV 2021, sec. 3.2), read from `F.scaled_dot_product_attention`'s
    arguments (attnviz.capture.dataflow) and kept implicit, window by window.

    The block rolls its height x width grid of tokens by -shift (the paper's cyclic shift; zero in W-MSA), pads it
    at the bottom and right to whole windows, and cuts it into windows of window[0] x window[1] tokens, row by row
    of windows, each batch item's windows in turn. Each token attends to the tokens of its own window only:
    S_w = softmax(q Kᵀ · scale + bias) with the relative position bias and, in a shifted block, the mask that keeps
    apart the regions the roll brought together (timm adds -100, not -inf: such entries are about e^-100 of the
    row's largest, negligible, not always zero). `query` (scaled: q · scale) and `key` are (B, windows, tokens, d),
    `log_normaliser` (B, windows, tokens) each row's log-sum-exp as the capture computed it from the op's inputs,
    `bias` the op's additive mask for this head, broadcastable to (B, windows, tokens, tokens), or None.

    What differs from DANet's S (PositionAttentionRecord, whose reading this record offers): `row(i)` is placed on
    the block's grid with the roll undone, so its map lands on the pixels the window holds, zero elsewhere; a
    window on the padding has keys that are no pixel, so a row there sums to 1 minus its share on the padding
    (`padding_share`); `column(j)` is nonzero only inside key j's window; `baseline` is the window's token count,
    not H·W. The N x N matrix is never stored: a row costs one window's energies.
    """

    kind: str
    query: torch.Tensor  # (B, windows, tokens, d), scaled
    key: torch.Tensor  # (B, windows, tokens, d)
    log_normaliser: torch.Tensor  # (B, windows, tokens)
    height: int
    width: int
    window: tuple[int, int]
    shift: tuple[int, int] = (0, 0)
    bias: torch.Tensor | None = field(default=None, kw_only=True)  # broadcastable to (B, windows, tokens, tokens)
    scale: float = field(default=1.0, kw_only=True)  # the scale the op used (already in `query`)
    head: int | None = field(default=None, kw_only=True)
    heads: int = field(default=1, kw_only=True)

    normalisation = "softmax"  # class constants: one softmax per window row, no residual weight read here
    shared_by_all_queries = False
    alpha = None
    columns_use_recorded_normalisers = True

    def branch_size(self, batch: int = 0) -> None:
        """None: the dataflow reader does not know what the attention's output is added to."""
        return None

    @property
    def window_tokens(self) -> int:
        return self.window[0] * self.window[1]

    @property
    def baseline(self) -> int:
        """A uniform row gives 1 / (the window's tokens) to each of its keys."""
        return self.window_tokens

    @property
    def padded(self) -> tuple[int, int]:
        """The grid rounded up to whole windows (the rolled grid's padding lies past height and width)."""
        return tuple(-(-size // step) * step for size, step in zip((self.height, self.width), self.window))

    def _pixels(self) -> torch.Tensor:
        """(windows, tokens): the flat grid pixel each window token holds (the roll undone), -1 for padding."""
        (window_h, window_w), (padded_h, padded_w) = self.window, self.padded
        rows, cols = torch.arange(padded_h)[:, None], torch.arange(padded_w)[None, :]
        pixel = ((rows + self.shift[0]) % self.height) * self.width + (cols + self.shift[1]) % self.width
        pixel = pixel.masked_fill((rows >= self.height) | (cols >= self.width), -1)
        across = padded_w // window_w
        pixel = pixel.reshape(padded_h // window_h, window_h, across, window_w).transpose(1, 2)
        return pixel.reshape(-1, window_h * window_w)

    def _slots(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(window, token in the window) of flat grid pixels `indices`: where the rolled, cut grid put them."""
        window_h, window_w = self.window
        row, col = indices // self.width, indices % self.width
        row, col = (row - self.shift[0]) % self.height, (col - self.shift[1]) % self.width
        across = self.padded[1] // window_w
        return (row // window_h) * across + col // window_w, (row % window_h) * window_w + col % window_w

    def _check(self, indices, what: str = "pixel") -> torch.Tensor:
        indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if indices.numel() and not (0 <= int(indices.min()) and int(indices.max()) < self.num_pixels):
            raise IndexError(f"{what} indices outside 0..{self.num_pixels - 1}")
        return indices

    def _bias(self, batch: int, windows: torch.Tensor, queries, keys) -> torch.Tensor | float:
        """The bias of (window, query token, key token) triples, broadcast (0 without one)."""
        if self.bias is None:
            return 0.0
        bias = self.bias[min(batch, self.bias.shape[0] - 1)]
        pick = [windows, queries, keys]
        pick = [index if bias.shape[axis] > 1 else torch.zeros_like(index) for axis, index in enumerate(pick)]
        return bias[pick[0], pick[1], pick[2]]

    def _energies(self, windows: torch.Tensor, tokens: torch.Tensor, batch: int, dtype=torch.float32) -> torch.Tensor:
        """q_t · k_j · scale + bias_tj of query tokens `tokens` of `windows` over their window's keys: (R, tokens)."""
        query = self.query[batch, windows, tokens].to(dtype)  # (R, d)
        key = self.key[batch, windows].to(dtype)  # (R, tokens, d)
        energy = (key @ query[:, :, None])[:, :, 0]
        keys = torch.arange(self.window_tokens)[None]
        return energy + self._bias(batch, windows[:, None], tokens[:, None], keys)

    def _on_grid(self, values: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """(R, tokens) values of window tokens placed on the grid, (R, height, width); padding tokens dropped."""
        pixels = self._pixels()[windows]
        pixels = pixels.masked_fill(pixels < 0, self.num_pixels)  # padding goes to one spare column, then dropped
        grid = torch.zeros(values.shape[0], self.num_pixels + 1, dtype=values.dtype)
        grid.scatter_(1, pixels, values)
        return grid[:, : self.num_pixels].view(-1, self.height, self.width)

    def rows(self, indices, batch: int = 0) -> torch.Tensor:
        """S[indices, :] as (R, H, W): where each pixel attends, its window's keys on the grid, zero elsewhere."""
        indices = self._check(indices)
        windows, tokens = self._slots(indices)
        weights = torch.softmax(self._energies(windows, tokens, batch), dim=-1)
        return self._on_grid(weights, windows)

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[index, :] as (H, W): sums to 1 (minus its share on the padding, `padding_share`)."""
        return self.rows([int(index)], batch)[0]

    def padding_share(self, index: int, batch: int = 0) -> float:
        """The share of pixel `index`'s row on its window's padding keys (0 where the window holds no padding)."""
        indices = self._check([int(index)])
        windows, tokens = self._slots(indices)
        weights = torch.softmax(self._energies(windows, tokens, batch, torch.float64), dim=-1)[0]
        return float(weights[self._pixels()[windows[0]] < 0].sum())

    REACHABLE = 1e-30  # of a row's largest weight: below it a key is masked out (timm's -100: e^-100 ≈ 4e-44)

    def reachable_keys(self, index: int, batch: int = 0) -> int:
        """How many keys of pixel `index`'s window its row can attend to (padding keys included): all the window's
        tokens, or fewer in a shifted block's window at the grid's edge, where the mask keeps apart the regions
        the roll brought together (timm adds -100 there, not -inf: those weights are about e^-100 of the largest,
        counted out below `REACHABLE` of it). A uniform row would give 1 / this to each."""
        windows, tokens = self._slots(self._check([int(index)]))
        weights = torch.softmax(self._energies(windows, tokens, batch, torch.float64), dim=-1)[0]
        return int((weights >= self.REACHABLE * weights.max()).sum())

    def window_pixels(self, index: int) -> torch.Tensor:
        """The flat grid pixels of pixel `index`'s window (the roll undone, padding left out), in window order."""
        windows, _ = self._slots(self._check([int(index)]))
        pixels = self._pixels()[windows[0]]
        return pixels[pixels >= 0]

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[:, index] as (H, W): how much every pixel attends to key pixel `index`; only pixels of its window can
        (each entry normalised by its row's recorded log-sum-exp)."""
        indices = self._check([int(index)], "key")
        windows, tokens = self._slots(indices)
        window, token = windows[0], tokens[0]
        queries = torch.arange(self.window_tokens)
        energy = self.query[batch, window].float() @ self.key[batch, window, token].float()
        energy = energy + self._bias(batch, window, queries, token)
        weights = torch.exp(energy - self.log_normaliser[batch, window].float())
        return self._on_grid(weights[None], windows)[0]

    def entry(self, i: int, j: int, batch: int = 0) -> tuple[float, float, float]:
        """(energy q_i · k_j · scale + bias, row i's log-sum-exp over its window, S[i, j]) in float64; a key j
        outside i's window has no energy in i's row: (-inf, the log-sum-exp, 0.0)."""
        windows, tokens = self._slots(self._check([int(i), int(j)]))
        energies = self._energies(windows[:1], tokens[:1], batch, torch.float64)[0]
        log_normaliser = float(torch.logsumexp(energies, 0))
        if windows[1] != windows[0]:
            return -math.inf, log_normaliser, 0.0
        energy = float(energies[tokens[1]])
        return energy, log_normaliser, math.exp(energy - log_normaliser)

    def matrix(self, batch: int = 0, max_pixels: int = 4096) -> torch.Tensor:
        """The full S (N x N), zero outside the windows. Refuses when N > max_pixels."""
        if self.num_pixels > max_pixels:
            raise MemoryError(f"S would be {self.num_pixels} x {self.num_pixels}; use row()/column()")
        return self.rows(torch.arange(self.num_pixels), batch).flatten(1)


@dataclass
class WindowEnergiesRecord(WindowAttentionRecord):
    """Swin's window attention read from its explicit softmax (timm's default path, and the paper's code:
    attn = q kᵀ · scale + relative position bias (+ the shift mask), then softmax), with each window's energies
    kept as the module computed them: `energy` (B, windows, tokens, tokens) for this head, the bias and mask in
    it; `query`, `key` and `bias` are None. Read as WindowAttentionRecord reads its factors (the same placement
    with the roll undone, the same padding and baseline); what differs is only where a row's energies come from.
    A window's energies are tokens² numbers, as many as its q and k hold once tokens = 2 d (49 against 64 for
    Swin-T's 7x7 windows of d = 32)."""

    energy: torch.Tensor = field(default=None, kw_only=True)  # (B, windows, tokens, tokens)

    def _energies(self, windows: torch.Tensor, tokens: torch.Tensor, batch: int, dtype=torch.float32) -> torch.Tensor:
        return self.energy[batch, windows, tokens].to(dtype)

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """S[:, index] as (H, W): the key's window's energies for it over their rows' log-sum-exps."""
        windows, tokens = self._slots(self._check([int(index)], "key"))
        window, token = windows[0], tokens[0]
        energy = self.energy[batch, window, :, token].float()
        weights = torch.exp(energy - self.log_normaliser[batch, window].float())
        return self._on_grid(weights[None], windows)[0]


@dataclass
class BranchWeightRecord(Provenance):
    """A softmax across K branches, per channel (SKNet's selective kernel, ResNeSt's split attention,
    EPSANet's pyramid split, S2-MLPv2): weights (B, K, C), summing to 1 over K for every channel."""

    kind: str
    weights: torch.Tensor  # (B, K, C)

    @property
    def branches(self) -> int:
        return self.weights.shape[1]

    @property
    def channels(self) -> int:
        return self.weights.shape[2]


@dataclass
class GateRecord(Provenance):
    """A gate that multiplies the features and is not one weight per channel or per pixel: one weight per
    element (SimAM, BAM, GatherExcite with an extent; B, C, H, W) or per cell of another plane
    (TripletAttention's C x W and H x C branches). `axes` names the gate's non-batch axes, e.g. ("C", "H", "W")
    ("?" where sizes alone cannot tell); `gate` is the op's own output with the batch first."""

    kind: str
    gate: torch.Tensor
    axes: tuple[str, ...]


Record = (
    ChannelAttentionRecord
    | SpatialAttentionRecord
    | CoordinateAttentionRecord
    | PositionAttentionRecord
    | ChannelMapRecord
    | CrossCovarianceRecord
    | CrissCrossAttentionRecord
    | GlobalContextRecord
    | DenseAttentionRecord
    | TokenAttentionRecord
    | WindowAttentionRecord
    | BranchWeightRecord
    | GateRecord
)


def of_type(records: Mapping, record_type: type) -> dict:
    """The records (a name -> record mapping) of one type, in call order."""
    return {name: rec for name, rec in records.items() if isinstance(rec, record_type)}
