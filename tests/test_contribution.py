"""What each module contributes over a split (attnviz.analysis.contribution, evaluate --interventions): the paired
interval of a switch against hand-computed values and a naive bootstrap; the runner's "off" pass against a model
with the modules replaced; the cache (a second run computes nothing); results.json's section read back."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from attnviz.analysis.contribution import ConfusionCache, run_contributions, switch_contribution
from attnviz.analysis.forward import analyse
from attnviz.analysis.metrics import confusion_matrix
from attnviz.analysis.uncertainty import resample_counts
from attnviz.capture.interventions import FLAT, Intervention
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES
from attnviz.models import build_model
from attnviz.models.checkpoint import save_checkpoint
from attnviz.modules import ECA
from attnviz.results import interventions_source, interventions_tables, read_results, switch_figures


def _miou_by_hand(confusion) -> float:
    """Mean over classes with a non-empty union of TP / (row + column - TP), in plain Python."""
    ious = []
    for k in range(len(confusion)):
        tp = confusion[k][k]
        union = sum(confusion[k]) + sum(row[k] for row in confusion) - tp
        if union:
            ious.append(tp / union)
    return sum(ious) / len(ious)


def test_a_switch_on_identical_photos_has_a_point_interval_computed_by_hand():
    # every photo alike: every resample has the split's mIoU, so the interval is the difference itself
    plain = np.array([[[3, 1], [0, 4]]] * 5)  # IoU 3/4 and 4/5: mIoU 0.775
    switched = np.array([[[2, 2], [0, 4]]] * 5)  # IoU 2/4 and 4/6: mIoU 7/12
    figure = switch_contribution(plain, switched, resamples=50)
    expected = (0.5 + 4 / 6) / 2 - (0.75 + 0.8) / 2
    assert figure["difference"] == pytest.approx(expected, abs=1e-12)
    assert figure["low"] == pytest.approx(expected, abs=1e-12) and figure["high"] == pytest.approx(expected, abs=1e-12)
    assert figure["beyond_noise"] and figure["miou"] == pytest.approx(7 / 12, abs=1e-12)
    same = switch_contribution(plain, plain, resamples=50)
    assert same["difference"] == same["low"] == same["high"] == 0.0 and not same["beyond_noise"]


def test_the_paired_interval_is_a_naive_bootstrap_of_the_same_draws():
    rng = np.random.default_rng(3)
    plain = rng.integers(0, 20, size=(6, 3, 3))
    switched = plain.copy()
    switched[:, 0, 0] -= rng.integers(0, 3, size=6).clip(max=plain[:, 0, 0])  # some sky pixels lost ...
    switched[:, 0, 1] += plain[:, 0, 0] - switched[:, 0, 0]  # ... to the next class
    resamples = 200
    figure = switch_contribution(plain, switched, resamples=resamples, seed=0)
    differences = []
    for counts in resample_counts(6, resamples, seed=0):  # the draws the bootstrap makes, both arms alike
        pick = [photo for photo, count in enumerate(counts) for _ in range(count)]
        differences.append(_miou_by_hand(switched[pick].sum(0).tolist()) - _miou_by_hand(plain[pick].sum(0).tolist()))
    low, high = np.percentile(differences, [2.5, 97.5])
    assert figure["low"] == pytest.approx(low, abs=1e-12) and figure["high"] == pytest.approx(high, abs=1e-12)
    assert figure["high"] <= 0  # switching only ever loses sky pixels: no resample gains


def _photos(count: int = 3, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        ((rng.random((48, 64, 3)) * 255).astype(np.uint8), rng.integers(0, NUM_CLASSES + 1, (48, 64)).astype(np.uint8))
        for _ in range(count)
    ]


def _tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, width=0.25, blocks=(1, 1, 1, 1)).eval()


def _forwards(model: nn.Module) -> list:
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


def test_a_second_run_computes_nothing_and_gives_the_same_figures(tmp_path):
    photos = _photos()
    model = _tiny("fcn-eca")
    calls = _forwards(model)
    updates = []
    first = run_contributions(
        {"fcn-eca": model},
        photos,
        3,
        ConfusionCache(tmp_path),
        resamples=50,
        stage_models=("fcn-eca",),
        on_update=updates.append,
        progress=False,
    )
    arms = 1 + 2 + 4 * 2  # plain, eca off and flat, each of 4 stages off and flat
    assert len(calls) == 1 + 3 * arms  # the plan's pass, then every arm over 3 photos
    assert len(updates) == arms and updates[0]["missing"][0] == "fcn-eca: eca off" and not first["missing"]
    entry = first["models"]["fcn-eca"]
    assert list(entry["kinds"]) == ["eca"] and len(entry["stages"]) == 4

    calls.clear()
    second = run_contributions(
        {"fcn-eca": model}, photos, 3, ConfusionCache(tmp_path), resamples=50, stage_models=("fcn-eca",), progress=False
    )
    assert calls == [] and second == first

    (removed,) = tmp_path.glob("*/test-3/flat--eca.npz")
    removed.unlink()
    third = run_contributions(
        {"fcn-eca": model}, photos, 3, ConfusionCache(tmp_path), resamples=50, stage_models=("fcn-eca",), progress=False
    )
    assert len(calls) == 3 and third == first  # only the missing pass, over its 3 photos


def test_off_over_the_photos_equals_the_model_with_its_gates_replaced(tmp_path):
    photos = _photos(2, seed=1)
    model = _tiny("fcn-eca")
    summary = run_contributions({"m": model}, photos, 2, ConfusionCache(tmp_path), resamples=20, progress=False)
    (off_file,) = tmp_path.glob("*/test-2/off--eca.npz")
    replaced = copy.deepcopy(model)
    for path in [name for name, module in model.named_modules() if isinstance(module, ECA)]:
        parent, _, attribute = path.rpartition(".")
        setattr(replaced.get_submodule(parent), attribute, nn.Identity())
    expected = []
    with torch.no_grad():
        for image, label in photos:
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            prediction = replaced(x).argmax(1)[0]
            target = torch.from_numpy(label.astype(np.int64))
            expected.append(confusion_matrix(prediction, target, NUM_CLASSES, IGNORE_INDEX).numpy())
    assert np.array_equal(np.load(off_file)["confusions"], np.stack(expected))
    assert summary["models"]["m"]["kinds"]["eca"]["modules"] == [
        name for name, module in model.named_modules() if isinstance(module, ECA)
    ]


def _camvid_folder(root, photos) -> None:
    (root / "test").mkdir(parents=True)
    (root / "testannot").mkdir()
    for index, (image, label) in enumerate(photos):
        Image.fromarray(image).save(root / "test" / f"photo{index}.png")
        Image.fromarray(label).save(root / "testannot" / f"photo{index}.png")


def test_evaluate_interventions_writes_a_section_the_readers_read_back(tmp_path, capsys):
    from attnviz.evaluate import main

    save_checkpoint(_tiny("fcn-eca"), "fcn-eca", {}, tmp_path / "checkpoints", half=False)
    _camvid_folder(tmp_path / "camvid", _photos(2, seed=2))
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"meta": {"command": "earlier"}, "models": {"fcn-eca": {"miou": 0.5}}}))
    argv = ["--interventions", "--checkpoints", str(tmp_path / "checkpoints"), "--data", str(tmp_path / "camvid")]
    argv += ["--out", str(out), "--resamples", "20", "--cache", str(tmp_path / "cache"), "--stages"]
    assert main(argv) == 0
    results = read_results(out)
    assert results["models"] == {"fcn-eca": {"miou": 0.5}} and results["meta"]["command"] == "earlier"  # kept
    rows = switch_figures(results)
    assert [(row["model"], row["module"]) for row in rows] == [("fcn-eca", "eca")]
    assert rows[0]["off"]["effect"] in ("lower", "higher", "unmeasurable") and switch_figures(results, "stages") == []
    source = interventions_source(results)
    assert source["photos"] == 2 and source["missing"] == [] and source["command"].endswith("--stages")
    assert results["interventions"]["meta"]["machine"]["threads"] == 2
    table = interventions_tables(results)
    assert table.splitlines()[2].startswith("| fcn-eca | eca | ") and "stage" not in table


def test_flat_over_the_photos_equals_the_librarys_analysis_with_a_whole_capture(tmp_path):
    photos = _photos(2, seed=4)
    model = _tiny("fcn-cbam")
    summary = run_contributions({"m": model}, photos, 2, ConfusionCache(tmp_path), resamples=20, progress=False)
    modules = tuple(summary["models"]["m"]["kinds"]["cbam"]["modules"])
    (flat_file,) = tmp_path.glob("*/test-2/flat--cbam.npz")
    expected = [
        confusion_matrix(
            torch.from_numpy(
                analyse(model, image, keep_features=False, intervention=Intervention(FLAT, modules)).prediction
            ),
            torch.from_numpy(label.astype(np.int64)),
            NUM_CLASSES,
            IGNORE_INDEX,
        ).numpy()
        for image, label in photos
    ]
    assert len(modules) == 8 and np.array_equal(np.load(flat_file)["confusions"], np.stack(expected))


def test_the_readme_switch_tables_are_what_python_m_attnviz_results_prints():
    """Every number of the README's switch-it-off tables comes from results.json through one command."""
    from pathlib import Path

    from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tables = interventions_tables(read_results(DEFAULT_CHECKPOINT_DIR / "results.json"))
    for table in tables.split("\n\n"):
        assert table in readme, table.splitlines()[0]
