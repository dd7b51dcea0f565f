"""Capture what attention modules compute during one forward pass.

    with capture(model) as rec:
        logits = model(x)
    rec["backbone.layer3.1.attn"].weights      # (B, C) channel weights
    rec["head.pam"].row(i)                     # (H, W): where pixel i attends
    rec["head.pam"].column(j)                  # (H, W): who attends to pixel j

Design (see DESIGN.md, "Capturing attention"): Streamlit serves each browser
session from its own thread while one cached model is shared by all of them, so
no module keeps "the last map" in an attribute. The recorder of the current
call lives in a `contextvars.ContextVar`; our modules call `record(self, ...)`,
which writes into that recorder when one is active and does nothing otherwise.
Threads start with an empty context, so two threads running the same model
each fill their own recorder.

Third-party modules (timm's EcaModule / SEModule / CBAM parts, torchvision's
SqueezeExcitation) cannot call `record`; `capture` registers one forward hook
per such module, once per model, and the hook routes to the current recorder.

Position attention is never stored as S (N x N). Its record keeps the query
and key projections and the per-row log-sum-exp of the energies, which give
any row S[i, :] or column S[:, j] in O(N * C') on demand.
"""
from __future__ import annotations

import contextvars
import math
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "capture",
    "record",
    "is_recording",
    "wants_features",
    "Recorder",
    "ChannelAttentionRecord",
    "SpatialAttentionRecord",
    "CoordinateAttentionRecord",
    "PositionAttentionRecord",
    "ChannelMapRecord",
]

_current_recorder: contextvars.ContextVar["Recorder | None"] = contextvars.ContextVar(
    "attnviz_recorder", default=None
)


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- recorder


