import json

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import resnet18

from attnviz.capture import (
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
    capture,
)
from attnviz.models import CheckpointError, build_model, list_models, load_checkpoint, save_checkpoint
from attnviz.models.backbone import ResNetBackbone
from attnviz.models.checkpoint import scan_checkpoints
from attnviz.models.pretrained import load_backbone_state_dict

EXPECTED_RECORDS = {
    "none": set(),
    "se": {ChannelAttentionRecord},
    "eca": {ChannelAttentionRecord},
    "flexible": {ChannelAttentionRecord},
    "cbam": {ChannelAttentionRecord, SpatialAttentionRecord},
    "ca": {CoordinateAttentionRecord},
}


def test_registry_lists_every_head_and_attention():
    names = list_models()
    assert {"fcn-none", "fcn-se", "fcn-eca", "fcn-flexible", "fcn-cbam", "fcn-ca", "danet-none", "danet-eca"} <= set(
        names
    )
    with pytest.raises(ValueError, match="unknown model"):
        build_model("unet-eca")


@pytest.mark.parametrize("name", list_models())
def test_every_variant_runs_and_records_its_attention(name):
    model = build_model(name, width=0.125).eval()
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad(), capture(model) as rec:
        logits, aux = model.forward_with_aux(x)
    assert logits.shape == (1, 11, 64, 80)
    head, attention = model.config.head, model.config.attention
    assert name == f"{head}-{attention}"
    assert len(aux) == (2 if head == "danet" else 0)
    kinds = {type(r) for r in rec.values()}
    expected = set(EXPECTED_RECORDS[attention])
    if head == "danet":
        expected |= {PositionAttentionRecord, ChannelMapRecord}
    assert kinds == expected
    # 8 BasicBlocks, one attention module each
    assert len([k for k in rec if ".attn" in k and not k.endswith(".spatial")]) == (0 if attention == "none" else 8)


def test_output_stride_8_by_dilation():
    backbone = ResNetBackbone(width=0.125, output_stride=8)
    assert backbone(torch.rand(1, 3, 128, 160)).shape[-2:] == (16, 20)
    backbone = ResNetBackbone(width=0.125, output_stride=32)
    assert backbone(torch.rand(1, 3, 128, 160)).shape[-2:] == (4, 5)


