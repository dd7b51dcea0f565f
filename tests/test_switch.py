"""attnviz.analysis.switch: a switch's effect on one photo, against hand-computed values; the groups of modules a
model can switch; an analysis with an intervention through the forward entry."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from attnviz.analysis.forward import analyse
from attnviz.analysis.switch import (
    cbam_parents,
    changed_grid,
    effect_words,
    kinds_of,
    largest_iou_changes,
    stage_of,
    switch_choices,
    switch_effect,
    switch_groups,
)
from attnviz.capture.interventions import OFF, Intervention
from attnviz.models import build_model
from attnviz.modules import CBAM


def _segmentation(prediction) -> SimpleNamespace:
    return SimpleNamespace(prediction=np.asarray(prediction, np.uint8), top_classes=None)


def test_the_changed_pixels_and_the_iou_changes_by_hand():
    # classes 0 (Sky) and 1 (Building); the ground truth: left column sky, the rest building
    label = np.array([[0, 1, 1], [0, 1, 1]], np.uint8)
    before = _segmentation([[0, 1, 1], [0, 1, 1]])  # perfect: IoU 1 and 1
    after = _segmentation([[0, 0, 1], [0, 1, 1]])  # one building pixel called sky
    effect = switch_effect(before, after, label)
    assert effect.changed.tolist() == [[False, True, False], [False, False, False]]
    assert effect.changed_share == pytest.approx(1 / 6)
    # after: sky IoU = 2 / 3 (2 right, 1 false positive); building IoU = 3 / 4 (3 right of 4)
    assert effect.miou_before == pytest.approx(1.0) and effect.miou_after == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert effect.class_iou_change == pytest.approx({"Sky": 2 / 3 - 1, "Building": 3 / 4 - 1})
    assert effect.miou_change == pytest.approx((2 / 3 + 3 / 4) / 2 - 1)
    assert effect_words(effect) == "a_lot"


def test_words_follow_the_share_of_changed_pixels():
    same = np.zeros((10, 20), np.uint8)
    one = same.copy()
    one[0, 0] = 1  # 1 of 200 pixels: 0.5%
    assert effect_words(switch_effect(_segmentation(same), _segmentation(one))) == "barely"
    five = same.copy()
    five[0, :10] = 1  # 5%
    assert effect_words(switch_effect(_segmentation(same), _segmentation(five))) == "some"


def test_a_classifiers_top_class_probability_change():
    before = SimpleNamespace(prediction=None, top_classes=[(3, "cat", 0.6), (5, "dog", 0.3)])
    after = SimpleNamespace(prediction=None, top_classes=[(5, "dog", 0.5), (3, "cat", 0.4)])
    effect = switch_effect(before, after)
    assert effect.top_probability_change == pytest.approx(0.4 - 0.6) and effect_words(effect) == "top_changed"


def test_stages_of_module_paths():
    assert stage_of("backbone.layer3.1.attn") == "backbone.layer3"
    assert stage_of("backbone.layer3.1.attn.channel") == "backbone.layer3"
    assert stage_of("head.pam") == "head.pam"


def _analysis(name: str, intervention=None):
    torch.manual_seed(0)
    model = build_model(name, width=0.25, blocks=(1, 1, 1, 1)).eval()
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    cbams = {path for path, module in model.named_modules() if isinstance(module, CBAM)}
    return model, image, cbams, analyse(model, image, name, keep_features=False, intervention=intervention)


def test_groups_of_a_danet_with_eca_and_of_cbam():
    _, _, _, analysis = _analysis("danet-eca")
    groups = switch_groups(analysis.records)
    assert list(groups) == ["eca", "pam", "cam"]
    assert len(groups["eca"]) == 4 and groups["pam"] == ("head.pam",) and groups["cam"] == ("head.cam",)
    staged = switch_groups(analysis.records, by_stage=True)
    assert [key for key in staged if key.startswith("eca")] == [f"eca @ backbone.layer{i}" for i in range(1, 5)]
    _, _, cbams, analysis = _analysis("fcn-cbam")
    groups = switch_groups(analysis.records, cbams)
    assert list(groups) == ["cbam"] and len(groups["cbam"]) == 8  # 4 blocks, two gates each


def test_an_analysis_with_an_intervention_says_so_and_differs():
    model, image, _, plain = _analysis("fcn-eca")
    paths = switch_groups(plain.records)["eca"]
    switched = analyse(model, image, "fcn-eca", keep_features=False, intervention=Intervention(OFF, paths))
    assert plain.intervention is None and switched.intervention == Intervention(OFF, paths)
    assert set(switched.records) == set(plain.records)  # the intervened pass is captured too
    again = analyse(model, image, "fcn-eca", keep_features=False)
    assert np.array_equal(again.prediction, plain.prediction)  # no intervention left behind


def test_choices_offer_the_kind_its_stages_and_its_layers_cbams_two_gates_as_one():
    _, _, cbams, analysis = _analysis("fcn-cbam")
    assert cbam_parents(analysis.records) == cbams  # found from the records alone
    choices = switch_choices(analysis.records)
    assert choices["cbam"].paths == switch_groups(analysis.records, cbams)["cbam"]
    stages = [key for key in choices if " @ " in key]
    assert stages == [f"cbam @ backbone.layer{i}" for i in range(1, 5)]
    layer = choices["cbam: backbone.layer2.0.attn"]
    assert layer.paths == ("backbone.layer2.0.attn.channel", "backbone.layer2.0.attn.spatial")
    assert len(choices) == 1 + 4 + 4
    _, _, _, analysis = _analysis("danet-eca")
    assert list(switch_choices(analysis.records, ("pam",))) == ["pam"]  # one module: nothing more to pick
    assert kinds_of(analysis.spatial_attention) == ("pam",)


def test_the_changed_grid_samples_each_blocks_middle_pixel():
    before = np.zeros((5, 7), np.uint8)
    after = before.copy()
    after[1, 1], after[4, 6] = 3, 2  # (1, 1) is a block's middle at step 2; (4, 6) is not
    grid = changed_grid(before, after, max_side=4)  # 7 columns over at most 4 cells: step 2
    assert grid.step == 2 and grid.rows.tolist() == [1, 3] and grid.cols.tolist() == [1, 3, 5]
    assert grid.changed.tolist() == [[True, False, False], [False, False, False]] and grid.new[0, 0] == 3


def test_iou_changes_are_listed_largest_first():
    effect = SimpleNamespace(class_iou_change={"Sky": 0.01, "Road": -0.2, "Car": 0.1})
    assert [name for name, _ in largest_iou_changes(effect)] == ["Road", "Car", "Sky"]


def test_groups_name_the_dataflow_readers_gates_by_their_record_keys():
    """A module nobody recognises that makes several gates (ShuffleAttention: a channel and an element gate) is
    switched gate by gate, each under its record's key, grouped by the record's kind."""
    import fixtures_dataflow as ea
    from torch import nn

    from attnviz.capture import capture

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), ea.ShuffleAttention(16, G=2)).eval()
    with torch.no_grad(), capture(model) as rec:
        model(torch.rand(1, 3, 8, 8))
    groups = switch_groups(rec.records())
    keys = [key for paths in groups.values() for key in paths]
    assert keys and all(key.startswith("1:") for key in keys), groups
