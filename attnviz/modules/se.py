"""SE: Squeeze-and-Excitation.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507).

    z = GAP(x)                                   (B, C)   squeeze
    w = sigmoid(W2 relu(W1 z))                   W1: C -> C/r, W2: C/r -> C   excitation
    out = x * w

Differences from the paper: the hidden width is max(C // r, min_hidden), so
that very narrow layers keep a few hidden units (the paper assumes C >= 64).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnviz.capture.recorder import is_recording, record, wants_features
from attnviz.capture.records import ChannelAttentionRecord
from attnviz.kinds import AttentionKind

__all__ = ["SqueezeExcitation", "hidden_width", "pre_sigmoid"]


def hidden_width(channels: int, reduction: int, min_hidden: int = 4) -> int:
    """Hidden width of an SE / CBAM bottleneck MLP: max(C // r, min_hidden), at most C."""
    return min(channels, max(channels // reduction, min_hidden))


def pre_sigmoid(weight: float) -> float:
    """The excitation's output before its sigmoid, from the weight it gave: log(w / (1 - w)) (±inf at 0, 1)."""
    weight = float(weight)
    if weight <= 0.0:
        return -math.inf
    if weight >= 1.0:
        return math.inf
    return math.log(weight / (1.0 - weight))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 4):
        super().__init__()
        hidden = hidden_width(channels, reduction, min_hidden)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean((2, 3))
        weights = torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))
        if is_recording():
            record(
                self,
                ChannelAttentionRecord(
                    AttentionKind.SE,
                    weights.detach(),
                    {"pooled": squeezed.detach()},
                    features=x.detach() if wants_features() else None,
                ),
            )
        return x * weights[:, :, None, None]
