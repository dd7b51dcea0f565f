"""Hooks that read recognised user modules while a capture is open (installed by attnviz.capture.readers.attached).

Per recognised module: a forward pre-hook on the module (its input x), forward hooks on the
sub-modules its family taps (their outputs, some inputs), and a forward hook on the module (its
output; a tuple such as SAGAN's (out, attention) gives its first element). The parts of one call
live in the current recorder's scratch space (a ContextVar: concurrent captures of one shared model
stay apart) and are dropped when the module returns: then the record is built, verified by
reconstruction, and

- verified: added to the recorder like any other record (`rec[name]`, `rec.of_type(...)`), with
  `family`, `verified=True` and `max_error` set;
- not verified: kept out of the recorder's mapping, so that no page draws it, and put in
  `rec.unverified[name]` (an `Unverified`: family, reason, max_error, and the record with
  verified=False when one could be built). `unverified(rec)` reads it (empty when none).

Hooks never change what the module computes or returns, and a failure while reading is recorded as
not verified, never raised into the user's forward pass.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from attnviz.capture.families.family import Family, Tap, Variant
from attnviz.capture.families.verify import Call, Missing, Outcome, tolerance
from attnviz.capture.recorder import Recorder, current_recorder
from attnviz.i18n import Phrase

__all__ = ["Unverified", "register", "unverified", "family_records", "verification_table"]


@dataclass(frozen=True)
class Unverified:
    """A recognised module whose output the recorded parts did not reproduce."""

    family: str  # the closest variant's family
    form: str  # and its form ("official", "dot", ...; "" when the family has one)
    reason: Phrase  # why, in no language until shown (families.not_verified.*): "not verified (max error 3.1e-01)"
    max_error: float  # inf when nothing could be rebuilt
    record: object | None = None  # the closest variant's record, verified=False (never to be drawn)


_preferred: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()  # last variant that verified


def _slot(recorder: Recorder | None, owner: nn.Module) -> dict | None:
    return None if recorder is None else recorder.scratch.get(id(owner))


def _first_tensor(args, kwargs) -> torch.Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    return None


def _start(module: nn.Module, args, kwargs) -> None:
    recorder = current_recorder()
    if recorder is None:
        return
    x = _first_tensor(args, kwargs)
    if x is None:
        return
    x = x.detach()
    recorder.scratch[id(module)] = {"x": x, "outputs": {}, "inputs": {}, "versions": [(x, x._version)]}


def _same_tensor(a, b: torch.Tensor) -> bool:
    """The same tensor (a view of the same memory with the same shape and strides): the module's own input."""
    return (
        isinstance(a, torch.Tensor) and a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
    )


def _tap(owner: nn.Module, tap: Tap):
    def hook(layer, inputs, output):
        slot = _slot(current_recorder(), owner)
        if slot is None or (tap.only_if is not None and not tap.only_if(owner)):
            return
        if tap.on_owner_input and not (inputs and _same_tensor(inputs[0], slot["x"])):
            return  # a shared layer called on something else (AlexHex7's one pool inside g and as phi)
        for keep, group, value in (
            (tap.keep_output, "outputs", output),
            (tap.keep_input, "inputs", inputs[0] if inputs else None),
        ):
            if keep and isinstance(value, torch.Tensor):
                value = value.detach().clone() if tap.copy else value.detach()
                slot[group].setdefault(tap.part, []).append(value)
                if not tap.copy:
                    slot["versions"].append((value, value._version))

    return hook


def _lowest_precision(x: torch.Tensor, out: torch.Tensor, slot: dict, autocast: torch.dtype | None) -> torch.dtype:
    """The least precise dtype the module computed in: its tensors', or autocast's while it was on."""
    dtypes = [x.dtype, out.dtype] + [
        t.dtype for group in ("outputs", "inputs") for parts in slot[group].values() for t in parts
    ]
    if autocast is not None:
        dtypes.append(autocast)
    floating = [d for d in dtypes if d.is_floating_point]
    return max(floating, key=lambda d: torch.finfo(d).eps) if floating else torch.float32