def test_checkpoint_round_trip(tmp_path):
    model = build_model("danet-eca", width=0.125).eval()
    save_checkpoint(model, "danet-eca", {"note": "test"}, tmp_path, half=False)
    card = json.loads((tmp_path / "danet-eca.json").read_text())
    assert card["config"]["width"] == 0.125 and card["note"] == "test"
    loaded, card = load_checkpoint("danet-eca", tmp_path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_checkpoint_mismatch_names_the_keys(tmp_path):
    model = build_model("fcn-eca", width=0.125)
    save_checkpoint(model, "fcn-eca", {}, tmp_path)
    card = json.loads((tmp_path / "fcn-eca.json").read_text())
    card["config"]["attention"] = "se"  # the file has ECA weights, the card now says SE
    (tmp_path / "fcn-eca.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint("fcn-eca", tmp_path)
    assert "backbone.layer1.0.attn.conv.weight" in str(error.value)  # unexpected ECA key
    assert "backbone.layer1.0.attn.fc1.weight" in str(error.value)  # missing SE key

    state = {k: v for k, v in model.state_dict().items()}
    state["head.classifier.weight"] = torch.zeros(3, 16, 1, 1)
    save_file(state, str(tmp_path / "bad.safetensors"))
    (tmp_path / "bad.json").write_text(json.dumps({"config": model.config.to_dict(), "weights": "bad.safetensors"}))
    with pytest.raises(CheckpointError, match="shape mismatch.*head.classifier.weight"):
        load_checkpoint("bad", tmp_path)


def test_checkpoint_refuses_pickles_and_broken_files(tmp_path):
    model = build_model("fcn-none", width=0.125)
    torch.save(model.state_dict(), tmp_path / "pickled.safetensors")  # a pickle in disguise
    (tmp_path / "pickled.json").write_text(json.dumps({"config": model.config.to_dict()}))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint("pickled", tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint("broken", tmp_path)
    with pytest.raises(CheckpointError, match="no model card"):
        load_checkpoint("absent", tmp_path)


def test_imagenet_backbone_weights_load_by_name():
    reference = resnet18(weights=None)  # what torchvision would download, with random values
    model = build_model("fcn-eca", width=1.0)
    report = load_backbone_state_dict(model.backbone, reference.state_dict())
    assert "fc.weight" in report["ignored"]
    assert all(".attn." in k for k in report["kept_initialised"]) and report["kept_initialised"]
    torch.testing.assert_close(model.backbone.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    torch.testing.assert_close(model.backbone.bn1.running_var, reference.bn1.running_var)


def test_imagenet_weights_refused_for_other_widths():
    model = build_model("fcn-none", width=0.5)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_backbone_state_dict(model.backbone, resnet18(weights=None).state_dict())


@pytest.mark.parametrize(
    "card, reason",
    [
        ("null", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('{"config": {"head": "fcn", "attention": "eca", "width": "wide"}}', "width must be a number"),
        ('{"config": {"head": "fcn", "attention": "eca", "blocks": "2222"}}', "blocks must be"),
        ('{"config": {"head": "fcn", "attention": "eca"}, "weights": "../elsewhere.safetensors"}', "file name"),
        ('{"config": {"head": "fcn", "attention": "eca"}, "weights": "/etc/passwd"}', "file name"),
        ('{"config": {"head": "fcn", "attention": "eca"}, "training": []}', "'training' is not a JSON object"),
        ('{"weights": "x.safetensors"}', "no 'config'"),
    ],
)
def test_bad_cards_are_named_with_a_reason_and_the_rest_still_load(tmp_path, card, reason):
    model = build_model("fcn-eca", width=0.125)
    save_checkpoint(model, "fcn-eca", {}, tmp_path)
    save_checkpoint(model, "my model", {}, tmp_path)  # any file name is a checkpoint name
    (tmp_path / "odd.json").write_text(card)
    (tmp_path / "odd.safetensors").write_bytes((tmp_path / "fcn-eca.safetensors").read_bytes())
    usable, problems = scan_checkpoints(tmp_path)
    assert [info.name for info in usable] == ["fcn-eca", "my model"]
    assert set(problems) == {"odd"} and reason in problems["odd"], problems
    with pytest.raises(CheckpointError, match=reason.replace("(", r"\(")):
        load_checkpoint("odd", tmp_path)
    assert usable[1].title == "my model · FCN head · ECA (Efficient Channel Attention) in the backbone"


def test_card_summary_reads_odd_cards_without_failing():
    from attnviz.models.checkpoint import card_summary

    odd = {
        "evaluation": {"miou": "high", "parameters": None},
        "training": {
            "settings": [],
            "history": [
                {"epoch": 1, "loss": 2.0, "val_miou": 0.5},
                {"epoch": "two", "loss": 1.0},
                "junk",
                {"epoch": 3},
            ],
            "wall_time_s": "long",
            "note": 7,
        },
    }
    summary = card_summary(odd)
    assert summary["evaluation"] is None and summary["note"] is None
    assert summary["history"] == [{"epoch": 1, "loss": 2.0, "val_miou": 0.5}]
    assert summary["training"].startswith("Trained ? epochs on ?; batch ?")
    good = card_summary(
        {
            "evaluation": {"miou": 0.5532, "parameters": 3175411},
            "training": {
                "epochs": 6,
                "device": "cpu",
                "wall_time_s": 1673.2,
                "note": "fine-tuned",
                "settings": {"batch_size": 8, "pam_affinity": 1.0},
            },
        }
    )
    assert "**55.3%**" in good["evaluation"] and "parameters 3,175,411" in good["evaluation"]
    assert "in 28 min" in good["training"] and "PAM affinity weight 1.0" in good["training"]
    assert good["note"] == "fine-tuned" and card_summary({}) == {
        "evaluation": None,
        "training": None,
        "note": None,
        "history": [],
    }
