"""The readers of a capture: four of one kind, tried in one order, each claiming the modules it reads.

A model's attention modules are read by the first reader that recognises them, and by no other:

1. `own`: attnviz's own modules (attnviz.modules) record themselves; the reader only claims them.
2. `library`: timm's and torchvision's attention classes, by exact type, through hooks on their own gates
   (attnviz.capture.adapters, with the table of attnviz.capture.adapted).
3. `structure`: the modules people copy into their models (DANet, SAGAN, non-local, CCNet, GCNet, ECA, SE,
   CBAM, CoordAtt), recognised by their children and parameters, verified by reconstruction
   (attnviz.capture.families).
4. `dataflow`: everything else, by what it computes: softmaxes and gates seen through a TorchFunctionMode,
   only inside modules that no reader above claimed (attnviz.capture.dataflow).

Each reader gets the modules claimed so far and says which modules it claims and what its hooks go on; which
is worked out once per structure of a model and kept (weakly) for the next capture. `attached(model)` hooks
them in this order while a capture is open and removes every hook when the last open capture of that model
closes (reference-counted: sessions sharing one model share one set of hooks).
This module is the only one that knows all four; none of them imports another.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn
from torch.utils.hooks import RemovableHandle

from attnviz.capture.adapted import adapted_modules
from attnviz.capture.adapters import register as register_library_hooks
from attnviz.capture.dataflow import frame_modules, register_frames
from attnviz.capture.families import recognised_modules, structure_key
from attnviz.capture.families import register as register_family_hooks
from attnviz.capture.families.structure import is_own

__all__ = ["Reader", "READERS", "attached"]


@dataclass(frozen=True)
class Reader:
    """One way of reading attention: `claim(model, claimed)` -> (modules it claims, what its hooks go on), and
    `hook(that)` -> the hooks it added."""

    name: str  # "own", "library", "structure", "dataflow": every record's `reader`, the Overview's "found by"
    claim: Callable[[nn.Module, list[nn.Module]], tuple[list[nn.Module], object]]
    hook: Callable[[object], list[RemovableHandle]]


def _own(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[nn.Module], object]:
    return [m for m in model.modules() if is_own(m)], ()


def _library(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[nn.Module], object]:
    skip = {id(m) for m in claimed}
    modules = [(m, adapter) for m, adapter in adapted_modules(model) if id(m) not in skip]
    return [m for m, _ in modules], modules


def _structure(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[nn.Module], object]:
    found = recognised_modules(model, exclude=claimed)
    return [m for m, _ in found], found


def _dataflow(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[nn.Module], object]:
    return [], frame_modules(model, claimed)


READERS: tuple[Reader, ...] = (
    Reader("own", _own, lambda _: []),
    Reader("library", _library, register_library_hooks),
    Reader("structure", _structure, register_family_hooks),
    Reader("dataflow", _dataflow, register_frames),
)


def _weak(value):
    """`value` with every module in it (in tuples and lists) as a weak reference: a plan must not keep its model
    alive."""
    if isinstance(value, nn.Module):
        return weakref.ref(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_weak(v) for v in value)
    return value


class _Dead(Exception):
    """A module of a kept plan has died (its id taken by another of the same structure)."""


def _strong(value):
    if isinstance(value, weakref.ref):
        module = value()
        if module is None:
            raise _Dead
        return module
    if isinstance(value, (list, tuple)):
        return type(value)(_strong(v) for v in value)
    return value


# model -> (structure key, [(reader, number of modules it claims, what its hooks go on, modules weakly)])
_plans: weakref.WeakKeyDictionary[nn.Module, tuple] = weakref.WeakKeyDictionary()


def _plan(model: nn.Module) -> list[tuple[Reader, int, object]]:
    """Each reader in order with the number of modules it claims and what its hooks go on: worked out once per
    structure of the model (`structure_key`: a module, parameter or plain attribute changed gives a new plan),
    since every capture attaches the readers anew and working it out walked the model four times (1.3 ms of a
    ViT-S capture)."""
    key = structure_key(model)
    kept = _plans.get(model)
    if kept is not None and kept[0] == key:
        try:
            return [(reader, count, _strong(targets)) for reader, count, targets in kept[1]]
        except _Dead:
            pass
    plan, claimed = [], []
    for reader in READERS:
        claims, targets = reader.claim(model, claimed)
        claimed += claims
        plan.append((reader, len(claims), targets))
    _plans[model] = (key, [(reader, count, _weak(targets)) for reader, count, targets in plan])
    return plan


def _attach_all(model: nn.Module) -> tuple[list[RemovableHandle], dict[str, int]]:
    """Every reader's hooks, in order; (handles, number of modules each reader claimed)."""
    handles, counts = [], {}
    try:
        for reader, count, targets in _plan(model):
            handles += reader.hook(targets)
            counts[reader.name] = count
    except BaseException:
        for handle in handles:  # a reader that fails leaves no hook of the readers before it behind
            handle.remove()
        raise
    return handles, counts


_lock = threading.Lock()
_installed: dict[int, list] = {}  # id(model) -> [open captures, hook handles, modules claimed per reader]


@contextmanager
def attached(model: nn.Module) -> Iterator[dict[str, int]]:
    """The readers' hooks on `model` while the block runs; yields how many modules each reader claimed.

    Reference-counted per model: the first open capture registers, the last one to close removes.
    """
    with _lock:
        entry = _installed.get(id(model))
        if entry is None:
            entry = _installed[id(model)] = [0, *_attach_all(model)]
        entry[0] += 1
    try:
        yield entry[2]
    finally:
        with _lock:
            entry[0] -= 1
            if entry[0] == 0:
                for handle in entry[1]:
                    handle.remove()
                del _installed[id(model)]
