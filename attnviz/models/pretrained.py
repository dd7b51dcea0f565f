"""ImageNet-pretrained backbone weights from torchvision or timm, for users with a network.

The backbone uses torchvision's parameter names, so a ResNet-18/34 state dict
(torchvision's or timm's `resnet18`/`resnet34`, which share the names) loads by
name at width 1.0; the classifier (`fc.*`) is dropped and the attention
modules, which ImageNet ResNets lack, keep their initialisation. Any other
missing key, or any shape mismatch (a width multiplier other than 1.0, say),
is an error that names the keys.

Fetching needs a network (the weights come from download.pytorch.org or the
Hugging Face hub); `load_backbone_state_dict` does the matching and is what the
tests exercise, with a state dict they build.
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.models.checkpoint import CheckpointError, key_mismatch_report

__all__ = ["fetch_state_dict", "load_backbone_state_dict", "load_pretrained_backbone", "ARCH_FOR_BLOCKS"]

ARCH_FOR_BLOCKS = {(2, 2, 2, 2): "resnet18", (3, 4, 6, 3): "resnet34"}


def fetch_state_dict(source: str, arch: str) -> dict[str, torch.Tensor]:
    """Download ImageNet weights: source "torchvision" or "timm" (needs a network)."""
    if source == "torchvision":
        from torchvision.models import get_model, get_model_weights

        return get_model(arch, weights=get_model_weights(arch).DEFAULT).state_dict()
    if source == "timm":
        import timm

        return timm.create_model(arch, pretrained=True).state_dict()
    raise ValueError(f"source must be 'torchvision' or 'timm', got {source!r}")


def load_backbone_state_dict(backbone: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict") -> dict:
    """Copy matching weights into `backbone`; returns {"loaded", "kept_initialised", "ignored"} key lists."""
    own = backbone.state_dict()
    ignored = sorted(k for k in state if k.startswith("fc.") or k not in own)
    unexpected = [k for k in ignored if not k.startswith("fc.")]
    missing = sorted(k for k in own if k not in state)
    kept = [k for k in missing if ".attn." in k]
    problems = [k for k in missing if ".attn." not in k]
    mismatched = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if problems or mismatched or unexpected:
        raise CheckpointError(
            key_mismatch_report(
                f"{source} does not fit this backbone:",
                missing=problems,
                shape_mismatch=mismatched,
                unexpected=unexpected,
            )
        )
    loaded = [k for k in own if k in state]
    backbone.load_state_dict({**own, **{k: state[k].to(own[k].dtype) for k in loaded}})
    return {"loaded": loaded, "kept_initialised": kept, "ignored": ignored}


def load_pretrained_backbone(model: nn.Module, source: str = "torchvision", arch: str | None = None) -> dict:
    """Fetch and load ImageNet weights into `model.backbone`."""
    config = model.config
    arch = arch or ARCH_FOR_BLOCKS.get(tuple(config.blocks))
    if arch is None or config.width != 1.0:
        raise CheckpointError(
            f"no ImageNet weights for blocks={config.blocks}, width={config.width}: "
            "pretrained backbones need width 1.0 and ResNet-18/34 blocks"
        )
    return load_backbone_state_dict(model.backbone, fetch_state_dict(source, arch), f"{source} {arch}")
