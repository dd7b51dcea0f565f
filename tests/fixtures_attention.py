"""User-style attention modules for tests/test_families.py: the attribute names and the maths of the
public code people copy (written here from the published maths, not copied), with random weights.

Each `make_*` gives a module in eval mode with every weight random (gamma nonzero, BatchNorm with
random statistics, no zero-initialised output layer) so that a reconstruction check means something.
Class names are deliberately not the originals': recognition must not depend on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def randomise(module: nn.Module, seed: int = 0, gamma: float = 0.7) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.split(".")[-1] == "gamma" or name.endswith("gamma.scale"):
                param.fill_(gamma)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return module.eval()


# ----------------------------------------------------------------------------- DANet / SAGAN


class Blob(nn.Module):
    """DANet's PAM_Module (official code): S = softmax(Q^T K), out = gamma * V S^T + x."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.key_conv(x).view(b, -1, h * w)
        attention = self.softmax(torch.bmm(q, k))
        v = self.value_conv(x).view(b, -1, h * w)
        out = torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class GanSelfAttention(nn.Module):
    """SAGAN's Self_Attn: the same maths, returning (out, attention)."""

    def __init__(self, in_dim: int, activation: str = "relu"):
        super().__init__()
        self.activation = activation
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        energy = torch.bmm(self.query_conv(x).flatten(2).transpose(1, 2), self.key_conv(x).flatten(2))
        attention = self.softmax(energy)
        out = torch.bmm(self.value_conv(x).flatten(2), attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x, attention


class ColumnSoftmaxBlob(Blob):
    """Altered: the same attributes, softmax over the other axis (columns of S sum to 1)."""

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.key_conv(x).view(b, -1, h * w)
        attention = torch.softmax(torch.bmm(q, k), dim=1)
        v = self.value_conv(x).view(b, -1, h * w)
        return self.gamma * torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, h, w) + x


class NoResidualBlob(Blob):
    """Altered: the residual is missing."""

    def forward(self, x):
        return super().forward(x) - x


class ChannelThing(nn.Module):
    """DANet's CAM_Module: X = softmax(rowmax(A A^T) - A A^T) (official) or softmax(A A^T) (paper)."""

    def __init__(self, paper: bool = False):
        super().__init__()
        self.paper = paper
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.view(b, c, -1)
        energy = torch.bmm(flat, flat.permute(0, 2, 1))
        if not self.paper:
            energy = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        attention = self.softmax(energy)
        return self.gamma * torch.bmm(attention, flat).view(b, c, h, w) + x


# ----------------------------------------------------------------------------- non-local