def _evaluate(
    module: nn.Module,
    family: Family,
    slot: dict,
    out: torch.Tensor,
    keep_features: bool,
    autocast: torch.dtype | None = None,
):
    """(record or None, verified, max_error, reason, the variant kept)."""
    x = slot["x"]
    if any(tensor._version != version for tensor, version in slot["versions"]):
        return (
            None,
            False,
            math.inf,
            Phrase.of("families.not_verified.in_place"),
            family.variants[0],
        )
    call = Call(module, x, out.detach(), slot["outputs"], slot["inputs"], keep_features)
    limit = tolerance(_lowest_precision(x, out, slot, autocast))
    if x.is_cuda and x.dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        limit = max(limit, 8 * 2.0**-10)  # TF32 matrix products (the module's and the check's): 10-bit mantissa
    best: tuple[Outcome, int] | None = None
    order = family.ordered_variants(module)
    preferred = _preferred.get(module)
    if preferred is not None:
        order = [preferred] + [i for i in order if i != preferred]
    for index in order:
        variant = family.variants[index]
        try:
            outcome = variant.build(call, variant.form)
            if outcome.record is not None and not isinstance(outcome.record, variant.record):
                raise TypeError(
                    f"{variant.label} built a {type(outcome.record).__name__}, declared {variant.record.__name__}"
                )
        except (Missing, RuntimeError, ValueError, IndexError, TypeError) as error:
            outcome = Outcome(
                None, math.inf, f"{type(error).__name__}: {error}" if not isinstance(error, Missing) else str(error)
            )
        if outcome.record is not None and outcome.error <= limit and not outcome.note:
            _preferred[module] = index
            return outcome.record, True, outcome.error, None, variant
        if best is None or (outcome.record is not None, -outcome.error) > (best[0].record is not None, -best[0].error):
            best = (outcome, index)
    outcome, index = best
    if outcome.note:
        reason = Phrase.of("families.not_verified.note", note=outcome.note)
    else:
        reason = Phrase.of("families.not_verified.error", error=f"{outcome.error:.1e}", limit=f"{limit:.0e}")
    return outcome.record, False, outcome.error, reason, family.variants[index]


def _key(recorder: Recorder, module: nn.Module, taken) -> str:
    name = recorder.name_of(module)
    key, n = name, 1
    while key in taken:
        key, n = f"{name}#{n}", n + 1
    return key


def _store(
    recorder: Recorder, module: nn.Module, record, verified: bool, error: float, reason: Phrase | None, variant: Variant
) -> None:
    if record is not None:
        record.family, record.verified, record.max_error = variant.family, verified, error
        record.reader = "structure"
        record.verified_form = variant.form  # the form that verified (embedded / gaussian / dot, official, ...)
    if verified:
        recorder.add(module, record)
        return
    bucket = recorder.__dict__.setdefault("unverified", {})
    bucket[_key(recorder, module, bucket)] = Unverified(variant.family, variant.form, reason, error, record)


def _finish(family: Family):
    def hook(module, args, kwargs, output):
        recorder = current_recorder()
        slot = None if recorder is None else recorder.scratch.pop(id(module), None)
        if slot is None:
            return None
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        if not isinstance(out, torch.Tensor):
            _store(
                recorder,
                module,
                None,
                False,
                math.inf,
                Phrase.of("families.not_verified.not_a_tensor"),
                family.variants[0],
            )
            return None
        device = out.device.type
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        try:
            # the checks run in float32 (float64 for float64 modules) even under autocast
            with torch.no_grad(), torch.autocast(device, enabled=False):
                found = _evaluate(module, family, slot, out, recorder.keep_features, autocast)
        except Exception as error:  # noqa: BLE001 - reading must never break the user's forward pass
            found = (
                None,
                False,
                math.inf,
                Phrase.of("families.not_verified.note", note=f"{type(error).__name__}: {error}"),
                family.variants[0],
            )
        _store(recorder, module, *found)
        return None

    return hook


def register(found: list[tuple[nn.Module, Family]]) -> list[torch.utils.hooks.RemovableHandle]:
    """Hook each (module, family) pair; returns the handles (removed by attnviz.capture.readers.attached)."""
    handles = []
    for module, family in found:
        handles.append(module.register_forward_pre_hook(_start, with_kwargs=True))
        for tap in family.taps(module):
            handles.append(tap.module.register_forward_hook(_tap(module, tap)))
        handles.append(module.register_forward_hook(_finish(family), with_kwargs=True))
    return handles


# ----------------------------------------------------------------------------- reading a recorder


def unverified(recorder: Recorder) -> dict[str, Unverified]:
    """The recognised modules of this capture whose output was not reproduced, by module name."""
    return dict(getattr(recorder, "unverified", {}))


def family_records(recorder: Recorder) -> dict[str, object]:
    """The verified records of recognised user modules (a subset of the recorder's mapping)."""
    return {name: rec for name, rec in recorder.items() if getattr(rec, "family", None) is not None}


def verification_table(recorder: Recorder) -> list[dict]:
    """One row per recognised module of this capture, verified or not, in call order within each group:
    {"name", "family", "form", "verified", "max_error", "reason", "record"} (record: a drawable record for the
    verified ones; for the others the closest variant's record (verified=False) or None)."""
    rows = []
    for name, rec in family_records(recorder).items():
        rows.append(
            {
                "name": name,
                "family": rec.family,
                "form": getattr(rec, "verified_form", ""),
                "verified": True,
                "max_error": rec.max_error,
                "reason": None,
                "record": rec,
            }
        )
    for name, item in unverified(recorder).items():
        rows.append(
            {
                "name": name,
                "family": item.family,
                "form": item.form,
                "verified": False,
                "max_error": item.max_error,
                "reason": item.reason,
                "record": item.record,
            }
        )
    return rows
