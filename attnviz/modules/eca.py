"""ECA: Efficient Channel Attention.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep
Convolutional Neural Networks", CVPR 2020 (arXiv:1910.03151).

    y = GAP(x)                         (B, C)
    w = sigmoid(Conv1d_k(y))           1D conv across channels, no bias, pad (k-1)//2
    out = x * w

with the adaptive kernel size k = psi(C) = |t|_odd, t = log2(C)/gamma + b/gamma,
gamma = 2, b = 1, "|t|_odd" the nearest odd number to t.

Rounding, exactly: the paper's code listing (and timm) computes
`t = int(abs((log2(C) + b) / gamma)); k = t if t % 2 else t + 1`. For t >= 0
this truncate-and-bump rule *is* the nearest odd number with ties rounded up,
2 * floor(t / 2) + 1: both give 2m + 1 for every t in [2m, 2m + 2). Only a
ties-down reading of "nearest odd" differs, and only where t is an even
integer (t = 4 -> 3 instead of 5). The authors' repository never computes k
from C: its layers take k, and its released ImageNet ResNets use hand-picked
per-stage lists (R50: 3, 5, 5, 7) that the formula does not give; timm clamps
k >= 3. The explorer shows these side by side; the layer uses the paper's rule.

Differences from the paper: none in the layer. `x.mean((2, 3))` replaces
AdaptiveAvgPool2d(1) (same values, faster).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnviz.capture.recorder import is_recording, record, wants_features
from attnviz.capture.records import ChannelAttentionRecord
from attnviz.kinds import AttentionKind

__all__ = [
    "ECA",
    "eca_kernel_size",
    "eca_kernel_size_nearest_odd",
    "eca_kernel_size_ties_down",
    "kernel_t",
    "eca_formula_terms",
    "eca_kernel_size_timm",
    "OFFICIAL_RELEASED_KERNELS",
    "KERNEL_RULES",
]


def kernel_t(channels: int, gamma: float = 2, b: float = 1) -> float:
    """t = |(log2 C + b) / gamma|, the value the kernel size rounds to an odd number."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return abs((math.log2(channels) + b) / gamma)


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """k by the paper's code listing (and timm): t = int(t), then an even value bumped up.

    The same function as the nearest odd number with ties up. C = 64, 128, 256, 512, 1024, 2048 ->
    3, 5, 5, 5, 5, 7.
    """
    t = int(kernel_t(channels, gamma, b))
    return t if t % 2 else t + 1


def eca_kernel_size_nearest_odd(channels: int, gamma: float = 2, b: float = 1, ties: str = "up") -> int:
    """The odd number nearest to t; at an even integer t (a tie) round `ties` = "up" or "down"."""
    t = kernel_t(channels, gamma, b)
    if ties == "up":
        return 2 * math.floor(t / 2) + 1
    if ties != "down":
        raise ValueError(f"ties must be 'up' or 'down', got {ties!r}")
    return max(1, 2 * math.ceil(t / 2) - 1)


def eca_kernel_size_ties_down(channels: int, gamma: float = 2, b: float = 1) -> int:
    """Nearest odd with ties rounded down (t = 4 -> 3): the one reading that differs from the code."""
    return eca_kernel_size_nearest_odd(channels, gamma, b, ties="down")


def eca_kernel_size_timm(channels: int, gamma: float = 2, b: float = 1) -> int:
    """timm's EcaModule: the same rounding, clamped to k >= 3."""
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
    "paper's code = nearest odd, ties up": eca_kernel_size,
    "nearest odd, ties down": eca_kernel_size_ties_down,
    "timm (k >= 3)": eca_kernel_size_timm,
}


def eca_formula_terms(
    kernel: torch.Tensor, pooled: torch.Tensor, channel: int, bias: float = 0.0
) -> tuple[list[tuple[float, float]], float]:
    """The terms of ECA's 1D convolution for one output channel: ([(kernel weight, pooled input)], sum).

    kernel (k,), pooled (C,); zero padding beyond the channel ends, as the layer's Conv1d does; `bias`
    the convolution's bias (0 in the paper's code), added to the sum. The channel's weight is sigmoid(sum).
    """
    half = len(kernel) // 2
    terms = []
    for offset in range(-half, half + 1):
        source = channel + offset
        value = float(pooled[source]) if 0 <= source < len(pooled) else 0.0
        terms.append((float(kernel[offset + half]), value))
    return terms, sum(weight * value for weight, value in terms) + bias


class ECA(nn.Module):
    """ECA layer. Give `channels` (k from the paper's rule) or an explicit `kernel_size`."""

    def __init__(self, channels: int | None = None, kernel_size: int | None = None, gamma: float = 2, b: float = 1):
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
            record(
                self,
                ChannelAttentionRecord(
                    AttentionKind.ECA,
                    weights.detach(),
                    {"pooled": pooled.detach()},
                    kernel=self.conv.weight.detach().flatten(),
                    features=x.detach() if wants_features() else None,
                ),
            )
        return x * weights[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"
