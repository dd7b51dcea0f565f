import threading

import timm
import torch
from timm.layers import EcaModule, SEModule
from timm.layers.cbam import ChannelAttn
from torch import nn
from torchvision.models import mobilenet_v3_small

from attnviz.capture import ChannelAttentionRecord, PositionAttentionRecord, capture, is_recording
from attnviz.modules.danet import DANetHead
from attnviz.modules.eca import ECA


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.eca = ECA(32)
        self.head = DANetHead(32, 5)

    def forward(self, x):
        return self.head(self.eca(self.conv(x))).logits


def test_nothing_recorded_outside_capture():
    model = Tiny().eval()
    assert not is_recording()
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 8))  # no recorder: must not fail or keep state
    assert not any("rec" in k.lower() for k in vars(model.eca))
    with capture(model) as rec:
        assert is_recording()
        with torch.no_grad():
            model(torch.rand(1, 3, 8, 8))
    assert not is_recording()
    assert list(rec) == ["eca", "head.pam", "head.cam"]
    assert isinstance(rec["eca"], ChannelAttentionRecord)
    assert isinstance(rec["head.pam"], PositionAttentionRecord)
    assert len(rec.of_type(PositionAttentionRecord)) == 1


def test_module_called_twice_gets_two_records():
    eca = ECA(8)
    with torch.no_grad(), capture(eca) as rec:
        eca(torch.rand(1, 8, 2, 2))
        eca(torch.rand(1, 8, 2, 2))
    assert list(rec) == ["ECA", "ECA#1"]


def test_threads_share_one_model_without_cross_talk():
    torch.manual_seed(0)
    model = Tiny().eval()
    with torch.no_grad():
        model.head.pam.alpha.fill_(0.5)
    images = [torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    # single-threaded references
    expected = []
    for image in images:
        with torch.no_grad(), capture(model) as rec:
            model(image)
        expected.append((rec["eca"].weights.clone(), rec["head.pam"].row(5).clone(), rec["head.cam"].attention.clone()))

    results: dict[int, tuple] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(images))

    def work(index):
        try:
            barrier.wait()
            for _ in range(5):
                with torch.no_grad(), capture(model) as rec:
                    model(images[index])
                assert len(rec) == 3, list(rec)
                results[index] = (rec["eca"].weights, rec["head.pam"].row(5), rec["head.cam"].attention)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for index in range(len(images)):
        weights, row, cam = results[index]
        torch.testing.assert_close(weights, expected[index][0])
        torch.testing.assert_close(row, expected[index][1])
        torch.testing.assert_close(cam, expected[index][2])
    # the images differ, so their records must too
    assert not torch.allclose(results[0][0], results[1][0])


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_timm_hooks_live_only_while_capturing_and_route_to_each_capture():
    model = timm.create_model("ecaresnet26t", pretrained=False, num_classes=10).eval()
    x = torch.rand(1, 3, 64, 64)
    assert _hooks(model) == 0
    with torch.no_grad(), capture(model) as first:
        assert _hooks(model) > 0
        model(x)
    assert _hooks(model) == 0  # released: the model is left as it was
    with torch.no_grad(), capture(model) as second:
        model(x)
    assert _hooks(model) == 0
    eca_layers = [n for n, m in model.named_modules() if type(m).__name__ == "EcaModule"]
    assert eca_layers and list(first) == eca_layers == list(second)  # once each, not doubled
    name = eca_layers[-1]
    torch.testing.assert_close(first[name].weights, second[name].weights)
    assert ((first[name].weights > 0) & (first[name].weights < 1)).all()
    with torch.no_grad():
        model(x)  # a forward outside capture records nothing anywhere
    assert list(second) == eca_layers


def test_timm_weights_are_what_the_gate_produced():
    # the gate's own output, read by a separate hook, must equal the record: nothing is recomputed
    for module in (EcaModule(64), EcaModule(64, use_mlp=True), SEModule(64), ChannelAttn(64)):
        module.eval()
        seen = []
        handle = module.gate.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.detach().flatten(1)))
        x = torch.randn(2, 64, 5, 5)
        with torch.no_grad(), capture(module) as rec:
            module(x)
        handle.remove()
        record = next(iter(rec.values()))
        assert record.weights.shape == (2, 64), type(module).__name__
        torch.testing.assert_close(record.weights, seen[0])
        assert _hooks(module) == 0
    eca = EcaModule(64)
    with torch.no_grad(), capture(eca) as rec:
        eca(x)
    torch.testing.assert_close(rec["EcaModule"].parts["pooled"], x.mean((2, 3)))
    torch.testing.assert_close(rec["EcaModule"].kernel, eca.conv.weight.flatten())
    cbam = ChannelAttn(64)
    with torch.no_grad(), capture(cbam) as rec:
        cbam(x)
    mlp = lambda pooled: cbam.fc2(cbam.act(cbam.fc1(pooled))).flatten(1)  # noqa: E731
    torch.testing.assert_close(rec["ChannelAttn"].parts["avg_branch"], mlp(x.mean((2, 3), keepdim=True)))
    torch.testing.assert_close(rec["ChannelAttn"].parts["max_branch"], mlp(x.amax((2, 3), keepdim=True)))


def test_torchvision_squeeze_excitation_hooked():
    model = mobilenet_v3_small(weights=None).eval()
    with torch.no_grad(), capture(model) as rec:
        model(torch.rand(1, 3, 64, 64))
    se_names = [n for n, m in model.named_modules() if type(m).__name__ == "SqueezeExcitation"]
    assert list(rec) == se_names
    first = model.get_submodule(se_names[0])
    assert rec[se_names[0]].weights.shape == (1, first.fc2.out_channels)
    assert _hooks(model) == 0


def test_one_set_of_hooks_while_threads_capture_at_once():
    model = timm.create_model("ecaresnet26t", pretrained=False, num_classes=10).eval()
    eca_layers = [n for n, m in model.named_modules() if type(m).__name__ == "EcaModule"]
    x = torch.rand(1, 3, 32, 32)
    counts, barrier = [], threading.Barrier(6)

    def work():
        barrier.wait()
        with torch.no_grad(), capture(model) as rec:
            model(x)
        counts.append(len(rec))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [len(eca_layers)] * 6
    assert _hooks(model) == 0


def test_circular_eca_records_its_weights_but_no_padded_descriptor():
    from timm.layers.eca import CecaModule

    module = CecaModule(64).eval()
    x = torch.randn(1, 64, 5, 5)
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
    record = rec["CecaModule"]
    assert record.weights.shape == (1, 64) and "pooled" not in record.parts and record.kernel is None
    torch.testing.assert_close(out, x * record.weights[:, :, None, None])
