import json

import pytest
import torch

from attnviz.data.camvid import default_data_root
from attnviz.models import load_checkpoint
from attnviz.train import TrainSettings, enet_class_weights, learning_rate, main, train_one

from test_data import _make_camvid


@pytest.fixture
def data_root(tmp_path):
    root = default_data_root()
    if (root / "train").is_dir():
        return root
    _make_camvid(tmp_path / "camvid", n=4, size=(120, 160))
    return tmp_path / "camvid"


def test_short_training_run_lowers_the_loss_and_resumes(tmp_path, data_root):
    settings = TrainSettings(epochs=4, batch_size=4, lr=1e-2, crop=(120, 160), scale_range=(0.5, 0.5), jitter=0.0,
                             limit_images=4, eval_every=2, threads=2, model_overrides={"width": 0.125})
    run_dir, checkpoints = tmp_path / "run", tmp_path / "checkpoints"
    train_one("danet-eca", settings, data_root, run_dir, checkpoints, show_progress=False)
    settings.epochs = 8
    summary = train_one("danet-eca", settings, data_root, run_dir, checkpoints, resume=True, show_progress=False)
    history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 9))  # resumed at 5, did not restart
    losses = [h["loss"] for h in history]
    assert sum(losses[-2:]) / 2 < 0.9 * sum(losses[:2]) / 2, losses
    assert "val_miou" in history[1] and "val_miou" in history[-1]
    model, card = load_checkpoint("danet-eca", checkpoints)
    assert card["training"]["steps"] == summary["training"]["steps"] == 8
    assert "CC BY-NC 4.0" in card["training"]["data_licence"]
    assert card["config"]["width"] == 0.125
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def test_cli_rejects_unknown_model(capsys):
    assert main(["--models", "fcn-transformer"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_enet_weights_and_schedule_by_hand():
    labels = torch.tensor([0] * 90 + [1] * 10 + [11] * 50)
    weights = enet_class_weights(labels, num_classes=2)
    torch.testing.assert_close(weights, 1 / torch.log(torch.tensor([1.02 + 0.9, 1.02 + 0.1])))
    assert learning_rate(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert learning_rate(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert learning_rate(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_parallel_trains_each_model_in_its_own_process(tmp_path, data_root):
    args = ["--models", "fcn-none", "fcn-eca", "--parallel", "2", "--epochs", "1", "--max-steps", "1",
            "--limit-images", "2", "--batch-size", "2", "--crop", "120", "160", "--width", "0.125",
            "--eval-every", "0", "--data", str(data_root), "--runs", str(tmp_path / "runs"),
            "--checkpoints", str(tmp_path / "checkpoints")]
    assert main(args) == 0
    for index, name in enumerate(["fcn-none", "fcn-eca"]):
        assert f"[{name}] epoch 1" in (tmp_path / "runs" / f"parallel-{index}.out").read_text()
        card = json.loads((tmp_path / "checkpoints" / f"{name}.json").read_text())
        assert card["config"]["width"] == 0.125 and card["training"]["steps"] == 1
