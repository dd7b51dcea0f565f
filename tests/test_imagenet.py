"""Real ImageNet classifiers from timm: every listed architecture is captured, and weights load from a file."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from attnviz.analysis.forward import analyse_classifier
from attnviz.capture import capture
from attnviz.models import CheckpointError, imagenet
from attnviz.models.imagenet import (
    IMAGENET_MODELS,
    TRANSFORMER_KINDS,
    ImageNetWeightsError,
    find_weights_file,
    load_imagenet_model,
    top_classes,
)

GATED = {"EcaModule", "SEModule", "SqueezeExcite"}


@pytest.mark.parametrize("arch", [a for a, (kind, _) in IMAGENET_MODELS.items() if kind not in TRANSFORMER_KINDS])
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
    save_file(
        {k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "efficientnet_b0.safetensors")
    )
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


def test_random_weights_are_the_same_in_every_load_and_leave_the_global_generator_alone(tmp_path, monkeypatch):
    """Two processes (or two loads) show the same untrained network, so a shared link shows the same maps; the
    caller's random stream goes on as if nothing had been drawn."""
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first, weights = load_imagenet_model("mobilenetv3_large_100", tmp_path)
    assert torch.equal(torch.rand(3), expected_next)
    second, _ = load_imagenet_model("mobilenetv3_large_100", tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert f"seed {imagenet.RANDOM_WEIGHTS_SEED}" in weights.description


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


def test_local_weights_that_do_not_fit_or_do_not_read_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: pytest.fail("the hub must not be tried"))
    save_file(
        {"conv_stem.weight": torch.zeros(8, 3, 3, 3), "head.extra": torch.zeros(1)},
        str(tmp_path / "efficientnet_b0.safetensors"),
    )
    with pytest.raises(ImageNetWeightsError) as error:
        load_imagenet_model("efficientnet_b0", tmp_path)
    lines = str(error.value).splitlines()
    assert lines[0] == "efficientnet_b0.safetensors does not fit efficientnet_b0:"
    assert lines[1].startswith("  missing (") and "more)" in lines[1]
    assert lines[2:] == [
        "  unexpected (1): head.extra",
        "  shape mismatch (1): conv_stem.weight: file (8, 3, 3, 3) vs model (32, 3, 3, 3)",
    ]
    assert isinstance(error.value, CheckpointError) and error.value.__suppress_context__
    # a text file under a weights name: one line, no SafetensorError or UnpicklingError out of the loader
    for name in ("efficientnet_b0.safetensors", "mobilenetv3_large_100.pth"):
        (tmp_path / name).write_text("not weights\n")
        with pytest.raises(ImageNetWeightsError) as error:
            load_imagenet_model(name.split(".")[0], tmp_path)
        assert name in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_local_weights_load_without_keeping_a_second_copy_in_the_config(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: pytest.fail("the hub must not be tried"))
    reference = timm.create_model("mobilenetv3_large_100", pretrained=False)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
        tmp_path / "mobilenetv3_large_100.pth",
    )  # a DataParallel checkpoint in a wrapper
    model, weights = load_imagenet_model("mobilenetv3_large_100", tmp_path)
    assert weights.origin == "file"
    assert torch.equal(model.state_dict()["conv_stem.weight"], reference.state_dict()["conv_stem.weight"])
    assert "state_dict" not in model.pretrained_cfg or model.pretrained_cfg["state_dict"] is None


def test_hub_probe_is_bounded_as_a_whole_name_lookup_included(monkeypatch):
    import socket
    import threading
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(imagenet, "_reachable", {})
    release = threading.Event()

    def slow_lookup(*args, **kwargs):
        release.wait(30)  # a resolver that does not answer
        raise socket.gaierror("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    try:
        start = time.monotonic()
        assert imagenet.hub_reachable(timeout=0.3) is False
        assert time.monotonic() - start < 2
    finally:
        release.set()  # the probe thread ends now, not 30 s later
    assert imagenet._reachable["hub"][1] is False
