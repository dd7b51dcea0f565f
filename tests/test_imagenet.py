"""Real ImageNet classifiers from timm: every listed architecture is captured, and weights load from a file."""
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from attnviz.analysis import analyse_classifier
from attnviz.capture import capture
from attnviz.models import imagenet
from attnviz.models.imagenet import IMAGENET_MODELS, find_weights_file, load_imagenet_model, top_classes

GATED = {"EcaModule", "SEModule", "SqueezeExcite"}


@pytest.mark.parametrize("arch", list(IMAGENET_MODELS))
def test_every_listed_architecture_gives_one_record_per_attention_module(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False).eval()
    modules = {name: m for name, m in model.named_modules() if type(m).__name__ in GATED}
    assert modules, arch
    with torch.no_grad(), capture(model) as rec:
        model(torch.rand(1, 3, 96, 96))
    assert list(rec) == list(modules)  # one record each, in call order, under the module's own name
    kind = IMAGENET_MODELS[arch][0]
    hard_gate = arch.startswith("mobilenetv3")  # hard sigmoid: exactly 0 or 1 is possible
    for name, record in rec.items():
        assert record.kind == kind
        channels = record.weights.shape[1]
        assert record.weights.shape == (1, channels)
        low, high = float(record.weights.min()), float(record.weights.max())
        assert (0 <= low and high <= 1) if hard_gate else (0 < low and high < 1), (name, low, high)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_weights_come_from_a_local_file_the_way_timm_loads_them(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: pytest.fail("the hub must not be tried"))
    torch.manual_seed(1)
    reference = timm.create_model("efficientnet_b0", pretrained=False)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
              str(tmp_path / "efficientnet_b0.safetensors"))
    model, weights = load_imagenet_model("efficientnet_b0", tmp_path)
    assert weights.origin == "file" and weights.trained and "efficientnet_b0.safetensors" in weights.description
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    # the hub's own layout is found too
    (tmp_path / "seresnet50").mkdir()
    (tmp_path / "seresnet50" / "model.safetensors").write_bytes(b"x")
    assert find_weights_file("seresnet50", tmp_path) == tmp_path / "seresnet50" / "model.safetensors"
    assert find_weights_file("seresnet50", None) is None


def test_without_file_or_hub_the_weights_are_random_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    model, weights = load_imagenet_model("mobilenetv3_large_100", tmp_path)
    assert weights.origin == "random" and not weights.trained and "random weights" in weights.description
    with pytest.raises(ValueError, match="unknown ImageNet model"):
        load_imagenet_model("resnet18", tmp_path)


def test_hub_probe_honours_offline_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert imagenet.hub_reachable() is False


def test_classifier_analysis_uses_timm_preprocessing_and_reports_top_5():
    torch.manual_seed(2)
    model = timm.create_model("ecaresnet26t", pretrained=False).eval()
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    analysis = analyse_classifier(model, image, "ecaresnet26t")
    config = timm.data.resolve_model_data_config(model)
    expected = timm.data.create_transform(**config)(Image.fromarray(image)).unsqueeze(0)
    with torch.no_grad():
        logits = model(expected)
    assert analysis.top_classes == top_classes(logits)
    assert len(analysis.top_classes) == 5 and analysis.prediction is None
    probabilities = [p for _, _, p in analysis.top_classes]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert len(analysis.channel_layers(("eca",))) == 8
