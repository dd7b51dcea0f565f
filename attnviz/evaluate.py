"""Evaluate checkpoints: python -m attnviz.evaluate [--names fcn-eca ...]

For every checkpoint (default: all in checkpoints/): mIoU, per-class IoU and
pixel accuracy on the CamVid test split (the lossless PNGs, 233 photos,
360x480, ignore label 11), parameters, the attention modules' own parameters,
multiply-adds at 360x480 (torch's FlopCounterMode, MACs = FLOPs / 2: convs,
linears and the attention matmuls), and CPU latency at 360x480 (median of
--repeats forward passes after a warm-up, batch 1, --threads threads).

How sure the mIoU is (`attnviz.analysis.uncertainty`): a 95% percentile-bootstrap
interval over test photos for every model, and the paired-bootstrap interval of
the difference for every pair of models evaluated in one run (--resamples,
seed 0). For DANet models, how semantic the position attention is
(`attnviz.analysis.quality`): own-class ratio, far-key own-class ratio, per class, row
entropy and near mass, on the same seeded query cells.

Writes checkpoints/results.json (the table of the compare page) and adds an
"evaluation" section to each model card.

With --interventions: what each attention module contributes (`attnviz.analysis.contribution`): the change in
test mIoU when every module of one kind is switched off or flattened at once, for every model, and stage by stage
for the --stages models, each with its paired-bootstrap interval over the photos; written into results.json's
"interventions" section. Resumable: finished passes are kept under --cache, and a rerun computes only the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from attnviz.analysis.affinity import query_cells
from attnviz.analysis.contribution import ConfusionCache, run_contributions
from attnviz.analysis.forward import image_to_tensor
from attnviz.analysis.metrics import confusion_matrix, summarise_confusion
from attnviz.analysis.quality import query_measures, summarise_measures
from attnviz.analysis.uncertainty import DEFAULT_RESAMPLES, bootstrap_interval, paired_difference_interval
from attnviz.capture import PositionAttentionRecord, capture
from attnviz.capture.interventions import FLAT, OFF
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, SPLITS, CamVid, default_data_root
from attnviz.machine import machine_info, time_calls
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR, load_checkpoint, scan_checkpoints
from attnviz.models.segmentation import SegmentationModel
from attnviz.modules.danet import PositionAttention
from attnviz.results import read_results

__all__ = [
    "attention_parameters",
    "count_macs",
    "cpu_latency_ms",
    "evaluate_model",
    "pam_alpha",
    "paired_differences",
    "main",
]

# one model per attention kind, switched stage by stage with --interventions (which stages matter)
STAGE_MODELS = ("fcn-eca", "fcn-se", "fcn-flexible", "fcn-cbam", "fcn-ca")
DEFAULT_CACHE = Path("runs/interventions")


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
        return 1000 * time_calls(lambda: model(x), repeats)["median_s"]


def pam_alpha(model: torch.nn.Module) -> float | None:
    """The learned alpha of the model's (first) position attention module, None without one."""
    found = [m for m in model.modules() if isinstance(m, PositionAttention)]
    return float(found[0].alpha.detach()) if found else None


def has_position_attention(model: torch.nn.Module) -> bool:
    return pam_alpha(model) is not None


@torch.no_grad()
def evaluate_model(
    model: SegmentationModel,
    pairs,
    limit: int = 0,
    progress: bool = True,
    pam_queries: int = 0,
    pam_purity: float = 0.8,
    seed: int = 0,
    per_photo_confusion: list | None = None,
) -> dict:
    """mIoU, per-class IoU and pixel accuracy of `model` over (image (H, W, 3) uint8, label (H, W)) pairs.

    `pairs` is any sequence of such pairs: a CamVid split, or pairs already in memory (training's
    validation). The confusion matrix is accumulated over all of them before dividing.

    With `pam_queries` > 0 and a model with position attention, the same forward passes also give
    "pam_own_class_ratio": for up to `pam_queries` feature cells per photo that are at least
    `pam_purity` one class (drawn by one generator seeded with `seed`), the share of the cell's row of
    S that falls on its class over that class's share of the photo (`attnviz.analysis.affinity`); the mean, the
    median and the number of queries, and "pam_quality" (`attnviz.analysis.quality.summarise_measures`: far-key
    own-class ratio, per class, row entropy, near mass) of the same rows.

    `per_photo_confusion`, when given, receives each photo's (K, K) confusion matrix (for the bootstrap).
    """
    model.eval()
    device = next(model.parameters()).device
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    count = min(len(pairs), limit) if limit else len(pairs)
    measure_pam = pam_queries > 0 and has_position_attention(model)
    rng = np.random.default_rng(seed)
    measures = []
    for index in tqdm(range(count), desc="images", disable=not progress, leave=False):
        image, label = pairs[index]
        x = image_to_tensor(image, device)
        label = np.asarray(label, dtype=np.int64)
        if measure_pam:
            with capture(model) as rec:
                logits = model(x)
            pam = next(iter(rec.of_type(PositionAttentionRecord).values()))
            cells, classes = query_cells(label, (pam.height, pam.width), pam_queries, rng, pam_purity)
            if cells.size:
                rows = pam.rows(torch.from_numpy(cells)).cpu().numpy()
                measures.append(query_measures(rows, label, cells, classes))
        else:
            logits = model(x)
        prediction = logits.argmax(1)[0].cpu()
        photo_confusion = confusion_matrix(prediction, torch.from_numpy(label), NUM_CLASSES, IGNORE_INDEX)
        confusion += photo_confusion
        if per_photo_confusion is not None:
            per_photo_confusion.append(photo_confusion.numpy())
    result = {**summarise_confusion(confusion, CLASS_NAMES), "images": count}
    if measure_pam:
        values = np.concatenate([m["own_class_ratio"] for m in measures]) if measures else np.array([])
        values = values[np.isfinite(values)]
        result["pam_own_class_ratio"] = {
            "mean": float(values.mean()) if values.size else None,
            "median": float(np.median(values)) if values.size else None,
            "queries": int(values.size),
            "per_photo": pam_queries,
            "purity": pam_purity,
            "seed": seed,
        }
        result["pam_quality"] = summarise_measures(measures, CLASS_NAMES)
        result["pam_own_class_ratio"]["interval"] = result["pam_quality"].pop("own_class_interval", None)
    return result


