import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.layers.cbam import CbamModule

from attnviz.capture import capture
from attnviz.modules import ATTENTION_KINDS, make_attention
from attnviz.modules.cbam import CBAM
from attnviz.modules.coord import CoordinateAttention
from attnviz.modules.flexible import FlexibleChannelAttention
from attnviz.modules.se import SqueezeExcitation


def _mlp(x, layer1, layer2):
    return layer2.weight @ torch.relu(layer1.weight @ x + layer1.bias) + layer2.bias


def test_flexible_weights_equal_sigmoid_of_mlp_avg_plus_mlp_max(rng):
    module = FlexibleChannelAttention(32, reduction=4)
    x = torch.randn(2, 32, 6, 7, generator=rng)
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
    l1, l2 = module.mlp[0], module.mlp[2]
    for b in range(2):
        avg = x[b].reshape(32, -1).mean(1)
        mx = x[b].reshape(32, -1).max(1).values
        a, m = _mlp(avg, l1, l2), _mlp(mx, l1, l2)
        r = rec["FlexibleChannelAttention"]
        torch.testing.assert_close(r.parts["avg_branch"][b], a.detach())
        torch.testing.assert_close(r.parts["max_branch"][b], m.detach())
        torch.testing.assert_close(r.weights[b], torch.sigmoid(a + m).detach())
        torch.testing.assert_close(out[b], x[b] * torch.sigmoid(a + m).detach()[:, None, None])


def test_se_equals_formula(rng):
    module = SqueezeExcitation(32, reduction=4)
    x = torch.randn(1, 32, 5, 5, generator=rng)
    with torch.no_grad():
        w = torch.sigmoid(_mlp(x[0].reshape(32, -1).mean(1), module.fc1, module.fc2))
        torch.testing.assert_close(module(x)[0], x[0] * w[:, None, None])
    assert module.fc1.out_features == 8


def test_cbam_spatial_gate_equals_formula(rng):
    module = CBAM(16, reduction=4)
    x = torch.randn(1, 16, 9, 9, generator=rng)
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
    with torch.no_grad():
        xc = module.channel(x)
        pooled = torch.stack([xc.mean(1), xc.amax(1)], 1)  # [mean; max] as in the paper
        gate = torch.sigmoid(F.conv2d(pooled, module.spatial.conv.weight, padding=3))
    assert set(rec) == {"channel", "spatial"}
    torch.testing.assert_close(rec["spatial"].map, gate[:, 0])
    torch.testing.assert_close(out, xc * gate)


def test_coordinate_attention_equals_explicit_formula(rng):
    module = CoordinateAttention(16, reduction=4).eval()
    with torch.no_grad():  # non-trivial BN statistics
        module.bn1.running_mean.uniform_(-0.5, 0.5)
        module.bn1.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 16, 5, 7, generator=rng)
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
        z_h = x[0].mean(2)  # (C, H)
        z_w = x[0].mean(1)  # (C, W)
        w1, b1 = module.conv1.weight[:, :, 0, 0], module.conv1.bias
        bn = module.bn1

        def transform(z):
            f = w1 @ z + b1[:, None]
            f = (f - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
            f = f * bn.weight[:, None] + bn.bias[:, None]
            return f * torch.clamp(f + 3, 0, 6) / 6  # h-swish

        a_h = torch.sigmoid(module.conv_h.weight[:, :, 0, 0] @ transform(z_h) + module.conv_h.bias[:, None])
        a_w = torch.sigmoid(module.conv_w.weight[:, :, 0, 0] @ transform(z_w) + module.conv_w.bias[:, None])
    r = rec["CoordinateAttention"]
    torch.testing.assert_close(r.height_weights[0], a_h)
    torch.testing.assert_close(r.width_weights[0], a_w)
    torch.testing.assert_close(out[0], x[0] * a_h[:, :, None] * a_w[:, None, :])


def test_every_kind_keeps_shape_and_unknown_kind_is_rejected(rng):
    x = torch.randn(1, 24, 4, 4, generator=rng)
    for kind in ATTENTION_KINDS:
        assert make_attention(kind, 24)(x).shape == x.shape
    try:
        make_attention("nope", 24)
    except ValueError as error:
        assert "nope" in str(error)
    else:
        raise AssertionError("unknown kind accepted")


def test_timm_cbam_captured_by_hooks_reproduces_its_output(rng):
    """Third-party modules: the hook's weights, applied to the input, give timm's own output."""
    module = CbamModule(32, rd_ratio=1 / 4).eval()
    x = torch.randn(2, 32, 6, 6, generator=rng)
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
    channel, spatial = rec["channel"], rec["spatial"]
    x_channel = x * channel.weights[:, :, None, None]
    torch.testing.assert_close(out, x_channel * spatial.map[:, None])
    torch.testing.assert_close(
        channel.weights, torch.sigmoid(channel.parts["avg_branch"] + channel.parts["max_branch"])
    )


def test_branch_statistics_by_hand():
    from attnviz.modules.flexible import branch_statistics

    avg = np.array([1.0, -2.0, 0.5, 0.0])
    mx = np.array([2.0, 1.0, -3.0, 0.1])
    dominant, correlation = branch_statistics(avg, mx)
    assert dominant == pytest.approx(3 / 4)  # |mx| > |avg| in channels 0, 2, 3
    assert correlation == pytest.approx(np.corrcoef(avg, mx)[0, 1])


def test_weight_spread_and_classes_present():
    from attnviz.analysis.forward import classes_present, mean_weight_spread
    from attnviz.capture import ChannelAttentionRecord

    records = [
        ChannelAttentionRecord("se", torch.tensor([[0.0, 1.0]])),
        ChannelAttentionRecord("se", torch.tensor([[0.5, 0.5]])),
    ]
    assert mean_weight_spread(records) == pytest.approx((float(torch.tensor([0.0, 1.0]).std()) + 0.0) / 2)
    assert classes_present(np.array([[3, 1]]), None, np.array([[1, 8]])).tolist() == [1, 3, 8]
