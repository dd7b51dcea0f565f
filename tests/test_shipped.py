"""The shipped checkpoints: each loads by name on the CPU, runs on a CamVid test photo, and is captured."""
import json

import numpy as np
import pytest

from attnviz.analysis import analyse
from attnviz.capture import (ChannelAttentionRecord, ChannelMapRecord, CoordinateAttentionRecord,
                             PositionAttentionRecord, SpatialAttentionRecord)
from attnviz.data.samples import list_samples, load_sample
from attnviz.evaluate import attention_parameters
from attnviz.models import SHIPPED_MODELS, list_checkpoints, load_checkpoint
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

RECORD_TYPES = {"se": ChannelAttentionRecord, "eca": ChannelAttentionRecord, "flexible": ChannelAttentionRecord,
                "cbam": SpatialAttentionRecord, "ca": CoordinateAttentionRecord}


def test_every_promised_model_is_shipped_within_budget():
    assert set(SHIPPED_MODELS) <= set(list_checkpoints()), sorted(set(SHIPPED_MODELS) - set(list_checkpoints()))
    total = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT_DIR.iterdir() if p.is_file())
    assert total < 60 * 2 ** 20


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_runs_on_a_test_photo_and_is_captured(name):
    model, card = load_checkpoint(name, device="cpu")
    sample = load_sample(list_samples()[0])
    assert sample.image.shape == (360, 480, 3)
    analysis = analyse(model, sample.image, name)
    assert analysis.prediction.shape == (360, 480)
    labelled = sample.label != 11
    accuracy = (analysis.prediction[labelled] == sample.label[labelled]).mean()
    assert accuracy > 0.5, f"{name} gets {accuracy:.1%} of the pixels of a test photo right"
    head, attention = model.config.head, model.config.attention
    types = {type(r) for r in analysis.records.values()}
    if attention != "none":
        assert RECORD_TYPES[attention] in types
    if head == "danet":
        assert {PositionAttentionRecord, ChannelMapRecord} <= types
        _, pam = analysis.position
        assert float(pam.row(pam.num_pixels // 2).sum()) == pytest.approx(1.0, abs=1e-4)
    assert card["training"]["epochs"] > 0 and "CC BY-NC 4.0" in card["training"]["data_licence"]
    assert card["evaluation"]["miou"] > 0.3


def test_results_json_matches_the_checkpoints():
    results = json.loads((DEFAULT_CHECKPOINT_DIR / "results.json").read_text())
    assert set(results["models"]) == set(list_checkpoints())
    for name, entry in results["models"].items():
        model, card = load_checkpoint(name)
        assert entry["parameters"] == sum(p.numel() for p in model.parameters())
        assert entry["attention_parameters"] == attention_parameters(model)
        assert entry["config"] == card["config"]
        assert card["evaluation"]["miou"] == entry["miou"]
        assert set(entry["per_class_iou"]) >= {"Road", "Sky", "Car"}
        assert entry["images"] == 233 and entry["split"] == "test"
        ious = [v for v in entry["per_class_iou"].values() if v is not None]
        assert entry["miou"] == pytest.approx(float(np.mean(ious)))
        assert entry["macs"] > 0 and entry["latency_ms"] > 0


def test_attention_parameter_counts_by_hand():
    model, _ = load_checkpoint("fcn-eca") if "fcn-eca" in list_checkpoints() else (None, None)
    if model is None:
        pytest.skip("fcn-eca not shipped")
    # ECA adds exactly k weights per layer: sum of the kernel sizes of the 8 blocks
    kernels = [m.attn.conv.kernel_size[0] for layer in (model.backbone.layer1, model.backbone.layer2,
                                                         model.backbone.layer3, model.backbone.layer4) for m in layer]
    assert attention_parameters(model) == sum(kernels)
