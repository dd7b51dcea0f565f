"""Capture for third-party attention modules (timm, torchvision) through hooks on their own layers.

Our own modules call `record(...)` themselves; a timm or torchvision module
cannot. For those, `hooked(model)` registers forward hooks while a capture is
open and removes them when the last capture of that model closes:

- on the module's gate (the sigmoid, hard-sigmoid, ... whose output *is* the
  channel or spatial weight): the weights are read, never recomputed, so
  variants such as timm's `EcaModule(use_mlp=True)` are recorded as they ran;
- on the layers that produce what the pages explain besides the weight: ECA's
  pooled descriptor (the input of its 1D conv) and kernel, the average- and
  max-pool branch outputs of CBAM's shared MLP (its `fc2`, called twice);
- a pre-hook on the module itself, which starts its record (and keeps its
  input when the capture asks for features).

A module's parts are collected in the current recorder's scratch space and
become one record when its gate fires. Hooks look up the recorder of the
calling thread's context, so concurrent captures of one shared model stay
apart; a reference count per model keeps one set of hooks while several
captures are open. Only exact classes are adapted: subclasses such as timm's
`LightChannelAttn` do not call their gate and would record nothing.

The same `hooked` also installs (and removes) the hooks of `attnviz.families`: attention modules
copied into users' own models (DANet PAM / CAM, SAGAN, non-local, CCNet, GCNet, ECA, SE, CBAM,
CoordAtt), recognised by structure and verified by reconstruction; the count it yields includes them.
Which classes are read, and how, is the table of `attnviz.adapted` (which the families' survey reads too).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from attnviz.adapted import ADAPTERS, Adapter, adapted_modules
from attnviz.dataflow import register_frames
from attnviz.families import recognised_modules, register
from attnviz.families.catalogue import is_own
from attnviz.recorder import current_recorder
from attnviz.records import ChannelAttentionRecord, SpatialAttentionRecord

__all__ = ["Adapter", "ADAPTERS", "hooked", "adapted_modules"]


def _parts(module: nn.Module) -> dict | None:
    recorder = current_recorder()
    return None if recorder is None else recorder.scratch.get(id(module))


def _start(module: nn.Module, inputs) -> None:
    recorder = current_recorder()
    if recorder is not None:
        recorder.scratch[id(module)] = {
            "parts": {}, "features": inputs[0].detach() if recorder.keep_features else None}


def _keep_pooled(owner: nn.Module):
    def hook(conv, inputs, output):
        parts = _parts(owner)
        if parts is not None and conv.weight.shape[:2] == (1, 1):
            pooled = inputs[0].detach().flatten(1)
            parts["parts"]["pooled"] = pooled
            parts["kernel"] = conv.weight.detach().flatten()
    return hook


def _keep_branch(owner: nn.Module):
    def hook(layer, inputs, output):
        parts = _parts(owner)
        if parts is not None:
            name = "avg_branch" if "avg_branch" not in parts["parts"] else "max_branch"
            parts["parts"][name] = output.detach().flatten(1)
    return hook


def _finish(owner: nn.Module, adapter: Adapter):
    def hook(gate, inputs, output):
        recorder = current_recorder()
        parts = None if recorder is None else recorder.scratch.pop(id(owner), None)
        if parts is None:
            return
        weights = output.detach()
        if adapter.kind == "cbam-spatial":
            rec = SpatialAttentionRecord(adapter.kind, weights[:, 0])
        else:
            rec = ChannelAttentionRecord(adapter.kind, weights.flatten(1), parts["parts"],
                                         kernel=parts.get("kernel"), features=parts["features"])
        recorder.add(owner, rec)
    return hook


def _register(model: nn.Module) -> tuple[list[torch.utils.hooks.RemovableHandle], int]:
    """(hook handles, number of adapted modules)."""
    handles = []
    modules = adapted_modules(model)
    for module, adapter in modules:
        handles.append(module.register_forward_pre_hook(_start))
        if adapter.pooled and getattr(module, "conv2", None) is None:  # use_mlp=True: conv is not the kernel
            handles.append(module.conv.register_forward_hook(_keep_pooled(module)))
        if adapter.branches:
            handles.append(getattr(module, adapter.branches).register_forward_hook(_keep_branch(module)))
        handles.append(getattr(module, adapter.gate).register_forward_hook(_finish(module, adapter)))
    # user modules recognised by structure (DANet PAM, non-local, GCNet, SE, ...): attnviz.families
    recognised = recognised_modules(model, exclude=[module for module, _ in modules])
    handles += register(recognised)
    # everything else is left to the dataflow reader, which skips what the readers above claim
    claimed = [m for m, _ in modules] + [m for m, _ in recognised] + [m for m in model.modules() if is_own(m)]
    handles += register_frames(model, claimed)
    return handles, len(modules) + len(recognised)


_lock = threading.Lock()
_installed: dict[int, list] = {}  # id(model) -> [open captures, hook handles, adapted modules]


@contextmanager
def hooked(model: nn.Module) -> Iterator[int]:
    """Hooks on `model`'s third-party attention modules while the block runs; yields how many modules.

    Reference-counted per model: the first open capture registers, the last one to close removes.
    """
    with _lock:
        entry = _installed.get(id(model))
        if entry is None:
            entry = _installed[id(model)] = [0, *_register(model)]
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
