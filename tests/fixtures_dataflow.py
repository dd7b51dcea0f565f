"""Long-tail attention modules, written for these tests from the public structures of
xmu-xiaoma666/External-Attention-pytorch (model/attention/*.py): the same layers, shapes and order of
operations, our own code. None matches a family of attnviz.capture.families; the dataflow reader finds them by
what they compute. Each names what the test's independent hook should see."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SimAM(nn.Module):
    """SimAM (Yang et al., ICML 2021): an energy per element, gated by a sigmoid: x * sigmoid(e)."""

    def __init__(self, e_lambda: float = 1e-4):
        super().__init__()
        self.activaton = nn.Sigmoid()  # the upstream spelling
        self.e_lambda = e_lambda

    def forward(self, x):
        b, c, h, w = x.size()
        n = w * h - 1
        x_minus_mu_square = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = x_minus_mu_square / (4 * (x_minus_mu_square.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5
        return x * self.activaton(y)


class SKAttention(nn.Module):
    """Selective kernel (Li et al., CVPR 2019): branch weights = softmax over the K branches (axis 0)."""

    def __init__(self, channel=32, kernels=(1, 3, 5), reduction=4, group=1, L=8):
        super().__init__()
        self.d = max(L, channel // reduction)
        self.convs = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(channel, channel, k, padding=k // 2, groups=group), nn.BatchNorm2d(channel), nn.ReLU()
                )
                for k in kernels
            ]
        )
        self.fc = nn.Linear(channel, self.d)
        self.fcs = nn.ModuleList([nn.Linear(self.d, channel) for _ in kernels])
        self.softmax = nn.Softmax(dim=0)

    def forward(self, x):
        bs, c, _, _ = x.size()
        feats = torch.stack([conv(x) for conv in self.convs], 0)  # k, bs, c, h, w
        s = feats.sum(0).mean(-1).mean(-1)
        z = self.fc(s)
        weights = torch.stack([fc(z).view(bs, c, 1, 1) for fc in self.fcs], 0)  # k, bs, c, 1, 1
        weights = self.softmax(weights)
        return (weights * feats).sum(0)


class ShuffleAttention(nn.Module):
    """SA-Net (Zhang & Yang, ICASSP 2021): groups in the batch axis, a channel and a per-element gate."""

    def __init__(self, channel=32, G=4):
        super().__init__()
        self.G = G
        self.gn = nn.GroupNorm(channel // (2 * G), channel // (2 * G))
        self.cweight = nn.Parameter(torch.zeros(1, channel // (2 * G), 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, channel // (2 * G), 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, channel // (2 * G), 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, channel // (2 * G), 1, 1))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        b, c, h, w = x.size()
        x = x.view(b * self.G, -1, h, w)
        x_0, x_1 = x.chunk(2, dim=1)
        x_channel = x_0.mean((2, 3), keepdim=True)
        x_channel = self.cweight * x_channel + self.cbias
        x_channel = x_0 * self.sigmoid(x_channel)
        x_spatial = self.gn(x_1)
        x_spatial = self.sweight * x_spatial + self.sbias
        x_spatial = x_1 * self.sigmoid(x_spatial)
        out = torch.cat([x_channel, x_spatial], dim=1).contiguous().view(b, -1, h, w)
        return out.reshape(b, 2, -1, h, w).permute(0, 2, 1, 3, 4).reshape(b, -1, h, w)  # channel shuffle


class _ZPool(nn.Module):
    def forward(self, x):
        return torch.cat((x.max(1)[0].unsqueeze(1), x.mean(1).unsqueeze(1)), dim=1)


class _AttentionGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.compress = _ZPool()
        self.conv = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1))

    def forward(self, x):
        return x * torch.sigmoid_(self.conv(self.compress(x)))  # in place, as upstream


class TripletAttention(nn.Module):
    """Triplet attention (Misra et al., WACV 2021): three gates, on the (C, W), (H, C) and (H, W) planes."""

    def __init__(self):
        super().__init__()
        self.cw, self.hc, self.hw = _AttentionGate(), _AttentionGate(), _AttentionGate()

    def forward(self, x):
        out1 = self.cw(x.permute(0, 2, 1, 3).contiguous()).permute(0, 2, 1, 3).contiguous()
        out2 = self.hc(x.permute(0, 3, 2, 1).contiguous()).permute(0, 3, 2, 1).contiguous()
        return (out1 + out2 + self.hw(x)) / 3


class PSA(nn.Module):
    """EPSANet's pyramid split attention (Zhang et al., 2021): SE weights per split, softmax over the S splits."""

    def __init__(self, channel=32, reduction=4, S=4):
        super().__init__()
        self.S = S
        self.convs = nn.ModuleList(
            [nn.Conv2d(channel // S, channel // S, 2 * (i + 1) + 1, padding=i + 1) for i in range(S)]
        )
        self.se_blocks = nn.ModuleList(
            [
                nn.Sequential(
                    nn.AdaptiveAvgPool2d(1),
                    nn.Conv2d(channel // S, channel // (S * reduction), 1, bias=False),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(channel // (S * reduction), channel // S, 1, bias=False),
                    nn.Sigmoid(),
                )
                for _ in range(S)
            ]
        )
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        b, c, h, w = x.size()
        spc = x.view(b, self.S, c // self.S, h, w).clone()
        for idx, conv in enumerate(self.convs):
            spc[:, idx] = conv(spc[:, idx])
        se = torch.stack([se(spc[:, idx]) for idx, se in enumerate(self.se_blocks)], dim=1)  # b, S, c/S, 1, 1
        softmax_out = self.softmax(se)
        return (spc * softmax_out).view(b, -1, h, w)


class ParallelPolarizedSelfAttention(nn.Module):
    """Polarized self-attention (Liu et al., 2021), parallel form: a channel branch (softmax over positions
    pools the values, sigmoid gates channels) and a spatial branch (softmax over channels, sigmoid gates pixels)."""

    def __init__(self, channel=32):
        super().__init__()
        self.ch_wv = nn.Conv2d(channel, channel // 2, 1)
        self.ch_wq = nn.Conv2d(channel, 1, 1)
        self.softmax_channel = nn.Softmax(1)
        self.softmax_spatial = nn.Softmax(-1)
        self.ch_wz = nn.Conv2d(channel // 2, channel, 1)
        self.ln = nn.LayerNorm(channel)
        self.sigmoid = nn.Sigmoid()
        self.sp_wv = nn.Conv2d(channel, channel // 2, 1)
        self.sp_wq = nn.Conv2d(channel, channel // 2, 1)
        self.agp = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        b, c, h, w = x.size()
        channel_wv = self.ch_wv(x).reshape(b, c // 2, -1)
        channel_wq = self.softmax_channel(self.ch_wq(x).reshape(b, -1, 1))  # b, hw, 1: over positions
        channel_wz = torch.matmul(channel_wv, channel_wq).unsqueeze(-1)
        channel_weight = self.sigmoid(self.ln(self.ch_wz(channel_wz).reshape(b, c, 1).permute(0, 2, 1)))
        channel_out = channel_weight.permute(0, 2, 1).reshape(b, c, 1, 1) * x
        spatial_wv = self.sp_wv(x).reshape(b, c // 2, -1)
        spatial_wq = self.softmax_spatial(self.agp(self.sp_wq(x)).permute(0, 2, 3, 1).reshape(b, 1, c // 2))
        spatial_weight = self.sigmoid(torch.matmul(spatial_wq, spatial_wv).reshape(b, 1, h, w))
        return spatial_weight * x + channel_out


class SpatialGroupEnhance(nn.Module):
    """SGE (Li et al., 2019): one spatial gate per channel group, the groups in the batch axis."""

    def __init__(self, groups=4):
        super().__init__()
        self.groups = groups
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.weight = nn.Parameter(torch.randn(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.randn(1, groups, 1, 1))
        self.sig = nn.Sigmoid()

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b * self.groups, -1, h, w)
        xn = (x * self.avg_pool(x)).sum(dim=1, keepdim=True)
        t = xn.view(b * self.groups, -1)
        t = (t - t.mean(dim=1, keepdim=True)) / (t.std(dim=1, keepdim=True) + 1e-5)
        t = t.view(b, self.groups, h, w) * self.weight + self.bias
        x = x * self.sig(t.view(b * self.groups, 1, h, w))
        return x.view(b, c, h, w)


class DoubleAttention(nn.Module):
    """A^2-Nets (Chen et al., NeurIPS 2018) as External-Attention writes it: both softmaxes over the c_n descriptors
    (dim=1; the paper normalises the gather maps over positions)."""

    def __init__(self, in_channels=32, c_m=16, c_n=4):
        super().__init__()
        self.c_m, self.c_n = c_m, c_n
        self.convA = nn.Conv2d(in_channels, c_m, 1)
        self.convB = nn.Conv2d(in_channels, c_n, 1)
        self.convV = nn.Conv2d(in_channels, c_n, 1)
        self.conv_reconstruct = nn.Conv2d(c_m, in_channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        A = self.convA(x).view(b, self.c_m, -1)
        attention_maps = F.softmax(
            self.convB(x).view(b, self.c_n, -1), dim=1
        )  # over c_n, as upstream (the paper: positions)
        attention_vectors = F.softmax(self.convV(x).view(b, self.c_n, -1), dim=1)  # over the c_n descriptors
        global_descriptors = torch.bmm(A, attention_maps.permute(0, 2, 1))
        return self.conv_reconstruct(torch.matmul(global_descriptors, attention_vectors).view(b, self.c_m, h, w))


class CoTAttention(nn.Module):
    """Contextual transformer (Li et al., 2021): a softmax over positions for every channel, times the values."""

    def __init__(self, dim=32, kernel_size=3):
        super().__init__()
        self.kernel_size = kernel_size
        self.key_embed = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=4, bias=False),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
        )
        self.value_embed = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim))
        self.attention_embed = nn.Sequential(
            nn.Conv2d(2 * dim, dim // 2, 1, bias=False),
            nn.BatchNorm2d(dim // 2),
            nn.ReLU(),
            nn.Conv2d(dim // 2, kernel_size * kernel_size * dim, 1),
        )

    def forward(self, x):
        bs, c, h, w = x.shape
        k1 = self.key_embed(x)
        v = self.value_embed(x).view(bs, c, -1)
        att = self.attention_embed(torch.cat([k1, x], dim=1)).reshape(bs, c, self.kernel_size**2, h, w)
        att = att.mean(2, keepdim=False).view(bs, c, -1)
        k2 = (F.softmax(att, dim=-1) * v).view(bs, c, h, w)
        return k1 + k2


class ParNetAttention(nn.Module):
    """ParNet's skip-squeeze-excitation (Goyal et al., 2021): a channel gate on the input, beside two convs."""

    def __init__(self, channel=32):
        super().__init__()
        self.sse = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channel, channel, 1), nn.Sigmoid())
        self.conv1x1 = nn.Sequential(nn.Conv2d(channel, channel, 1), nn.BatchNorm2d(channel))
        self.conv3x3 = nn.Sequential(nn.Conv2d(channel, channel, 3, padding=1), nn.BatchNorm2d(channel))
        self.silu = nn.SiLU()

    def forward(self, x):
        return self.silu(self.conv1x1(x) + self.conv3x3(x) + self.sse(x) * x)


class BAMBlock(nn.Module):
    """BAM (Park et al., BMVC 2018): a channel and a spatial branch summed, w = sigmoid(sum), y = (1 + w) * x."""

    def __init__(self, channel=32, reduction=4, dilation=2):
        super().__init__()
        self.ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channel, channel // reduction),
            nn.ReLU(),
            nn.Linear(channel // reduction, channel),
        )
        self.sa = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1),
            nn.ReLU(),
            nn.Conv2d(channel // reduction, channel // reduction, 3, padding=dilation, dilation=dilation),
            nn.ReLU(),
            nn.Conv2d(channel // reduction, 1, 1),
        )
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        sa = self.sa(x).expand_as(x)
        ca = self.ca(x).view(x.shape[0], -1, 1, 1).expand_as(x)
        weight = self.sigmoid(sa + ca)
        return (1 + weight) * x


class ScaledDotProductAttention(nn.Module):
    """External-Attention's token attention: softmax(q k^T / sqrt(d_k)) v over (B, N, d) tokens."""

    def __init__(self, d_model=32, h=1):
        super().__init__()
        self.h, self.d_k = h, d_model // h
        self.fc_q, self.fc_k, self.fc_v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.fc_o = nn.Linear(d_model, d_model)

    def forward(self, q_in, k_in, v_in):
        b, n, _ = q_in.shape
        q = self.fc_q(q_in).view(b, n, self.h, self.d_k).permute(0, 2, 1, 3)
        k = self.fc_k(k_in).view(b, n, self.h, self.d_k).permute(0, 2, 3, 1)
        v = self.fc_v(v_in).view(b, n, self.h, self.d_k).permute(0, 2, 1, 3)
        att = torch.softmax(torch.matmul(q, k) / self.d_k**0.5, -1)
        return self.fc_o(torch.matmul(att, v).permute(0, 2, 1, 3).contiguous().view(b, n, self.h * self.d_k))


class PositionAttentionModule(nn.Module):
    """External-Attention's DANet position branch: a 3x3 conv, then token attention over the H*W positions."""

    def __init__(self, d_model=32):
        super().__init__()
        self.cnn = nn.Conv2d(d_model, d_model, 3, padding=1)
        self.pa = ScaledDotProductAttention(d_model)

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.cnn(x).view(b, c, -1).permute(0, 2, 1)
        return self.pa(y, y, y)


class S2Attention(nn.Module):
    """S2-MLPv2's split attention: a softmax over the 3 shifted branches, per channel."""

    def __init__(self, channels=32):
        super().__init__()
        self.mlp1 = nn.Linear(channels, channels * 3)
        self.mlp2 = nn.Linear(channels, channels)
        self.mlp_a = nn.Linear(channels, channels, bias=False)
        self.mlp_b = nn.Linear(channels, channels * 3)

    def forward(self, x):
        b, c, h, w = x.size()
        x = self.mlp1(x.permute(0, 2, 3, 1))
        x_all = torch.stack(x.chunk(3, dim=-1), 1).reshape(b, 3, -1, c)  # b, k, hw, c
        a = self.mlp_b(F.gelu(self.mlp_a(x_all.sum(1).sum(1))))
        hat_a = F.softmax(a.reshape(b, 3, c), dim=1)  # over the 3 branches
        out = (hat_a.unsqueeze(-2) * x_all).sum(1).reshape(b, h, w, c)
        return self.mlp2(out).permute(0, 3, 1, 2)


class SRM(nn.Module):
    """SRM (Lee et al., ICCV 2019), a channel gate written with torch.sigmoid: style pooling (each channel's mean
    and standard deviation), a fully connected layer per channel, batch norm, g = sigmoid(...), y = x * g."""

    def __init__(self, channel=32):
        super().__init__()
        self.cfc = nn.Parameter(torch.zeros(channel, 2))
        self.bn = nn.BatchNorm1d(channel)

    def gate(self, x):
        b, c, _, _ = x.shape
        flat = x.view(b, c, -1)
        style = torch.stack((flat.mean(-1), flat.std(-1)), -1)  # b, c, 2
        return torch.sigmoid(self.bn((style * self.cfc).sum(-1))).view(b, c, 1, 1)

    def forward(self, x):
        return x * self.gate(x)


class StripGate(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021) without its shared transform: a row gate from the rows'
    means and a column gate from the columns' means, each from its own 1x1 conv and torch.sigmoid;
    y = x * a_h * a_w."""

    def __init__(self, channel=32):
        super().__init__()
        self.rows = nn.Conv2d(channel, channel, 1)
        self.columns = nn.Conv2d(channel, channel, 1)

    def gates(self, x):
        return torch.sigmoid(self.rows(x.mean(3, keepdim=True))), torch.sigmoid(self.columns(x.mean(2, keepdim=True)))

    def forward(self, x):
        a_h, a_w = self.gates(x)
        return x * a_h * a_w
