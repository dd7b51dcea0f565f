"""Attention modules, one per file; each docstring cites its paper and says what differs from it.

`make_attention(kind, channels)` builds the module for a block's attention slot.
"""
from __future__ import annotations

from torch import nn

from attnviz.modules.cbam import CBAM, SpatialGate
from attnviz.modules.coord import CoordinateAttention
from attnviz.modules.danet import ChannelAttention, DANetHead, PositionAttention
from attnviz.modules.eca import ECA, eca_kernel_size
from attnviz.modules.flexible import FlexibleChannelAttention
from attnviz.modules.se import SqueezeExcitation

__all__ = [
    "ATTENTION_KINDS",
    "ATTENTION_TITLES",
    "make_attention",
    "CBAM",
    "SpatialGate",
    "CoordinateAttention",
    "ChannelAttention",
    "DANetHead",
    "PositionAttention",
    "ECA",
    "eca_kernel_size",
    "FlexibleChannelAttention",
    "SqueezeExcitation",
]

_BUILDERS = {
    "none": lambda channels: nn.Identity(),
    "se": SqueezeExcitation,
    "eca": lambda channels: ECA(channels),
    "flexible": FlexibleChannelAttention,
    "cbam": CBAM,
    "ca": CoordinateAttention,
}

ATTENTION_KINDS = tuple(_BUILDERS)

ATTENTION_TITLES = {
    "none": "no attention",
    "se": "SE (Squeeze-and-Excitation)",
    "eca": "ECA (Efficient Channel Attention)",
    "flexible": "Flexible (CBAM channel) attention",
    "cbam": "CBAM (channel + spatial)",
    "ca": "Coordinate Attention",
}


def make_attention(kind: str, channels: int) -> nn.Module:
    """The attention module `kind` (one of ATTENTION_KINDS) for `channels` channels."""
    try:
        return _BUILDERS[kind](channels)
    except KeyError:
        raise ValueError(f"unknown attention {kind!r}; choose from {', '.join(ATTENTION_KINDS)}") from None