class Nonlocal2d(nn.Module):
    """AlexHex7's _NonLocalBlockND (2D): embedded Gaussian (softmax(theta^T phi)) or dot product
    (theta^T phi / N), sub_sample max-pools phi and g by 2, W = conv + BN, z = W(y) + x."""

    def __init__(
        self,
        in_channels: int,
        inter_channels: int | None = None,
        sub_sample: bool = True,
        bn_layer: bool = True,
        mode: str = "embedded",
    ):
        super().__init__()
        self.mode = mode
        self.inter_channels = inter_channels or max(in_channels // 2, 1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, 1)
        if bn_layer:
            self.W = nn.Sequential(nn.Conv2d(self.inter_channels, in_channels, 1), nn.BatchNorm2d(in_channels))
        else:
            self.W = nn.Conv2d(self.inter_channels, in_channels, 1)
        if sub_sample:
            self.g = nn.Sequential(self.g, nn.MaxPool2d(kernel_size=(2, 2)))
            self.phi = nn.Sequential(self.phi, nn.MaxPool2d(kernel_size=(2, 2)))

    def forward(self, x):
        b = x.shape[0]
        g_x = self.g(x).view(b, self.inter_channels, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(b, self.inter_channels, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(b, self.inter_channels, -1)
        f = torch.matmul(theta_x, phi_x)
        f_div_c = F.softmax(f, dim=-1) if self.mode == "embedded" else f / f.shape[-1]
        y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous().view(b, self.inter_channels, *x.shape[2:])
        return self.W(y) + x


class NonlocalGaussian(nn.Module):
    """AlexHex7's Gaussian form: no theta; f = x^T x (phi = max-pool of x when sub-sampled)."""

    def __init__(self, in_channels: int, inter_channels: int | None = None, sub_sample: bool = True):
        super().__init__()
        self.inter_channels = inter_channels or max(in_channels // 2, 1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, in_channels, 1), nn.BatchNorm2d(in_channels))
        if sub_sample:
            self.g = nn.Sequential(self.g, nn.MaxPool2d(2))
            self.phi = nn.MaxPool2d(2)

    def forward(self, x):
        b, c = x.shape[:2]
        g_x = self.g(x).view(b, self.inter_channels, -1).permute(0, 2, 1)
        theta_x = x.view(b, c, -1).permute(0, 2, 1)
        phi_x = (self.phi(x) if hasattr(self, "phi") else x).view(b, c, -1)
        f_div_c = F.softmax(torch.matmul(theta_x, phi_x), dim=-1)
        y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous().view(b, self.inter_channels, *x.shape[2:])
        return self.W(y) + x


# ----------------------------------------------------------------------------- CCNet


def neg_inf_diagonal(batch: int, height: int, width: int) -> torch.Tensor:
    """(B * W, H, H) with -inf on the diagonal: masks each pixel's own term in the column branch."""
    return torch.diag(torch.full((height,), float("-inf"))).unsqueeze(0).repeat(batch * width, 1, 1)


class Cross(nn.Module):
    """CCNet's CrissCrossAttention: one softmax over each pixel's column (self masked) and row."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.softmax = nn.Softmax(dim=3)
        self.INF = neg_inf_diagonal
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        # column branch: for each column w, the H x H energies between its pixels
        q_col = q.permute(0, 3, 2, 1).reshape(b * w, h, -1)  # (B*W, H, C')
        k_col = k.permute(0, 3, 1, 2).reshape(b * w, -1, h)  # (B*W, C', H)
        v_col = v.permute(0, 3, 1, 2).reshape(b * w, -1, h)  # (B*W, C, H)
        energy_col = (torch.bmm(q_col, k_col) + self.INF(b, h, w)).view(b, w, h, h).permute(0, 2, 1, 3)
        # row branch: for each row h, the W x W energies
        q_row = q.permute(0, 2, 3, 1).reshape(b * h, w, -1)
        k_row = k.permute(0, 2, 1, 3).reshape(b * h, -1, w)
        v_row = v.permute(0, 2, 1, 3).reshape(b * h, -1, w)
        energy_row = torch.bmm(q_row, k_row).view(b, h, w, w)
        attention = self.softmax(torch.cat([energy_col, energy_row], 3))  # (B, H, W, H + W)
        att_col = attention[..., :h].permute(0, 2, 1, 3).reshape(b * w, h, h)
        att_row = attention[..., h:].reshape(b * h, w, w)
        out_col = torch.bmm(v_col, att_col.permute(0, 2, 1)).view(b, w, -1, h).permute(0, 2, 3, 1)
        out_row = torch.bmm(v_row, att_row.permute(0, 2, 1)).view(b, h, -1, w).permute(0, 2, 1, 3)
        return self.gamma * (out_col + out_row) + x


class Recurrent(nn.Module):
    """CCNet's RCCA: the same criss-cross module applied twice."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.cca = Cross(in_dim)

    def forward(self, x):
        for _ in range(2):
            x = self.cca(x)
        return x


# ----------------------------------------------------------------------------- GCNet


class Context(nn.Module):
    """GCNet's ContextBlock with pooling_type 'att': context = x softmax(conv_mask(x)); out = x * sigmoid(mul(ctx)) +
    add(ctx)."""

    def __init__(self, inplanes: int, ratio: float = 0.25, fusion_types=("channel_add",)):
        super().__init__()
        planes = max(int(inplanes * ratio), 1)
        self.pooling_type = "att"
        self.conv_mask = nn.Conv2d(inplanes, 1, 1)
        self.softmax = nn.Softmax(dim=2)

        def transform():
            return nn.Sequential(
                nn.Conv2d(inplanes, planes, 1),
                nn.LayerNorm([planes, 1, 1]),
                nn.ReLU(inplace=True),
                nn.Conv2d(planes, inplanes, 1),
            )

        self.channel_add_conv = transform() if "channel_add" in fusion_types else None
        self.channel_mul_conv = transform() if "channel_mul" in fusion_types else None

    def forward(self, x):
        b, c, h, w = x.shape
        mask = self.softmax(self.conv_mask(x).view(b, 1, h * w)).unsqueeze(-1)  # (B, 1, N, 1)
        context = torch.matmul(x.view(b, c, h * w).unsqueeze(1), mask).view(b, c, 1, 1)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out


# ----------------------------------------------------------------------------- gates


class EcaLike(nn.Module):
    """BangguWu's eca_layer: w = sigmoid(conv1d(avgpool(x))), out = x * w."""

    def __init__(self, channel: int, k_size: int = 3):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * self.sigmoid(y).expand_as(x)


class Squeeze(nn.Module):
    """SELayer: w = fc(avgpool(x)), fc = Linear, ReLU, Linear, Sigmoid."""

    def __init__(self, channel: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y.expand_as(x)


class InvertedSqueeze(Squeeze):
    """Altered: x * (1 - w)."""

    def forward(self, x):
        b, c = x.shape[:2]
        return x * (1 - self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1))


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class ChanGate(nn.Module):
    """Jongchan's CBAM ChannelGate: w = sigmoid(sum over pool_types of mlp(pool(x)))."""

    def __init__(self, gate_channels: int, reduction_ratio: int = 4, pool_types=("avg", "max")):
        super().__init__()
        self.mlp = nn.Sequential(
            Flatten(),
            nn.Linear(gate_channels, gate_channels // reduction_ratio),
            nn.ReLU(),
            nn.Linear(gate_channels // reduction_ratio, gate_channels),
        )
        self.pool_types = list(pool_types)

    def forward(self, x):
        total = None
        for pool in self.pool_types:
            if pool == "avg":
                pooled = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
            else:
                pooled = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
            raw = self.mlp(pooled)
            total = raw if total is None else total + raw
        return x * torch.sigmoid(total).unsqueeze(2).unsqueeze(3).expand_as(x)


class ChannelPool(nn.Module):
    def forward(self, x):
        return torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)


class BasicConv(nn.Module):
    def __init__(self, in_planes, out_planes, kernel_size, padding=0, relu=True, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_planes, eps=1e-5, momentum=0.01, affine=True) if bn else None
        self.relu = nn.ReLU() if relu else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class SpatGate(nn.Module):
    """Jongchan's CBAM SpatialGate: m = sigmoid(BasicConv7x7([max_c; mean_c](x)))."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.compress = ChannelPool()
        self.spatial = BasicConv(2, 1, kernel_size, padding=(kernel_size - 1) // 2, relu=False)

    def forward(self, x):
        return x * torch.sigmoid(self.spatial(self.compress(x)))


class Cbam(nn.Module):
    def __init__(self, gate_channels: int, reduction_ratio: int = 4):
        super().__init__()
        self.ChannelGate = ChanGate(gate_channels, reduction_ratio)
        self.SpatialGate = SpatGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


class HSigmoid(nn.Module):
    def forward(self, x):
        return F.relu6(x + 3) / 6


class HSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.sigmoid = HSigmoid()

    def forward(self, x):
        return x * self.sigmoid(x)


class Coord(nn.Module):
    """houqb's CoordAtt: out = x * a_w * a_h from pooled rows and columns through a shared conv1-bn1-act."""

    def __init__(self, inp: int, oup: int, reduction: int = 32):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, inp // reduction)
        self.conv1 = nn.Conv2d(inp, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = HSwish()
        self.conv_h = nn.Conv2d(mip, oup, 1)
        self.conv_w = nn.Conv2d(mip, oup, 1)

    def forward(self, x):
        identity = x
        _, _, h, w = x.shape
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w.permute(0, 1, 3, 2)).sigmoid()
        return identity * a_w * a_h


# ----------------------------------------------------------------------------- lookalikes


class FancyAttention(nn.Module):
    """Looks like attention by name; no family's structure."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.proj(x))


class HalfPam(nn.Module):
    """Has query_conv and key_conv but no value_conv or gamma: a near miss."""

    def __init__(self, channels: int):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)

    def forward(self, x):
        q = self.query_conv(x).flatten(2)
        k = self.key_conv(x).flatten(2)
        return x + (q.transpose(1, 2) @ k).softmax(-1).mean() * x


class UserNet(nn.Module):
    """A user's model holding several copied modules under names of its own."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.se = Squeeze(channels)
        self.eca = EcaLike(channels)
        self.cbam = Cbam(channels)
        self.coord = Coord(channels, channels)
        self.context = Context(channels, fusion_types=("channel_add", "channel_mul"))
        self.nl = Nonlocal2d(channels)
        self.pam = Blob(channels)
        self.cam = ChannelThing()
        self.cc = Recurrent(channels)
        self.sagan = GanSelfAttention(channels)
        self.odd = FancyAttention(channels)

    def forward(self, x):
        x = self.stem(x)
        for name in ("se", "eca", "cbam", "coord", "context", "nl", "pam", "cam", "cc"):
            x = getattr(self, name)(x)
        x, _ = self.sagan(x)
        return self.odd(x)


# ----------------------------------------------------------------------------- the upstream structures, written here
# (read in the public repositories; our own code with their attribute names and dataflow)


class NonlocalGaussianSharedPool(nn.Module):
    """AlexHex7/Non-local_pytorch lib/non_local_gaussian.py, 2D, sub_sample=True: no theta; ONE MaxPool2d object
    both ends g (g = Sequential(conv, pool)) and is phi itself; W = Sequential(conv, BN); z = W(y) + x."""

    def __init__(self, in_channels: int, inter_channels: int | None = None):
        super().__init__()
        self.inter_channels = inter_channels or max(in_channels // 2, 1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, in_channels, kernel_size=1), nn.BatchNorm2d(in_channels))
        pool = nn.MaxPool2d(kernel_size=(2, 2))
        self.g = nn.Sequential(self.g, pool)
        self.phi = pool

    def forward(self, x):
        b, c = x.shape[:2]
        g_x = self.g(x).view(b, self.inter_channels, -1).permute(0, 2, 1)
        theta_x = x.view(b, c, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(b, c, -1)
        f_div_c = F.softmax(torch.matmul(theta_x, phi_x), dim=-1)
        y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous().view(b, self.inter_channels, *x.shape[2:])
        return self.W(y) + x


class ExternalEca(nn.Module):
    """External-Attention-pytorch's ECAAttention: a pool named gap, a Conv1d(1, 1, k) that keeps nn.Conv1d's
    default bias, a sigmoid; returns x * weights."""

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.gap(x).squeeze(-1).permute(0, 2, 1)  # (b, 1, c)
        y = self.sigmoid(self.conv(y)).permute(0, 2, 1).unsqueeze(-1)
        return x * y.expand_as(x)


class ExternalChannelAttention(nn.Module):
    """External-Attention-pytorch's CBAM ChannelAttention: sigmoid(se(maxpool x) + se(avgpool x)), the
    weights (b, c, 1, 1) returned, not applied; se is a 1x1-conv MLP without biases."""

    def __init__(self, channel: int, reduction: int = 4):
        super().__init__()
        self.maxpool = nn.AdaptiveMaxPool2d(1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.se = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(channel // reduction, channel, 1, bias=False),
        )
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return self.sigmoid(self.se(self.maxpool(x)) + self.se(self.avgpool(x)))


class ExternalSpatialAttention(nn.Module):
    """External-Attention-pytorch's CBAM SpatialAttention: sigmoid(conv([max_c x; mean_c x])), the map
    (b, 1, h, w) returned; the conv keeps its bias."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        channel_max, _ = torch.max(x, dim=1, keepdim=True)
        channel_mean = torch.mean(x, dim=1, keepdim=True)
        return self.sigmoid(self.conv(torch.cat([channel_max, channel_mean], 1)))


class ExternalCbamBlock(nn.Module):
    """External-Attention-pytorch's CBAMBlock: the block multiplies by each gate's weights, then adds x."""

    def __init__(self, channel: int, reduction: int = 4, kernel_size: int = 7):
        super().__init__()
        self.ca = ExternalChannelAttention(channel, reduction)
        self.sa = ExternalSpatialAttention(kernel_size)

    def forward(self, x):
        out = x * self.ca(x)
        out = out * self.sa(out)
        return out + x
