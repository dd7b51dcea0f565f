"""ECA: Efficient Channel Attention.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep
Convolutional Neural Networks", CVPR 2020 (arXiv:1910.03151).

    y = GAP(x)                         (B, C)
    w = sigmoid(Conv1d_k(y))           1D conv across channels, no bias, pad (k-1)//2
    out = x * w

with the adaptive kernel size k = psi(C) = |log2(C)/gamma + b/gamma|_odd,
gamma = 2, b = 1. "|t|_odd" is the nearest odd number to t in the paper; the
official code rounds differently (truncate, then bump an even value up), the
released ImageNet checkpoints use hand-picked per-stage lists, and timm clamps
k >= 3. All four are here so the explorer can show them side by side; the
layer uses the official rounding by default.

Differences from the paper: none in the layer. `x.mean((2, 3))` replaces
AdaptiveAvgPool2d(1) (same values, faster).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from attnviz.capture import ChannelAttentionRecord, is_recording, record, wants_features

__all__ = [
    "ECA",
    "eca_kernel_size",
    "eca_kernel_size_nearest_odd",
    "eca_kernel_size_timm",
    "OFFICIAL_RELEASED_KERNELS",
    "KERNEL_RULES",
]


def _t(channels: int, gamma: float, b: float) -> float:
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return abs((math.log2(channels) + b) / gamma)


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """k with the official code's rounding: t = int(|(log2 C + b) / gamma|), odd-up.

    C = 64, 128, 256, 512, 1024, 2048 -> 3, 5, 5, 5, 5, 7.
    """
    t = int(_t(channels, gamma, b))
    return t if t % 2 else t + 1


def eca_kernel_size_nearest_odd(channels: int, gamma: float = 2, b: float = 1) -> int:
    """k as the paper writes it: the odd number nearest to t (ties go up, t=4 -> 5)."""
    t = _t(channels, gamma, b)
    return max(1, 2 * math.floor(t / 2) + 1)


def eca_kernel_size_timm(channels: int, gamma: float = 2, b: float = 1) -> int:
    """timm's EcaModule: the official rounding, clamped to k >= 3."""
    return max(eca_kernel_size(channels, gamma, b), 3)


# Per-stage (channels, k) of the official released ImageNet checkpoints
# (BangguWu/ECANet README: eca_resnet50_k3557, eca_resnet101_k3357,
# eca_resnet152_k3357). ECA sits after the bottleneck's last 1x1 conv, whose
# output has 256, 512, 1024, 2048 channels in the four stages.
OFFICIAL_RELEASED_KERNELS: dict[str, list[tuple[int, int]]] = {
    "ECA-ResNet50": [(256, 3), (512, 5), (1024, 5), (2048, 7)],
    "ECA-ResNet101": [(256, 3), (512, 3), (1024, 5), (2048, 7)],
    "ECA-ResNet152": [(256, 3), (512, 3), (1024, 5), (2048, 7)],
}

KERNEL_RULES = {
    "official code": eca_kernel_size,
    "paper (nearest odd)": eca_kernel_size_nearest_odd,
    "timm (k >= 3)": eca_kernel_size_timm,
}


class ECA(nn.Module):
    """ECA layer. Give `channels` (k from the official rule) or an explicit `kernel_size`."""

    def __init__(self, channels: int | None = None, kernel_size: int | None = None,
                 gamma: float = 2, b: float = 1):
        super().__init__()
        if kernel_size is None:
            if channels is None:
                raise ValueError("ECA needs channels or kernel_size")
            kernel_size = eca_kernel_size(channels, gamma, b)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def channel_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights (B, C), pooled descriptor (B, C)) for input x (B, C, H, W)."""
        pooled = x.mean((2, 3))
        weights = torch.sigmoid(self.conv(pooled.unsqueeze(1))).squeeze(1)
        return weights, pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, pooled = self.channel_weights(x)
        if is_recording():
            record(self, ChannelAttentionRecord(
                "eca", weights.detach(), {"pooled": pooled.detach()},
                kernel=self.conv.weight.detach().flatten(),
                features=x.detach() if wants_features() else None))
        return x * weights[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"
