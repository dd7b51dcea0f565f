"""Flexible channel attention: CBAM's channel branch.

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018
(arXiv:1807.06521), Sec. 3, "Channel attention module". The article this app
follows calls it flexible attention (柔性注意力): every channel gets a soft
weight in (0, 1) instead of a hard keep/drop.

    a = MLP(AvgPool(F))          (B, C)   average-pool branch
    m = MLP(MaxPool(F))          (B, C)   max-pool branch, same MLP (shared weights)
    w = sigmoid(a + m)           M_c(F), shape 1 x 1 x C
    out = F * w

MLP: C -> C/r -> C with ReLU between, r = 16. Both branch outputs are recorded
so the page can show what each pool contributes to w.

Differences from the paper: hidden width max(C // r, min_hidden) for narrow
layers; `x.amax((2, 3))` replaces AdaptiveMaxPool2d(1) (same values, faster).
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.capture.recorder import is_recording, record, wants_features
from attnviz.capture.records import ChannelAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.modules.se import hidden_width

__all__ = ["FlexibleChannelAttention", "branch_statistics"]


def branch_statistics(avg_branch, max_branch) -> tuple[float, float]:
    """(share of channels where the max-pool branch has the larger magnitude, Pearson correlation of the
    two branches across channels) for branch outputs (C,)."""
    avg = torch.as_tensor(avg_branch, dtype=torch.float64)
    mx = torch.as_tensor(max_branch, dtype=torch.float64)
    dominant = float((mx.abs() > avg.abs()).double().mean())
    correlation = float(torch.corrcoef(torch.stack([avg, mx]))[0, 1])
    return dominant, correlation


class FlexibleChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 4):
        super().__init__()
        hidden = hidden_width(channels, reduction, min_hidden)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(MLP(avgpool(x)), MLP(maxpool(x))), each (B, C), before the sigmoid."""
        return self.mlp(x.mean((2, 3))), self.mlp(x.amax((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg_branch, max_branch = self.branches(x)
        weights = torch.sigmoid(avg_branch + max_branch)
        if is_recording():
            record(
                self,
                ChannelAttentionRecord(
                    AttentionKind.FLEXIBLE,
                    weights.detach(),
                    {"avg_branch": avg_branch.detach(), "max_branch": max_branch.detach()},
                    features=x.detach() if wants_features() else None,
                ),
            )
        return x * weights[:, :, None, None]