class Recorder(Mapping):
    """The attention records of one forward call, keyed by module name.

    A module called twice in one forward gets keys "name" and "name#1".
    """

    def __init__(self, model: nn.Module | None = None, keep_features: bool = False):
        self._model = model
        self.keep_features = keep_features
        self._names: dict[int, str] | None = None
        self._records: dict[str, Record] = {}

    def _name_of(self, module: nn.Module) -> str:
        if self._names is None:
            self._names = {}
            if self._model is not None:
                for name, sub in self._model.named_modules():
                    self._names.setdefault(id(sub), name or type(sub).__name__)
        return self._names.get(id(module), f"{type(module).__name__}@{id(module):x}")

    def add(self, module: nn.Module, rec: Record) -> None:
        name = self._name_of(module)
        key, n = name, 1
        while key in self._records:
            key, n = f"{name}#{n}", n + 1
        self._records[key] = rec

    def __getitem__(self, key: str) -> Record:
        try:
            return self._records[key]
        except KeyError:
            known = ", ".join(self._records) or "none"
            raise KeyError(f"no attention recorded for {key!r}; recorded: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> dict[str, Record]:
        """A plain dict of the records (holds no reference to the model)."""
        return dict(self._records)

    def of_type(self, record_type: type) -> dict[str, Record]:
        """The records of one type, in call order."""
        return {k: v for k, v in self._records.items() if isinstance(v, record_type)}


def is_recording() -> bool:
    """True inside `capture(...)` on this thread / context."""
    return _current_recorder.get() is not None


def wants_features() -> bool:
    """True when the current recorder keeps each module's input feature map."""
    recorder = _current_recorder.get()
    return recorder is not None and recorder.keep_features


def record(module: nn.Module, rec: Record) -> None:
    """Give `rec` to the current call's recorder, if there is one."""
    recorder = _current_recorder.get()
    if recorder is not None:
        recorder.add(module, rec)


@contextmanager
def capture(model: nn.Module | None = None, keep_features: bool = False) -> Iterator[Recorder]:
    """Record every attention tensor computed by `model` inside the block.

    keep_features: also keep each channel-attention module's input feature
    map (B, C, H, W), for showing the channels it weights.
    """
    if model is not None:
        install_third_party_hooks(model)
    recorder = Recorder(model, keep_features)
    token = _current_recorder.set(recorder)
    try:
        yield recorder
    finally:
        _current_recorder.reset(token)


# --------------------------------------------------------------------------- hooks

_HOOKED_ATTR = "_attnviz_hooks_installed"
_install_lock = threading.Lock()


def _detach(t: torch.Tensor) -> torch.Tensor:
    return t.detach()


def _hook_timm_eca(module, inputs, output):
    x = inputs[0]
    pooled = x.mean((2, 3))
    logits = module.conv(pooled.unsqueeze(1))
    weights = module.gate(logits).squeeze(1)
    record(module, ChannelAttentionRecord("eca", _detach(weights), {"pooled": _detach(pooled)},
                                          kernel=_detach(module.conv.weight.flatten())))


def _hook_timm_se(module, inputs, output):
    x = inputs[0]
    s = x.mean((2, 3), keepdim=True)
    if getattr(module, "add_maxpool", False):
        s = 0.5 * s + 0.5 * x.amax((2, 3), keepdim=True)
    s = module.fc2(module.act(module.bn(module.fc1(s))))
    weights = module.gate(s).flatten(1)
    record(module, ChannelAttentionRecord("se", _detach(weights)))


def _hook_timm_cbam_channel(module, inputs, output):
    x = inputs[0]

    norm = getattr(module, "bn", None) or nn.Identity()

    def mlp(s):
        return module.fc2(module.act(norm(module.fc1(s))))

    avg = mlp(x.mean((2, 3), keepdim=True)).flatten(1)
    mx = mlp(x.amax((2, 3), keepdim=True)).flatten(1)
    weights = module.gate(avg + mx)
    record(module, ChannelAttentionRecord("flexible", _detach(weights),
                                          {"avg_branch": _detach(avg), "max_branch": _detach(mx)}))


def _hook_timm_cbam_spatial(module, inputs, output):
    x = inputs[0]
    pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
    m = module.gate(module.conv(pooled))
    record(module, SpatialAttentionRecord("cbam-spatial", _detach(m[:, 0])))


def _hook_torchvision_se(module, inputs, output):
    x = inputs[0]
    s = module.fc2(module.activation(module.fc1(module.avgpool(x))))
    weights = module.scale_activation(s).flatten(1)
    record(module, ChannelAttentionRecord("se", _detach(weights)))


def _third_party_hooks() -> list[tuple[type, object]]:
    """(module type, hook) for the third-party attention modules we know.

    Only libraries already imported are looked at: a model cannot hold a timm
    module unless timm's module was imported, and importing timm here would
    cost over a second on the first capture.
    """
    known = [
        ("timm.layers.eca", "EcaModule", _hook_timm_eca),
        ("timm.layers.squeeze_excite", "SEModule", _hook_timm_se),
        ("timm.layers.cbam", "ChannelAttn", _hook_timm_cbam_channel),
        ("timm.layers.cbam", "SpatialAttn", _hook_timm_cbam_spatial),
        ("torchvision.ops.misc", "SqueezeExcitation", _hook_torchvision_se),
    ]
    hooks = []
    for module_name, class_name, hook in known:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, class_name):
            hooks.append((getattr(module, class_name), hook))
    return hooks


def install_third_party_hooks(model: nn.Module) -> int:
    """Register capture hooks on known third-party attention modules, once per model.

    The hooks cost nothing outside `capture` (they return at once when no
    recorder is active). Returns the number of hooks registered by this call.
    """
    if getattr(model, _HOOKED_ATTR, False):
        return 0
    with _install_lock:  # two sessions may open the same new model at once
        if getattr(model, _HOOKED_ATTR, False):
            return 0
        known = _third_party_hooks()
        count = 0
        for sub in model.modules():
            for module_type, hook in known:
                # exact type: subclasses (e.g. timm's LightChannelAttn) compute differently
                if type(sub) is module_type:
                    sub.register_forward_hook(_only_when_recording(hook))
                    count += 1
        object.__setattr__(model, _HOOKED_ATTR, True)
    return count


def _only_when_recording(hook):
    def wrapped(module, inputs, output):
        if _current_recorder.get() is not None:
            with torch.no_grad():
                hook(module, inputs, output)

    return wrapped
