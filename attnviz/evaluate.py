"""Evaluate checkpoints: python -m attnviz.evaluate [--names fcn-eca ...]

For every checkpoint (default: all in checkpoints/): mIoU, per-class IoU and
pixel accuracy on the CamVid test split (the lossless PNGs, 233 photos,
360x480, ignore label 11), parameters, the attention modules' own parameters,
multiply-adds at 360x480 (torch's FlopCounterMode, MACs = FLOPs / 2: convs,
linears and the attention matmuls), and CPU latency at 360x480 (median of
--repeats forward passes after a warm-up, batch 1, --threads threads).

Writes checkpoints/results.json (the table of the compare page) and adds an
"evaluation" section to each model card.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from attnviz.analysis import image_to_tensor
from attnviz.bench import machine_info
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, CamVid, default_data_root
from attnviz.metrics import confusion_matrix, summarise_confusion
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR, list_checkpoints, load_checkpoint
from attnviz.models.segmentation import SegmentationModel

__all__ = ["attention_parameters", "count_macs", "cpu_latency_ms", "evaluate_model", "main"]


def attention_parameters(model: SegmentationModel) -> int:
    """Parameters of the attention modules alone: every block's `attn`, and DANet's PAM and CAM."""
    total = 0
    for name, module in model.named_modules():
        if name.endswith(".attn") or name in ("head.pam", "head.cam"):
            total += sum(p.numel() for p in module.parameters())
    return total


def count_macs(model: torch.nn.Module, size=(360, 480)) -> int:
    x = torch.rand(1, 3, *size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2


def cpu_latency_ms(model: torch.nn.Module, size=(360, 480), repeats: int = 10) -> float:
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


@torch.no_grad()
def evaluate_model(model: SegmentationModel, pairs, limit: int = 0, progress: bool = True) -> dict:
    """mIoU, per-class IoU and pixel accuracy of `model` over (image (H, W, 3) uint8, label (H, W)) pairs.

    `pairs` is any sequence of such pairs: a CamVid split, or pairs already in memory (training's
    validation). The confusion matrix is accumulated over all of them before dividing.
    """
    model.eval()
    device = next(model.parameters()).device
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    count = min(len(pairs), limit) if limit else len(pairs)
    for index in tqdm(range(count), desc="images", disable=not progress, leave=False):
        image, label = pairs[index]
        x = image_to_tensor(image, device)
        prediction = model(x).argmax(1)[0].cpu()
        confusion += confusion_matrix(prediction, torch.from_numpy(np.asarray(label, dtype=np.int64)),
                                      NUM_CLASSES, IGNORE_INDEX)
    return {**summarise_confusion(confusion, CLASS_NAMES), "images": count}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=None)
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--data", type=Path, default=None, help="CamVid folder (PNG layout)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the latency figure")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (quick checks)")
    parser.add_argument("--out", type=Path, default=None, help="default: <checkpoints>/results.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    names = args.names or list_checkpoints(args.checkpoints)
    if not names:
        print(f"no checkpoints in {args.checkpoints}", file=sys.stderr)
        return 2
    dataset = CamVid(args.data or default_data_root(), args.split)
    out = args.out or args.checkpoints / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    models = results.get("models", {})
    for name in names:
        model, card = load_checkpoint(name, args.checkpoints)
        scores = evaluate_model(model, dataset, args.limit)
        entry = {
            **scores,
            "split": args.split,
            "parameters": sum(p.numel() for p in model.parameters()),
            "attention_parameters": attention_parameters(model),
            "macs": count_macs(model),
            "latency_ms": round(cpu_latency_ms(model, repeats=args.repeats), 2),
            "config": card["config"],
        }
        models[name] = entry
        card["evaluation"] = {k: v for k, v in entry.items() if k != "config"}
        (args.checkpoints / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"{name}: mIoU {entry['miou']:.4f}, pixel acc {entry['pixel_accuracy']:.4f}, "
              f"params {entry['parameters']:,} (attention {entry['attention_parameters']:,}), "
              f"{entry['macs'] / 1e9:.3f} GMACs, {entry['latency_ms']:.1f} ms", flush=True)
    known = set(list_checkpoints(args.checkpoints))
    results = {
        "meta": {"command": "python -m attnviz.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "machine": machine_info(), "split": args.split, "latency_threads": args.threads,
                 "latency_repeats": args.repeats, "input_size": [360, 480],
                 "macs_note": "torch FlopCounterMode FLOPs / 2 at 1x3x360x480"},
        "models": {k: v for k, v in sorted(models.items()) if k in known},
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