def paired_differences(per_photo_confusion: dict[str, np.ndarray], resamples: int = DEFAULT_RESAMPLES) -> dict:
    """{"a - b": paired-bootstrap interval of mIoU(a) - mIoU(b)} for every ordered pair a < b (by name)
    of models scored on the same photos."""
    names = sorted(per_photo_confusion)
    return {
        f"{a} - {b}": paired_difference_interval(per_photo_confusion[a], per_photo_confusion[b], resamples)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative, got {value}")
    return value


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m attnviz.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=None, help="checkpoint names (default: every loadable one)")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--data", type=Path, default=None, help="CamVid folder (PNG layout)")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--threads", type=_positive, default=2, help="CPU threads for the latency figure")
    parser.add_argument("--repeats", type=_positive, default=10)
    parser.add_argument(
        "--limit", type=_not_negative, default=0, help="evaluate only the first N images (quick checks)"
    )
    parser.add_argument(
        "--pam-queries",
        type=_not_negative,
        default=40,
        help="query cells per photo for pam_own_class_ratio (DANet models; 0: skip)",
    )
    parser.add_argument(
        "--resamples",
        type=_positive,
        default=DEFAULT_RESAMPLES,
        help="bootstrap resamples of the test photos for the mIoU intervals",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: <checkpoints>/results.json")
    parser.add_argument(
        "--interventions",
        action="store_true",
        help="instead of the model table: the change in mIoU with each attention kind (and stage) switched off "
        "or flattened, into results.json's 'interventions' section",
    )
    parser.add_argument(
        "--stages", nargs="*", default=list(STAGE_MODELS), help="--interventions: models switched stage by stage"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="--interventions: finished passes")
    return parser, parser.parse_args(argv)


def _evaluate_checkpoint(name: str, args, dataset, per_photo_confusion: list) -> dict:
    """The results entry of one checkpoint; also written into its model card as "evaluation"."""
    model, card = load_checkpoint(name, args.checkpoints)
    scores = evaluate_model(
        model, dataset, args.limit, pam_queries=args.pam_queries, per_photo_confusion=per_photo_confusion
    )
    entry = {
        **scores,
        "miou_interval": bootstrap_interval(np.stack(per_photo_confusion), args.resamples),
        "split": args.split,
        "parameters": sum(p.numel() for p in model.parameters()),
        "attention_parameters": attention_parameters(model),
        "macs": count_macs(model),
        "latency_ms": round(cpu_latency_ms(model, repeats=args.repeats), 2),
        "config": card["config"],
    }
    if has_position_attention(model):
        entry["pam_alpha"] = pam_alpha(model)
    card["evaluation"] = {k: v for k, v in entry.items() if k != "config"}
    (args.checkpoints / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    pam = entry.get("pam_own_class_ratio", {})
    interval = entry["miou_interval"]
    print(
        f"{name}: mIoU {entry['miou']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}], "
        f"pixel acc {entry['pixel_accuracy']:.4f}, "
        f"params {entry['parameters']:,} (attention {entry['attention_parameters']:,}), "
        f"{entry['macs'] / 1e9:.3f} GMACs, {entry['latency_ms']:.1f} ms"
        + (
            f", PAM own-class ratio {pam['mean']:.2f}x (median {pam['median']:.2f}x), alpha {entry['pam_alpha']:.3f}"
            if pam.get("mean") is not None
            else ""
        ),
        flush=True,
    )
    return entry


def main(argv=None) -> int:
    parser, args = _parse(argv)

    def fail(message: str) -> int:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    usable, problems = scan_checkpoints(args.checkpoints)
    loadable = [info.name for info in usable]
    names = args.names or loadable
    unknown = [n for n in names if n not in loadable]
    if unknown:
        reasons = "; ".join(f"{n}: {problems.get(n, 'no such checkpoint')}" for n in unknown)
        return fail(f"cannot evaluate {reasons} (loadable in {args.checkpoints}: {', '.join(loadable) or 'none'})")
    if not names:
        return fail(f"no loadable checkpoints in {args.checkpoints}")
    try:
        dataset = CamVid(args.data or default_data_root(), args.split)
    except (FileNotFoundError, ValueError) as error:
        return fail(str(error))

    torch.set_num_threads(args.threads)
    out = args.out or args.checkpoints / "results.json"
    command = "python -m attnviz.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.interventions:
        _evaluate_interventions(args, names, dataset, out, command)
        return 0
    previous = read_results(out)
    models = previous.get("models") or {}
    confusions = {}
    for name in names:
        confusions[name] = []
        models[name] = _evaluate_checkpoint(name, args, dataset, confusions[name])
    differences = {
        key: value
        for key, value in (previous.get("paired_differences") or {}).items()
        if not set(key.split(" - ")) & set(names)
    }
    left_out = sorted(set(loadable) - set(names))
    if left_out:
        print(
            f"note: paired differences need both models scored in one run; those of {', '.join(names)} with "
            f"{', '.join(left_out)} are left out (run without --names to compute every pair)",
            file=sys.stderr,
        )
    differences.update(paired_differences({name: np.stack(c) for name, c in confusions.items()}, args.resamples))
    results = {
        "meta": {
            "command": command,
            "machine": machine_info(),
            "split": args.split,
            "latency_threads": args.threads,
            "latency_repeats": args.repeats,
            "input_size": [360, 480],
            "macs_note": "torch FlopCounterMode FLOPs / 2 at 1x3x360x480",
            "interval_note": (
                f"95% percentile bootstrap over the test photos ({args.resamples} resamples, "
                "seed 0; paired for differences). Covers test sampling only, not training "
                "seeds: one seed per model."
            ),
        },
        "models": {k: v for k, v in sorted(models.items()) if k in loadable},
        "paired_differences": {
            key: value for key, value in sorted(differences.items()) if set(key.split(" - ")) <= set(loadable)
        },
    }
    if "interventions" in previous:
        results["interventions"] = previous["interventions"]
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _evaluate_interventions(args, names: list[str], dataset, out: Path, command: str) -> None:
    """Run (or resume) every switch of `names` and write results.json's "interventions" section after each
    finished pass; models of an earlier run that this one leaves out (--names) keep their entries."""
    models = {name: load_checkpoint(name, args.checkpoints)[0] for name in names}
    count = min(len(dataset), args.limit) if args.limit else len(dataset)
    stages = tuple(name for name in args.stages if name in names)

    def write(summary: dict) -> None:
        results = read_results(out)
        previous = (results.get("interventions") or {}).get("models") or {}
        kept = {name: entry for name, entry in previous.items() if name not in names}
        results["interventions"] = {
            "meta": {
                "command": command,
                "machine": machine_info(),
                "split": args.split,
                "photos": count,
                "stage_models": list(stages),
                "difference": "mIoU with the modules switched minus the plain model's, on the same photos "
                "(negative: the model needs them)",
                "modes": {
                    OFF: "the module's effect removed: a gate set to 1, DANet's alpha (PAM) or beta (CAM) set to 0",
                    FLAT: "the module keeps its average effect, not its selectivity: a gate set to its own mean "
                    "over the axis it selects on, PAM's S and CAM's X made uniform",
                },
                "interval_note": (
                    f"95% paired percentile bootstrap over the test photos ({args.resamples} resamples, seed 0; "
                    "the same draws for both arms). Covers test sampling only, for this one trained network."
                ),
                "missing": summary["missing"],
            },
            "models": dict(sorted({**kept, **summary["models"]}.items())),
        }
        out.write_text(json.dumps(results, indent=2) + "\n")

    summary = run_contributions(
        models, dataset, count, ConfusionCache(args.cache), args.split, args.resamples, stages, on_update=write
    )
    write(summary)
    for name, entry in summary["models"].items():
        for section in ("kinds", "stages"):
            for group, figures in entry[section].items():
                cells = ", ".join(
                    f"{mode} {100 * figures[mode]['difference']:+.2f} "
                    f"[{100 * figures[mode]['low']:+.2f}, {100 * figures[mode]['high']:+.2f}]"
                    for mode in (OFF, FLAT)
                    if mode in figures
                )
                print(f"{name} {group}: {cells} (mIoU points)", flush=True)
    missing = summary["missing"]
    print(f"wrote {out}" + (f"; missing: {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    sys.exit(main())
