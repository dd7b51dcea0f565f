"""Named model variants, in the manner of timm's registry.

A name is "<head>-<attention>", e.g. "danet-eca", "fcn-se". `list_models()`
lists them; `build_model(name)` builds one (random weights) with the shipped
configuration; keyword overrides change any ModelConfig field.

The shipped configuration is the one trained on a GPU (see the model cards in
checkpoints/): ResNet-18 layout at width 0.5 (32-64-128-256 channels), output
stride 8, input_scale 1.0 (a 360x480 photo gives a 45x60 feature map).
"""

from __future__ import annotations

from attnviz.models.segmentation import HEADS, ModelConfig, SegmentationModel
from attnviz.modules import ATTENTION_KINDS

__all__ = ["list_models", "build_model", "model_config", "parse_model_name", "SHIPPED_DEFAULTS"]

SHIPPED_DEFAULTS = dict(width=0.5, blocks=(2, 2, 2, 2), output_stride=8, input_scale=1.0)


def list_models() -> list[str]:
    """Every registered name: each head with each attention kind."""
    return [f"{head}-{attention}" for head in HEADS for attention in ATTENTION_KINDS]


def parse_model_name(name: str) -> tuple[str, str]:
    """(head, attention) of a registered name "<head>-<attention>"; ValueError for any other name.

    The one parser of model names. A checkpoint's name is free: what it holds is in its card's config.
    """
    if name not in list_models():
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    head, attention = name.split("-", 1)
    return head, attention


def model_config(name: str, **overrides) -> ModelConfig:
    head, attention = parse_model_name(name)
    return ModelConfig(**{**SHIPPED_DEFAULTS, "head": head, "attention": attention, **overrides})


def build_model(name: str, **overrides) -> SegmentationModel:
    return SegmentationModel(model_config(name, **overrides))
