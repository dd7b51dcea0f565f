"""CBAM: Convolutional Block Attention Module.

Woo, Park, Lee, Kweon, ECCV 2018 (arXiv:1807.06521).

    F'  = M_c(F) * F                                  channel gate (flexible.py)
    F'' = M_s(F') * F',  M_s = sigmoid(conv7x7([AvgPool_c(F'); MaxPool_c(F')]))

AvgPool_c / MaxPool_c pool across channels, giving two H x W maps.

Differences from the paper: none in the formula. The official code puts a
BatchNorm after the 7x7 conv and orders the pooled maps [max; mean]; we follow
the paper ([mean; max], conv only, no bias).
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.recorder import is_recording, record
from attnviz.capture.records import SpatialAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.modules.flexible import FlexibleChannelAttention

__all__ = ["CBAM", "SpatialGate"]


class SpatialGate(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        gate = torch.sigmoid(self.conv(pooled))
        if is_recording():
            record(self, SpatialAttentionRecord(AttentionKind.CBAM_SPATIAL, gate.detach()[:, 0]))
        return x * gate


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7, min_hidden: int = 4):
        super().__init__()
        self.channel = FlexibleChannelAttention(channels, reduction, min_hidden)
        self.spatial = SpatialGate(spatial_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
