"""Switch an attention module off, or flatten it, for one forward pass: what does it do to the answer?

Two interventions, after the issue's definitions (attnviz issue 30; none of the papers defines them):

- ``off``: the module's effect is removed. A gate's weights become 1, so the features pass unscaled (ECA, SE,
  the flexible / CBAM channel gate, CBAM's spatial gate, coordinate attention); a residual attention branch
  gets weight 0 (DANet's alpha for PAM and beta for CAM). Both give the module's input back: y = x.
- ``flat``: the module keeps its average effect but loses its selectivity. A gate becomes its own mean over the
  axis it selects on (channels for a channel gate, positions for a spatial gate, rows and columns for
  coordinate attention's two factors); DANet's S becomes uniform over the keys, so every query gathers the
  mean value, y = alpha * mean_j(D_j) + A; X becomes uniform, y = beta * mean_c(A_c) + A.

An intervention is a forward hook on the module that replaces its output, registered while a capture is open
(`intervened`), so the module runs as written and records what it computed on the intervened pass's own
input: the records of the pass are those of the model as intervened. The user's code is never edited. The
flat output is built from the record the module made in the same call (a gate's weights) or, for DANet's
two modules, from the module's own value projection. With no intervention nothing is hooked and the output is
unchanged to the last bit.

What differs from "replace the module": `off` on a module whose output is not its input's shape is refused
(`InterventionError`), as is `flat` on a record type it is not defined for; the error names the module.

Gates the dataflow reader finds (attnviz.capture.dataflow) are switched on the op itself, not through their
module (which need not compute y = x * gate): an intervention names such a gate by its record's key, as
`switchable` lists it ("1.cw" for a module whose only record it is, "block.attn:channel" for one of several,
"...#1" for a later call), and the reader replaces the gate's values where they multiply the features, by ones
(off) or by their mean over the axes the gate selects on (flat; the axes of each kind of gate are in the
dataflow module's docstring). It needs an open capture (the reader runs only there). A name that is a module
read by the dataflow reader but names none of its gates, or a gate key no pass met, is refused when the block
ends, as is a key that named a different record in this pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from attnviz.capture.dataflow import GateSwitch, is_gate_record, switching
from attnviz.capture.recorder import Recorder, current_recorder, split_name
from attnviz.capture.records import (
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
)

__all__ = ["OFF", "FLAT", "MODES", "Intervention", "InterventionError", "intervened", "switchable"]

OFF, FLAT = "off", "flat"
MODES = (OFF, FLAT)


class InterventionError(ValueError):
    """An intervention that is not defined for a module (or a module the model does not have)."""


@dataclass(frozen=True)
class Intervention:
    """Switch `modules` (paths in the model, as records name them: "backbone.layer3.1.attn", "head.pam"; for a
    gate the dataflow reader found, its record's key: "1:channel") `mode` ("off" or "flat") for one forward
    pass. Hashable: a cache key with the model and the photo."""

    mode: str
    modules: tuple[str, ...]

    def __post_init__(self):
        if self.mode not in MODES:
            raise InterventionError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.modules:
            raise InterventionError("an intervention needs at least one module")


def switchable(records: Iterable[tuple[str, object]]) -> list[str]:
    """What an intervention can switch among `records` (name, record), in call order, each once: the paths of
    modules read with known maths (own, library, structure readers) that make one record a call of a type
    `flat` knows, and the record keys of the gates the dataflow reader found ("1.cw", "1:channel", with their
    "#n" for a later call). The dataflow reader's records are not switched through their module, which need
    not compute y = x * gate: their gates are switched on the op itself."""
    names = []
    for name, record in records:
        path, part, _ = split_name(name)
        if is_gate_record(record):
            names.append(name)
        elif part == "" and getattr(record, "reader", "own") != "dataflow" and isinstance(record, _FLAT_TYPES):
            if path not in names:
                names.append(path)
    return names


def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def _replace_first(output, value: torch.Tensor):
    if isinstance(output, tuple):
        return (value, *output[1:])
    if isinstance(output, list):
        return [value, *output[1:]]
    return value


def _read_by_dataflow(recorder: Recorder, module: nn.Module) -> bool:
    """Whether `module`'s records are the dataflow reader's (its gates are switched on the op, not here)."""
    name = recorder.name_of(module)
    return any(split_name(key)[0] == name and getattr(recorder[key], "reader", "own") == "dataflow" for key in recorder)


def _last_record(recorder: Recorder, module: nn.Module):
    """The record `module` made in this call (its latest one), None if it made none."""
    name = recorder.name_of(module)
    for key in reversed(list(recorder)):
        path, part, _ = split_name(key)
        if path == name:
            return recorder[key] if part == "" else None
    return None


def _flat_gate(record, x: torch.Tensor) -> torch.Tensor:
    """x times each gate's mean over the axis it selects on (a channel gate: channels; a spatial gate: positions;
    coordinate attention: its row factor over rows and its column factor over columns)."""
    if isinstance(record, ChannelAttentionRecord):
        return x * record.weights.mean(1).to(x.dtype)[:, None, None, None]
    if isinstance(record, SpatialAttentionRecord):
        return x * record.map.mean((1, 2)).to(x.dtype)[:, None, None, None]
    a_h = record.height_weights.mean(2).to(x.dtype)[:, :, None, None]
    a_w = record.width_weights.mean(2).to(x.dtype)[:, :, None, None]
    return x * a_h * a_w


def _flat_position(module: nn.Module, record: PositionAttentionRecord, x: torch.Tensor) -> torch.Tensor:
    """DANet PAM with a uniform S: every query gathers the mean of the value features, y = alpha mean_j D_j + A."""
    value = getattr(module, "value_conv", None)
    weight = getattr(module, "alpha", getattr(module, "gamma", None))
    if not isinstance(value, nn.Module) or not isinstance(weight, torch.Tensor):
        raise InterventionError("flat needs the module's value_conv and its residual weight (alpha or gamma)")
    return weight * value(x).mean((2, 3), keepdim=True) + x


def _flat_channel_map(module: nn.Module, record: ChannelMapRecord, x: torch.Tensor) -> torch.Tensor:
    """DANet CAM with a uniform X: every channel gathers the mean channel, y = beta mean_c A_c + A."""
    weight = getattr(module, "beta", getattr(module, "gamma", None))
    if not isinstance(weight, torch.Tensor):
        raise InterventionError("flat needs the module's residual weight (beta or gamma)")
    return weight * x.mean(1, keepdim=True) + x


_FLAT = {
    ChannelAttentionRecord: lambda module, record, x: _flat_gate(record, x),
    SpatialAttentionRecord: lambda module, record, x: _flat_gate(record, x),
    CoordinateAttentionRecord: lambda module, record, x: _flat_gate(record, x),
    PositionAttentionRecord: _flat_position,
    ChannelMapRecord: _flat_channel_map,
}
_FLAT_TYPES = tuple(_FLAT)


def _hook(mode: str, path: str, deferred: set[str]):
    def hook(module: nn.Module, args, output):
        recorder = current_recorder()
        if recorder is not None and _read_by_dataflow(recorder, module):
            deferred.add(path)  # the dataflow reader switches its gate by this key, or the block refuses it
            return None
        x = args[0] if args else None
        out = _first(output)
        if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or x.shape != out.shape:
            raise InterventionError(f"{path}: its output is not its input's shape, so it cannot be switched")
        if mode == OFF:
            return _replace_first(output, x)
        record = None if recorder is None else _last_record(recorder, module)
        flat = _FLAT.get(type(record))
        if flat is None:
            kind = "no record" if record is None else type(record).__name__
            raise InterventionError(f"{path}: flat is not defined for it ({kind})")
        return _replace_first(output, flat(module, record, x))

    return hook


@contextmanager
def intervened(model: nn.Module, intervention: Intervention | None) -> Iterator[None]:
    """Apply `intervention` to `model`'s forward passes inside the block (nothing when None). Open it inside
    `capture(model)`, so that `flat` finds the records the modules make, the hooks run after the readers' and
    the dataflow reader switches the gates it finds."""
    if intervention is None:
        yield
        return
    modules = dict(model.named_modules())
    paths = [name for name in intervention.modules if name in modules]
    gates = [name for name in intervention.modules if name not in modules]
    missing = [name for name in gates if split_name(name)[0] not in modules]
    if missing:
        raise InterventionError(f"no module {', '.join(map(repr, missing))} in this model")
    if intervention.mode == FLAT and current_recorder() is None:
        raise InterventionError("flat reads what the module records: open capture(model) first")
    switch = GateSwitch(intervention.mode == FLAT, frozenset(intervention.modules))
    deferred = set(gates)  # the names only the dataflow reader can switch
    handles = [modules[path].register_forward_hook(_hook(intervention.mode, path, deferred)) for path in paths]
    try:
        with switching(switch) as watching:
            if gates and not watching:
                raise InterventionError(f"{gates[0]!r} is a gate the dataflow reader finds: open capture(model) first")
            yield
    finally:
        for handle in handles:
            handle.remove()
    unswitched = sorted(deferred - switch.switched)
    if unswitched or switch.refused:
        problems = [f"{name}: no gate the dataflow reader found has this key" for name in unswitched]
        raise InterventionError("; ".join(problems + switch.refused))
