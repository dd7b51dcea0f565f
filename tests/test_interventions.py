"""Interventions (attnviz.capture.interventions) against independent implementations: "off" equals the model
with the module replaced by nn.Identity (gates) or its residual weight set to 0 (DANet's PAM and CAM); "flat"
equals a hand-written forward of the module with its gate averaged or its map made uniform; with no
intervention the logits are unchanged to the last bit."""

import copy

import pytest
import torch
from torch import nn

from attnviz.capture import capture
from attnviz.capture.interventions import FLAT, OFF, Intervention, InterventionError, intervened, switchable
from attnviz.models import build_model
from attnviz.modules import CBAM, ECA, ChannelAttention, CoordinateAttention, PositionAttention, SpatialGate
from attnviz.modules.flexible import FlexibleChannelAttention
from attnviz.modules.se import SqueezeExcitation

# float32 logits of a small network, the same operations in another association: a few ulps of values ~1-10
TOLERANCE = 1e-6


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, width=0.25, blocks=(1, 1, 1, 1)).eval()
    with torch.no_grad():  # trained DANets have alpha, beta != 0; fresh ones start at 0 and would hide the branch
        for module in model.modules():
            if isinstance(module, PositionAttention):
                module.alpha.fill_(0.7)
            if isinstance(module, ChannelAttention):
                module.beta.fill_(-0.4)
    return model


def _photo() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 48, 64)


def _logits(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _run(model, intervention=None):
    with torch.no_grad(), capture(model) as rec, intervened(model, intervention):
        return _logits(model(_photo())), rec


def _paths(model, kind_type) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, kind_type)]


def _replaced(model, paths, make):
    """A deep copy of `model` with each module at `paths` replaced by make(module)."""
    copied = copy.deepcopy(model)
    for path in paths:
        parent_path, _, attribute = path.rpartition(".")
        parent = copied.get_submodule(parent_path) if parent_path else copied
        setattr(parent, attribute, make(getattr(parent, attribute)))
    return copied


def _plain(model) -> torch.Tensor:
    with torch.no_grad():
        return _logits(model(_photo()))


@pytest.mark.parametrize("name", ["fcn-none", "fcn-eca", "danet-se", "danet-cbam"])
def test_no_intervention_leaves_the_logits_unchanged_to_the_last_bit(name):
    model = _model(name)
    logits, _ = _run(model, None)
    assert torch.equal(logits, _plain(model))


@pytest.mark.parametrize("name", ["fcn-eca", "fcn-se", "fcn-flexible", "fcn-cbam", "fcn-ca"])
def test_off_on_the_gates_equals_the_model_with_identity_in_their_place(name):
    model = _model(name)
    with torch.no_grad(), capture(model) as rec:
        model(_photo())
    paths = switchable(rec.items())
    assert paths, "the model has gates"
    logits, _ = _run(model, Intervention(OFF, tuple(paths)))
    expected = _plain(_replaced(model, paths, lambda module: nn.Identity()))
    torch.testing.assert_close(logits, expected, rtol=0, atol=TOLERANCE)
    assert (logits - _plain(model)).abs().max() > 1e-4  # the gates did something to switch off


def test_off_on_danet_equals_alpha_and_beta_zero():
    model = _model("danet-none")
    paths = _paths(model, PositionAttention) + _paths(model, ChannelAttention)
    logits, _ = _run(model, Intervention(OFF, tuple(paths)))
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for module in zeroed.modules():
            if isinstance(module, PositionAttention):
                module.alpha.zero_()
            if isinstance(module, ChannelAttention):
                module.beta.zero_()
    torch.testing.assert_close(logits, _plain(zeroed), rtol=0, atol=TOLERANCE)
    assert (logits - _plain(model)).abs().max() > 1e-4


