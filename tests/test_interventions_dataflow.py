"""Switching the gates the dataflow reader finds (attnviz.capture.dataflow, through
attnviz.capture.interventions), against hand-written copies of the modules: "off" equals the module with its gate
replaced by ones, "flat" the module with its gate replaced by its mean over the axes it selects on; the other
ops run as written. And a hub model holding a copied DANet PAM and a dataflow gate: "off" on each equals an
independent replacement of each (gamma 0 in a deep copy; the gate module returning its input)."""

import copy
import textwrap

import fixtures_dataflow as ea
import pytest
import torch
from fixtures_attention import randomise
from torch import nn

from attnviz.capture import capture
from attnviz.capture.interventions import FLAT, OFF, Intervention, InterventionError, intervened, switchable
from attnviz.models import load_user_model

# float32 outputs of a few layers, the same products in another association (a mean over <= 64 gate values
# summed in another order): a few ulps of values ~1-10
TOLERANCE = 1e-6


def _net(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return randomise(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), module))


def _photo() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 8, 8)


def _run(model: nn.Module, intervention: Intervention | None = None, x: torch.Tensor | None = None):
    with torch.no_grad(), capture(model) as rec, intervened(model, intervention):
        return model(_photo() if x is None else x), rec.records()


def _plain(model: nn.Module, x: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model(_photo() if x is None else x)


class Rewritten(nn.Module):
    """The module `original` with its forward rewritten by hand: forward(original, x)."""

    def __init__(self, original: nn.Module, forward):
        super().__init__()
        self.original, self.rewritten = original, forward

    def forward(self, x):
        return self.rewritten(self.original, x)


def _with(model: nn.Module, path: str, forward) -> nn.Module:
    """A deep copy of `model` whose module at `path` runs `forward(module, x)` instead of its own."""
    copied = copy.deepcopy(model)
    parent_path, _, attribute = path.rpartition(".")
    parent = copied.get_submodule(parent_path) if parent_path else copied
    setattr(parent, attribute, Rewritten(getattr(parent, attribute), forward))
    return copied


# Each module by hand, its gate passed through gate_of(gate, the axes of its (B, C, H, W) it selects on)


def _srm(gate_of):
    """SRM, x * its channel gate."""
    return lambda module, x: x * gate_of(module.gate(x), (1,))


def _strip(gate_of):
    """StripGate, x * its row gate * its column gate."""

    def forward(module, x):
        a_h, a_w = module.gates(x)
        return x * gate_of(a_h, (2,)) * gate_of(a_w, (3,))

    return forward


def _triplet_gate(gate_of):
    """TripletAttention's _AttentionGate, x * sigmoid(conv(zpool(x))), a gate on its (permuted) plane."""
    return lambda module, x: x * gate_of(torch.sigmoid(module.conv(module.compress(x))), (2, 3))


def _sge(gate_of):
    """SGE, each group's pixel gate."""

    def forward(module, x):
        b, c, h, w = x.shape
        x = x.view(b * module.groups, -1, h, w)
        t = (x * module.avg_pool(x)).sum(dim=1, keepdim=True).view(b * module.groups, -1)
        t = (t - t.mean(dim=1, keepdim=True)) / (t.std(dim=1, keepdim=True) + 1e-5)
        t = t.view(b, module.groups, h, w) * module.weight + module.bias
        return (x * gate_of(torch.sigmoid(t.view(b * module.groups, 1, h, w)), (2, 3))).view(b, c, h, w)

    return forward


def _shuffle(channel_gate, element_gate):
    """ShuffleAttention, its channel gate through channel_gate and its element gate through element_gate (each
    group in the batch axis over its own channels / elements)."""

    def forward(module, x):
        b, c, h, w = x.shape
        x = x.view(b * module.G, -1, h, w)
        x_0, x_1 = x.chunk(2, dim=1)
        channel = torch.sigmoid(module.cweight * x_0.mean((2, 3), keepdim=True) + module.cbias)
        x_channel = x_0 * channel_gate(channel, (1,))
        x_spatial = x_1 * element_gate(torch.sigmoid(module.sweight * module.gn(x_1) + module.sbias), (1, 2, 3))
        out = torch.cat([x_channel, x_spatial], dim=1).view(b, -1, h, w)
        return out.reshape(b, 2, -1, h, w).permute(0, 2, 1, 3, 4).reshape(b, -1, h, w)

    return forward


def _bam(gate_of):
    """BAM, (1 + w) * x: the gate as it multiplies the features is 1 + w, one weight per element."""
    return lambda module, x: gate_of(1 + torch.sigmoid(module.sa(x) + module.ca(x)[:, :, None, None]), (1, 2, 3)) * x


def _keep(gate, axes):
    return gate


def _ones(gate, axes):
    return torch.ones_like(gate)


def _mean(gate, axes):
    return gate.mean(axes, keepdim=True)


# module, the key of its gate's record, its forward by hand with the gate passed through a function
CASES = {
    "SRM (torch.sigmoid): a channel gate": (lambda: ea.SRM(32), "1", _srm),
    "StripGate: a row and a column gate, each per channel": (lambda: ea.StripGate(32), "1", _strip),
    "TripletAttention: its C x W plane gate": (ea.TripletAttention, "1.cw", _triplet_gate),
    "TripletAttention: its H x W pixel gate": (ea.TripletAttention, "1.hw", _triplet_gate),
    "SGE: a pixel gate per group": (lambda: ea.SpatialGroupEnhance(4), "1", _sge),
    "ShuffleAttention: its channel gate": (
        lambda: ea.ShuffleAttention(32, G=4),
        "1:channel",
        lambda gate_of: _shuffle(gate_of, _keep),
    ),
    "ShuffleAttention: its element gate": (
        lambda: ea.ShuffleAttention(32, G=4),
        "1:elements",
        lambda gate_of: _shuffle(_keep, gate_of),
    ),
    "BAM: off lets the features pass unscaled": (lambda: ea.BAMBlock(32), "1", _bam),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", [OFF, FLAT])
def test_a_switched_gate_equals_the_module_by_hand_with_ones_or_its_mean(case, mode):
    build, key, by_hand = CASES[case]
    model = _net(build())
    plain, records = _run(model)
    assert key in switchable(records.items()), records.keys()
    path = key.partition(":")[0]
    torch.testing.assert_close(_plain(_with(model, path, by_hand(_keep))), plain, rtol=0, atol=TOLERANCE)
    switched, switched_records = _run(model, Intervention(mode, (key,)))
    torch.testing.assert_close(
        switched, _plain(_with(model, path, by_hand(_ones if mode == OFF else _mean))), rtol=0, atol=TOLERANCE
    )
    assert (switched - plain).abs().max() > 1e-3, "the gate did something to switch"
    assert switched_records.keys() == records.keys()  # the pass records what it computed, as intervened


def test_off_on_triplet_gate_equals_it_returning_its_input_times_one():
    model = _net(ea.TripletAttention())
    switched, _ = _run(model, Intervention(OFF, ("1.cw", "1.hc")))
    copied = copy.deepcopy(model)
    copied[1].cw, copied[1].hc = nn.Identity(), nn.Identity()
    assert torch.equal(switched, _plain(copied))  # x * 1 is x: exact


@pytest.mark.parametrize(
    "build", [ea.TripletAttention, lambda: ea.ShuffleAttention(32, G=4), lambda: ea.ParallelPolarizedSelfAttention(32)]
)
def test_no_intervention_leaves_the_output_unchanged_to_the_last_bit(build):
    model = _net(build())
    assert torch.equal(_run(model)[0], _plain(model))
    assert torch.equal(_run(model, None)[0], _plain(model))


def test_switchable_lists_gates_by_their_keys_and_no_softmax():
    _, records = _run(_net(ea.ParallelPolarizedSelfAttention(32)))
    assert list(records) == ["1:pooling", "1:channels", "1:channel", "1:spatial"]
    assert switchable(records.items()) == ["1:channel", "1:spatial"]
    _, records = _run(_net(ea.SKAttention(32)))  # branch weights: a softmax, nothing to switch
    assert records and switchable(records.items()) == []


def test_gate_keys_that_name_nothing_or_something_else_are_refused():
    model = _net(ea.ShuffleAttention(32, G=4))
    with pytest.raises(InterventionError, match="'2:channel'"):
        _run(model, Intervention(OFF, ("2:channel",)))
    with pytest.raises(InterventionError, match="1:chanel: no gate"):
        _run(model, Intervention(OFF, ("1:chanel",)))
    with pytest.raises(InterventionError, match="1: its call made 2 records"):
        _run(model, Intervention(FLAT, ("1",)))  # the module, whose two gates have their own keys
    with pytest.raises(InterventionError, match="capture"), intervened(model, Intervention(OFF, ("1:channel",))):
        pass


# A hub model (hubconf.py) with a copy of DANet's PAM_Module (found by structure) and a pixel gate written with
# torch.sigmoid (found by the dataflow reader).
HUBCONF = textwrap.dedent('''
    dependencies = ["torch"]

    import torch
    import torch.nn.functional as F
    from torch import nn


    class PAM_Module(nn.Module):
        """Position attention module, as DANet's code writes it."""

        def __init__(self, in_dim):
            super().__init__()
            self.chanel_in = in_dim
            self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
            self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
            self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
            self.gamma = nn.Parameter(torch.zeros(1))
            self.softmax = nn.Softmax(dim=-1)

        def forward(self, x):
            m_batchsize, C, height, width = x.size()
            proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)
            proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)
            energy = torch.bmm(proj_query, proj_key)
            attention = self.softmax(energy)
            proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)
            out = torch.bmm(proj_value, attention.permute(0, 2, 1))
            out = out.view(m_batchsize, C, height, width)
            return self.gamma * out + x


    class PixelGate(nn.Module):
        """Where to look: one weight per pixel from a 3x3 conv."""

        def __init__(self, channels):
            super().__init__()
            self.score = nn.Conv2d(channels, 1, 3, padding=1)

        def forward(self, x):
            return x * torch.sigmoid(self.score(x))


    class GatedDANet(nn.Module):
        def __init__(self, num_classes=5):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.pam = PAM_Module(16)
            self.gate = PixelGate(16)
            self.classifier = nn.Conv2d(16, num_classes, 1)

        def forward(self, x):
            logits = self.classifier(self.gate(self.pam(self.stem(x))))
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


    def gated_danet(num_classes=5):
        """A tiny DANet-style segmentation model with a pixel gate after its position attention."""
        return GatedDANet(num_classes)
''')


def test_a_hub_models_pam_copy_and_dataflow_gate_switch_off_as_independent_replacements(tmp_path):
    repo = tmp_path / "hubrepo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF)
    user = load_user_model(f"{repo}:gated_danet", input_size=(32, 32))
    model = randomise(user.model)  # gamma 0.7, every other weight random
    x = torch.rand(1, 3, 32, 32)
    plain, records = _run(model, x=x)
    assert records["pam"].reader == "structure" and records["gate"].reader == "dataflow"
    assert switchable(records.items()) == ["pam", "gate"]

    without_pam = copy.deepcopy(model)
    with torch.no_grad():
        without_pam.pam.gamma.zero_()
    without_gate = copy.deepcopy(model)
    without_gate.gate.forward = lambda features: features  # the gate module returns its input
    without_both = copy.deepcopy(without_pam)
    without_both.gate.forward = lambda features: features
    for keys, replaced in ((("pam",), without_pam), (("gate",), without_gate), (("pam", "gate"), without_both)):
        switched, _ = _run(model, Intervention(OFF, keys), x=x)
        torch.testing.assert_close(switched, _plain(replaced, x), rtol=0, atol=TOLERANCE)
        assert (switched - plain).abs().max() > 1e-3, keys
