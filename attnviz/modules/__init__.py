"""Attention modules, one per file; each docstring cites its paper and says what differs from it.

`make_attention(kind, channels)` builds the module for a block's attention slot.
"""

from __future__ import annotations

from torch import nn

from attnviz.kinds import AttentionKind as K
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
    K.NONE: lambda channels: nn.Identity(),
    K.SE: SqueezeExcitation,
    K.ECA: lambda channels: ECA(channels),
    K.FLEXIBLE: FlexibleChannelAttention,
    K.CBAM: CBAM,
    K.CA: CoordinateAttention,
}

ATTENTION_KINDS = tuple(_BUILDERS)

ATTENTION_TITLES = {
    K.NONE: "no attention",
    K.SE: "SE (Squeeze-and-Excitation)",
    K.ECA: "ECA (Efficient Channel Attention)",
    K.FLEXIBLE: "Flexible (CBAM channel) attention",
    K.CBAM: "CBAM (channel + spatial)",
    K.CA: "Coordinate Attention",
}


def make_attention(kind: str, channels: int) -> nn.Module:
    """The attention module `kind` (one of ATTENTION_KINDS) for `channels` channels."""
    try:
        return _BUILDERS[kind](channels)
    except KeyError:
        raise ValueError(f"unknown attention {kind!r}; choose from {', '.join(ATTENTION_KINDS)}") from None
