"""Capture for third-party attention modules (timm, torchvision) through hooks on their own layers.

Our own modules call `record(...)` themselves; a timm or torchvision module
cannot. For those, `register(modules)` adds forward hooks, which the capture removes
when it closes (`attnviz.capture.readers`: this is the library reader):

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
apart. Only exact classes are adapted: subclasses such as timm's
`LightChannelAttn` do not call their gate and would record nothing.

Which classes are read, and how, is the table of `attnviz.capture.adapted` (which the families' survey reads
too, to leave these modules to this reader).
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.adapted import ADAPTERS, Adapter, adapted_modules
from attnviz.capture.recorder import current_recorder
from attnviz.capture.records import ChannelAttentionRecord, SpatialAttentionRecord

__all__ = ["Adapter", "ADAPTERS", "register", "adapted_modules"]


def _parts(module: nn.Module) -> dict | None:
    recorder = current_recorder()
    return None if recorder is None else recorder.scratch.get(id(module))


def _start(module: nn.Module, inputs) -> None:
    recorder = current_recorder()
    if recorder is not None:
        recorder.scratch[id(module)] = {"parts": {}, "features": inputs[0].detach() if recorder.keep_features else None}


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
            rec = SpatialAttentionRecord(adapter.kind, weights[:, 0], reader="library")
        else:
            rec = ChannelAttentionRecord(
                adapter.kind,
                weights.flatten(1),
                parts["parts"],
                kernel=parts.get("kernel"),
                features=parts["features"],
                reader="library",
            )
        recorder.add(owner, rec)

    return hook


def register(modules: list[tuple[nn.Module, Adapter]]) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks on each (module, adapter) pair's gate and parts; returns the handles (removed when the capture closes)."""
    handles = []
    for module, adapter in modules:
        handles.append(module.register_forward_pre_hook(_start))
        if adapter.pooled and getattr(module, "conv2", None) is None:  # use_mlp=True: conv is not the kernel
            handles.append(module.conv.register_forward_hook(_keep_pooled(module)))
        if adapter.branches:
            handles.append(getattr(module, adapter.branches).register_forward_hook(_keep_branch(module)))
        handles.append(getattr(module, adapter.gate).register_forward_hook(_finish(module, adapter)))
    return handles
