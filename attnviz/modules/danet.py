"""DANet: Dual Attention Network for scene segmentation.

Fu, Liu, Tian, Li, Bao, Fang, Lu, "Dual Attention Network for Scene
Segmentation", CVPR 2019 (arXiv:1809.02983).

Position attention module (PAM), for A in R^{C x H x W}, N = H * W:

    B = conv1x1_{C -> C/8}(A),  C' = conv1x1_{C -> C/8}(A),  D = conv1x1_{C -> C}(A)
    S = softmax(B^T C')   (N x N, softmax over the last axis, no 1/sqrt(d) scale)
    E = alpha * (D S^T) + A,    alpha learnable, initialised to 0

S[i, j] is how much pixel i attends to pixel j: row i of S sums to 1.

Channel attention module (CAM), A reshaped to C x N:

    energy = A A^T (C x C)
    X = softmax(energy)                           the paper's form
    X = softmax(rowmax(energy) - energy)          the official code's form
    E = beta * (X A) + A,       beta learnable, initialised to 0

Softmax is shift-invariant per row, so the official form equals
softmax(-energy): it weights the channels *least* similar to channel c most.
We default to the official form (that is what released DANet models learned)
and offer the paper's as `form="paper"`.

Memory: S costs N^2 floats (4.3 GB for N = 32768). `position_attention`
processes the queries in chunks, holding chunk x N energies at a time; the
naive `position_attention_reference` builds S and is kept for the tests.

Head (as in the paper's Fig. 2 and official code): two 3x3 conv-BN-ReLU
branches reduce C by 4, PAM on one and CAM on the other, each followed by a
3x3 conv-BN-ReLU; the sum goes to dropout + 1x1 classifier, and each branch
has its own dropout + 1x1 classifier as an auxiliary output.

Notation: the paper writes s_ji = exp(B_i . C_j) / sum_i exp(B_i . C_j), with j
the output pixel, so its query is C and its key is B. We write S = softmax(B^T C)
with row i the output ("where pixel i attends"), B the query (query_conv) and
C the key (key_conv): the letters and the indices are swapped relative to the
paper, and the matrix is the same. Nothing numerical changes.

Differences from the paper, all following the official code (junfu1115/DANet):
- B and C are 1x1 convs to C/8 channels; the paper keeps C channels.
- CAM defaults to the official softmax(rowmax - energy) = softmax(-energy),
  where the paper writes softmax(energy) (`form="paper"` gives the paper's).
The chunked evaluation of PAM changes only the order of floating point
operations.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from attnviz.capture.recorder import is_recording, record, wants_features
from attnviz.capture.records import ChannelMapRecord, PositionAttentionRecord, branch_ratios
from attnviz.kinds import AttentionKind

__all__ = [
    "PositionAttention",
    "ChannelAttention",
    "DANetHead",
    "DANetOutput",
    "position_attention",
    "position_attention_reference",
    "channel_attention_map",
]

DEFAULT_QUERY_CHUNK = 1024
# at most this many energies (floats) at once, whatever the chunk: 16 MiB, so a large photo (N = 12288 at
# 768x1024) takes fewer rows a chunk instead of 48 MiB of energies plus their softmax (a server's peak memory)
MAX_CHUNK_ENERGIES = 4 * 2**20


def position_attention_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor):
    """Naive PAM: S = softmax(Q K^T); out = V S^T. Builds S (B, N, N).

    query, key: (B, N, C'); value: (B, C, N). Returns (out (B, C, N), S).
    """
    attention = torch.softmax(query @ key.transpose(1, 2), dim=-1)
    return value @ attention.transpose(1, 2), attention


def _chunk_of_rows(query: torch.Tensor, key_t: torch.Tensor, value: torch.Tensor, want_log_normaliser: bool):
    """(V S^T, the rows' log-sum-exp or None) for the rows of S of the queries in `query`."""
    energy = query @ key_t  # (B, n, N)
    log_normaliser = torch.logsumexp(energy, dim=-1) if want_log_normaliser else None
    return value @ torch.softmax(energy, dim=-1).transpose(1, 2), log_normaliser  # (B, C, n)


def position_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    chunk: int = DEFAULT_QUERY_CHUNK,
    want_log_normaliser: bool = False,
    recompute: bool = False,
):
    """PAM without materialising S: queries in chunks of `chunk` rows.

    query, key: (B, N, C'); value: (B, C, N). Returns (out (B, C, N),
    log_normaliser (B, N) or None), where log_normaliser[b, i] is
    logsumexp_j(q_i . k_j), enough to rebuild any row or column of S.
    Peak extra memory: B * rows * N floats, rows = chunk or fewer (MAX_CHUNK_ENERGIES), without gradients.
    With gradients autograd keeps every chunk's S for the backward pass (all of S, N^2 floats) unless
    `recompute`: each chunk is then recomputed in the backward pass (torch.utils.checkpoint), and only the
    inputs are kept; the values and gradients are the same.
    """
    batch, num_pixels, _ = query.shape
    chunk = max(1, min(chunk, MAX_CHUNK_ENERGIES // max(1, batch * key.shape[1])))
    out = value.new_empty(value.shape)
    log_normaliser = query.new_empty(batch, num_pixels) if want_log_normaliser else None
    key_t = key.transpose(1, 2)
    recompute = recompute and torch.is_grad_enabled()
    for start in range(0, num_pixels, chunk):
        stop = min(start + chunk, num_pixels)
        if recompute:
            rows, lse = checkpoint(
                _chunk_of_rows, query[:, start:stop], key_t, value, want_log_normaliser, use_reentrant=False
            )
        else:
            rows, lse = _chunk_of_rows(query[:, start:stop], key_t, value, want_log_normaliser)
        out[:, :, start:stop] = rows
        if want_log_normaliser:
            log_normaliser[:, start:stop] = lse
    return out, log_normaliser


class PositionAttention(nn.Module):
    """PAM. `chunk` (and MAX_CHUNK_ENERGIES) bound the energies held at once; an evaluation with gradients
    (Grad-CAM, Integrated Gradients) recomputes each chunk in the backward pass instead of keeping S."""

    def __init__(self, channels: int, reduction: int = 8, chunk: int = DEFAULT_QUERY_CHUNK):
        super().__init__()
        qk_channels = max(channels // reduction, 1)
        self.query_conv = nn.Conv2d(channels, qk_channels, 1)
        self.key_conv = nn.Conv2d(channels, qk_channels, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.chunk = chunk

    def projections(self, x: torch.Tensor):
        """(query (B, N, C'), key (B, N, C'), value (B, C, N))."""
        query = self.query_conv(x).flatten(2).transpose(1, 2)
        key = self.key_conv(x).flatten(2).transpose(1, 2)
        value = self.value_conv(x).flatten(2)
        return query, key, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query, key, value = self.projections(x)
        recording = is_recording()
        # the attention product runs in fp32 even under autocast: the softmax over
        # N up to 10^5 terms and the log-normaliser need the range
        with torch.autocast(x.device.type, enabled=False):
            out, log_normaliser = position_attention(
                query.float(),
                key.float(),
                value.float(),
                self.chunk,
                want_log_normaliser=recording,
                recompute=not self.training,
            )
        branch = self.alpha * out.view(batch, channels, height, width).to(x.dtype)
        if recording:
            record(
                self,
                PositionAttentionRecord(
                    AttentionKind.PAM,
                    query.detach().float(),
                    key.detach().float(),
                    log_normaliser.detach(),
                    height,
                    width,
                    float(self.alpha.detach()),
                    branch_ratio=branch_ratios(branch.detach(), x.detach()),
                ),
            )
        return branch + x


def channel_attention_map(x: torch.Tensor, form: str = "official") -> torch.Tensor:
    """X (B, C, C) of CAM for x (B, C, H, W)."""
    flat = x.flatten(2)
    energy = flat @ flat.transpose(1, 2)
    if form == "official":
        energy = energy.amax(-1, keepdim=True) - energy
    elif form != "paper":
        raise ValueError(f"form must be 'official' or 'paper', got {form!r}")
    return torch.softmax(energy, dim=-1)


class ChannelAttention(nn.Module):
    """CAM. form="official" (softmax(rowmax - energy), the default) or "paper"."""

    def __init__(self, form: str = "official"):
        super().__init__()
        if form not in ("official", "paper"):
            raise ValueError(f"form must be 'official' or 'paper', got {form!r}")
        self.form = form
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        with torch.autocast(x.device.type, enabled=False):
            xf = x.float()
            attention = channel_attention_map(xf, self.form)
            out = (attention @ xf.flatten(2)).view(batch, channels, height, width)
        branch = self.beta * out.to(x.dtype)
        if is_recording():
            record(
                self,
                ChannelMapRecord(
                    AttentionKind.CAM,
                    attention.detach(),
                    self.form,
                    float(self.beta.detach()),
                    features=x.detach() if wants_features() else None,
                    branch_ratio=branch_ratios(branch.detach(), x.detach()),
                ),
            )
        return branch + x

    def extra_repr(self) -> str:
        return f"form={self.form!r}"


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DANetOutput(NamedTuple):
    logits: torch.Tensor  # fused: classifier(PAM branch + CAM branch)
    pam_logits: torch.Tensor  # auxiliary
    cam_logits: torch.Tensor  # auxiliary


class DANetHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        cam_form: str = "official",
        dropout: float = 0.1,
        pam_chunk: int = DEFAULT_QUERY_CHUNK,
    ):
        super().__init__()
        inter = max(in_channels // 4, 8)
        self.pam_in = _conv_bn_relu(in_channels, inter)
        self.cam_in = _conv_bn_relu(in_channels, inter)
        self.pam = PositionAttention(inter, chunk=pam_chunk)
        self.cam = ChannelAttention(cam_form)
        self.pam_out = _conv_bn_relu(inter, inter)
        self.cam_out = _conv_bn_relu(inter, inter)

        def classifier():
            return nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(inter, num_classes, 1))

        self.classifier = classifier()
        self.pam_classifier = classifier()
        self.cam_classifier = classifier()

    def forward(self, x: torch.Tensor) -> DANetOutput:
        pam_feat = self.pam_out(self.pam(self.pam_in(x)))
        cam_feat = self.cam_out(self.cam(self.cam_in(x)))
        return DANetOutput(
            self.classifier(pam_feat + cam_feat),
            self.pam_classifier(pam_feat),
            self.cam_classifier(cam_feat),
        )
