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

Each reader gets the modules claimed so far and returns the hooks it added and the modules it claims.
`attached(model)` runs them in this order while a capture is open and removes every hook when the last
open capture of that model closes (reference-counted: sessions sharing one model share one set of hooks).
This module is the only one that knows all four; none of them imports another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn
from torch.utils.hooks import RemovableHandle

from attnviz.capture.adapted import adapted_modules
from attnviz.capture.adapters import register as register_library_hooks
from attnviz.capture.dataflow import register_frames
from attnviz.capture.families import recognised_modules
from attnviz.capture.families import register as register_family_hooks
from attnviz.capture.families.structure import is_own

__all__ = ["Reader", "READERS", "attached"]

Attach = Callable[[nn.Module, list[nn.Module]], tuple[list[RemovableHandle], list[nn.Module]]]


@dataclass(frozen=True)
class Reader:
    """One way of reading attention: `attach(model, claimed)` -> (hooks added, modules it claims)."""

    name: str  # "own", "library", "structure", "dataflow": every record's `reader`, the Overview's "found by"
    attach: Attach


def _own(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[RemovableHandle], list[nn.Module]]:
    return [], [m for m in model.modules() if is_own(m)]


def _library(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[RemovableHandle], list[nn.Module]]:
    skip = {id(m) for m in claimed}
    modules = [(m, adapter) for m, adapter in adapted_modules(model) if id(m) not in skip]
    return register_library_hooks(modules), [m for m, _ in modules]


def _structure(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[RemovableHandle], list[nn.Module]]:
    found = recognised_modules(model, exclude=claimed)
    return register_family_hooks(found), [m for m, _ in found]


def _dataflow(model: nn.Module, claimed: list[nn.Module]) -> tuple[list[RemovableHandle], list[nn.Module]]:
    return register_frames(model, claimed), []


READERS: tuple[Reader, ...] = (
    Reader("own", _own),
    Reader("library", _library),
    Reader("structure", _structure),
    Reader("dataflow", _dataflow),
)


def _attach_all(model: nn.Module) -> tuple[list[RemovableHandle], dict[str, int]]:
    """Every reader's hooks, in order; (handles, number of modules each reader claimed)."""
    handles, claimed, counts = [], [], {}
    try:
        for reader in READERS:
            added, claims = reader.attach(model, claimed)
            handles += added
            claimed += claims
            counts[reader.name] = len(claims)
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