def _gate_by_hand(gate: nn.Module, x: torch.Tensor):
    """The gate's weights written out from its layers (the papers' formulas), shaped to multiply x."""
    if isinstance(gate, ECA):
        return torch.sigmoid(gate.conv(x.mean((2, 3))[:, None]))[:, 0, :, None, None]
    if isinstance(gate, SqueezeExcitation):
        return torch.sigmoid(gate.fc2(torch.relu(gate.fc1(x.mean((2, 3))))))[:, :, None, None]
    if isinstance(gate, FlexibleChannelAttention):
        return torch.sigmoid(gate.mlp(x.mean((2, 3))) + gate.mlp(x.amax((2, 3))))[:, :, None, None]
    if isinstance(gate, SpatialGate):
        return torch.sigmoid(gate.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
    raise AssertionError(type(gate))


class _FlatGate(nn.Module):
    """A gate module's hand-written flat forward: its weights averaged over the axis it selects on."""

    def __init__(self, gate: nn.Module):
        super().__init__()
        self.gate = gate

    def forward(self, x):
        if isinstance(self.gate, CoordinateAttention):
            a_h, a_w = _coordinate_factors(self.gate, x)
            return x * a_h.mean(2, keepdim=True) * a_w.mean(3, keepdim=True)
        weights = _gate_by_hand(self.gate, x)
        axes = (2, 3) if isinstance(self.gate, SpatialGate) else (1,)
        return x * weights.mean(axes, keepdim=True)


def _coordinate_factors(gate: CoordinateAttention, x: torch.Tensor):
    """(a_h (B, C, H, 1), a_w (B, C, 1, W)) of coordinate attention (Hou et al., CVPR 2021), written out."""
    height, width = x.shape[2:]
    pooled = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], dim=2)
    f = gate.act(gate.bn1(gate.conv1(pooled)))
    a_h = torch.sigmoid(gate.conv_h(f[:, :, :height]))
    a_w = torch.sigmoid(gate.conv_w(f[:, :, height:])).transpose(2, 3)
    return a_h, a_w


@pytest.mark.parametrize("name", ["fcn-eca", "fcn-se", "fcn-flexible", "fcn-ca"])
def test_flat_on_a_gate_equals_the_averaged_gate_by_hand(name):
    model = _model(name)
    with torch.no_grad(), capture(model) as rec:
        model(_photo())
    paths = switchable(rec.items())
    logits, _ = _run(model, Intervention(FLAT, tuple(paths)))
    expected = _plain(_replaced(model, paths, _FlatGate))
    torch.testing.assert_close(logits, expected, rtol=0, atol=TOLERANCE)
    assert (logits - _plain(model)).abs().max() > 1e-4  # flattening changed the answer: the test can fail


def test_flat_on_cbam_averages_each_of_its_two_gates_in_turn():
    model = _model("fcn-cbam")
    cbams = _paths(model, CBAM)
    paths = tuple(f"{path}.{part}" for path in cbams for part in ("channel", "spatial"))
    logits, _ = _run(model, Intervention(FLAT, paths))
    expected = _plain(_replaced(model, paths, _FlatGate))
    torch.testing.assert_close(logits, expected, rtol=0, atol=TOLERANCE)


def test_flat_on_danet_makes_s_and_x_uniform():
    model = _model("danet-none")
    paths = _paths(model, PositionAttention) + _paths(model, ChannelAttention)
    logits, rec = _run(model, Intervention(FLAT, tuple(paths)))

    def uniform_pam(module: PositionAttention):
        def forward(x):  # S = 1/N everywhere: out_i = sum_j D_j / N for every i
            batch, channels, height, width = x.shape
            value = module.value_conv(x).flatten(2)
            uniform = torch.full((height * width, height * width), 1.0 / (height * width))
            return module.alpha * (value @ uniform.T).view(batch, channels, height, width) + x

        return _Lambda(forward)

    def uniform_cam(module: ChannelAttention):
        def forward(x):  # X = 1/C everywhere
            batch, channels, height, width = x.shape
            uniform = torch.full((channels, channels), 1.0 / channels)
            return module.beta * (uniform @ x.flatten(2)).view(batch, channels, height, width) + x

        return _Lambda(forward)

    replaced = _replaced(model, _paths(model, PositionAttention), uniform_pam)
    replaced = _replaced(replaced, _paths(replaced, ChannelAttention), uniform_cam)
    torch.testing.assert_close(logits, _plain(replaced), rtol=0, atol=TOLERANCE)
    assert {name for name in rec} >= set(paths)  # the intervened pass is captured too


class _Lambda(nn.Module):
    def __init__(self, forward):
        super().__init__()
        self._forward = forward

    def forward(self, x):
        return self._forward(x)


def test_unknown_modules_and_modes_are_refused_with_their_names():
    model = _model("fcn-eca")
    with pytest.raises(InterventionError, match="mode"):
        Intervention("dim", ("backbone",))
    with pytest.raises(InterventionError, match="'nowhere'"):
        _run(model, Intervention(OFF, ("nowhere",)))
    with pytest.raises(InterventionError, match="capture"), intervened(model, Intervention(FLAT, ("backbone",))):
        pass
    with pytest.raises(InterventionError, match="flat is not defined"):
        _run(model, Intervention(FLAT, ("backbone.layer1",)))  # a stage of the backbone records nothing itself
