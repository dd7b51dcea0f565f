"""Coordinate Attention.

Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design",
CVPR 2021 (arXiv:2103.02907).

    z_h[c, h] = mean_w x[c, h, w]          z_w[c, w] = mean_h x[c, h, w]
    f = h_swish(BN(conv1x1_{C -> mip}([z_h ; z_w])))     along the H + W axis
    f_h, f_w = split(f)
    a_h = sigmoid(conv1x1_{mip -> C}(f_h))   a_w = sigmoid(conv1x1_{mip -> C}(f_w))
    out[c, h, w] = x[c, h, w] * a_h[c, h] * a_w[c, w]

mip = max(8, C // r), r = 32, as in the official code.

Differences from the paper: none.
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.recorder import is_recording, record
from attnviz.capture.records import CoordinateAttentionRecord
from attnviz.kinds import AttentionKind

__all__ = ["CoordinateAttention"]


class CoordinateAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 32, min_hidden: int = 8):
        super().__init__()
        mip = max(min_hidden, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        pooled_h = x.mean(3, keepdim=True)  # (B, C, H, 1)
        pooled_w = x.mean(2, keepdim=True).transpose(2, 3)  # (B, C, W, 1)
        f = self.act(self.bn1(self.conv1(torch.cat([pooled_h, pooled_w], dim=2))))
        f_h, f_w = torch.split(f, [height, width], dim=2)
        a_h = torch.sigmoid(self.conv_h(f_h))  # (B, C, H, 1)
        a_w = torch.sigmoid(self.conv_w(f_w)).transpose(2, 3)  # (B, C, 1, W)
        if is_recording():
            record(self, CoordinateAttentionRecord(AttentionKind.CA, a_h.detach()[..., 0], a_w.detach()[:, :, 0]))
        return x * a_h * a_w
