"""What each attention module contributes over a test split: the change in mIoU when it is switched off or
flattened (attnviz issue 30), with a paired bootstrap interval over the photos.

One "arm" is one pass over the split: the plain model (the baseline), or the model with a group of modules
switched (`attnviz.capture.interventions`: "off" removes the module's effect, "flat" keeps its average effect
and removes its selectivity). A group is every module of one kind at once, or one kind's modules in one stage
(`attnviz.analysis.switch.switch_groups`). Each arm keeps every photo's confusion matrix, so that the change
in mIoU gets the paired percentile bootstrap of `attnviz.analysis.uncertainty` (the same photos drawn for both
arms, the same seed for every arm): mIoU(switched) - mIoU(plain) < 0 says the module helps.

The confusions of a finished arm are kept on disk (`ConfusionCache`), under the model's weight digest, the split
and the number of photos, so that a rerun only computes the arms it lacks. What the interval covers: the test
photos, for this one trained network (not training seeds).
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from attnviz.analysis.forward import analyse, image_to_tensor
from attnviz.analysis.metrics import confusion_matrix, iou_from_confusion
from attnviz.analysis.switch import switch_groups
from attnviz.analysis.uncertainty import DEFAULT_RESAMPLES, paired_difference_interval
from attnviz.capture.interventions import FLAT, MODES, Intervention, intervened
from attnviz.capture.recorder import Recorder, recording
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES
from attnviz.modules import CBAM

__all__ = [
    "PLAIN",
    "Arm",
    "ConfusionCache",
    "model_digest",
    "switch_plan",
    "plan_arms",
    "arm_confusions",
    "switch_contribution",
    "run_contributions",
]

PLAIN = "plain"  # the mode of the baseline arm: no intervention


@dataclass(frozen=True)
class Arm:
    """One pass over the split: `mode` "plain" (no module switched), "off" or "flat" of `modules`, the modules of
    `group` ("eca", or "eca @ backbone.layer3" when `by_stage`)."""

    mode: str
    group: str = ""
    modules: tuple[str, ...] = ()
    by_stage: bool = False

    @property
    def intervention(self) -> Intervention | None:
        return None if self.mode == PLAIN else Intervention(self.mode, self.modules)

    @property
    def label(self) -> str:
        return PLAIN if self.mode == PLAIN else f"{self.group} {self.mode}"


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers (names and bytes): the weights the cached figures are of."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def switch_plan(model: torch.nn.Module, image: np.ndarray) -> dict[str, dict[str, tuple[str, ...]]]:
    """{"kinds": {kind: paths}, "stages": {"kind @ stage": paths}}: what `model` can switch, read from one
    captured pass on `image` (CBAM's two gates form the kind "cbam")."""
    records = analyse(model, image, keep_features=False).records
    cbam_paths = {path for path, module in model.named_modules() if isinstance(module, CBAM)}
    return {
        "kinds": switch_groups(records, cbam_paths),
        "stages": switch_groups(records, cbam_paths, by_stage=True),
    }


def plan_arms(plan: dict, by_stage: bool) -> list[Arm]:
    """The plain arm, then off and flat of every kind, then (with `by_stage`) off and flat of every stage."""
    arms = [Arm(PLAIN)]
    sections = [("kinds", False)] + ([("stages", True)] if by_stage else [])
    for section, staged in sections:
        arms += [Arm(mode, group, tuple(paths), staged) for group, paths in plan[section].items() for mode in MODES]
    return arms


@torch.no_grad()
def arm_confusions(model: torch.nn.Module, pairs, count: int, arm: Arm, progress: bool = True) -> np.ndarray:
    """(count, K, K) int64: each photo's confusion matrix (rows: ground truth) of the model's prediction with
    `arm`'s intervention, over the first `count` (image, label) pairs of a CamVid model (its modules are
    attnviz's own). "flat" runs while a recorder is open, as it reads the gates the modules record; a recorder
    alone, not a whole capture: attnviz's modules record themselves, and the readers of third-party modules
    (the dataflow reader watches every op) would only slow the pass down. "off" and the plain pass need none."""
    model.eval()
    device = next(model.parameters()).device
    confusions = np.zeros((count, NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for index in tqdm(range(count), desc=arm.label, disable=not progress, leave=False):
        image, label = pairs[index]
        with ExitStack() as stack:
            if arm.mode == FLAT:
                stack.enter_context(recording(Recorder(model)))
            stack.enter_context(intervened(model, arm.intervention))
            logits = model(image_to_tensor(image, device))
        prediction = logits.argmax(1)[0].cpu()
        target = torch.from_numpy(np.asarray(label, dtype=np.int64))
        confusions[index] = confusion_matrix(prediction, target, NUM_CLASSES, IGNORE_INDEX).numpy()
    return confusions


class ConfusionCache:
    """Finished arms on disk: <root>/<model>-<digest[:16]>/<split>-<photos>/<mode>--<group>.npz, each holding
    the arm's per-photo confusions and its module paths (a file whose paths differ is not used)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, model_name: str, digest: str, split: str, photos: int, arm: Arm) -> Path:
        group = re.sub(r"[^A-Za-z0-9_.-]+", "_", arm.group) or "all"
        return self.root / f"{model_name}-{digest[:16]}" / f"{split}-{photos}" / f"{arm.mode}--{group}.npz"

    def load(self, path: Path, arm: Arm) -> np.ndarray | None:
        try:
            with np.load(path) as stored:
                if json.loads(str(stored["modules"])) != list(arm.modules):
                    return None
                return stored["confusions"]
        except (OSError, KeyError, ValueError):
            return None

    def save(self, path: Path, arm: Arm, confusions: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez_compressed(partial, confusions=confusions, modules=json.dumps(list(arm.modules)))
        partial.replace(path)  # a run stopped mid-write leaves no half file under the real name


def _miou(confusions: np.ndarray) -> float:
    return float(np.nanmean(iou_from_confusion(confusions.sum(0))))


def switch_contribution(
    plain: np.ndarray, switched: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict:
    """mIoU(switched) - mIoU(plain) over the same photos, with its paired-bootstrap interval:
    {"difference", "low", "high", "beyond_noise", "level", "resamples", "seed", "miou" (switched)}."""
    return {
        **paired_difference_interval(switched, plain, resamples, seed),
        "miou": _miou(switched),
    }


def _cached_plan(cache: ConfusionCache, model_name: str, digest: str, model, image) -> dict:
    """The model's switch plan, kept beside its arms (a rerun needs no forward pass to know its groups)."""
    path = cache.root / f"{model_name}-{digest[:16]}" / "plan.json"
    try:
        stored = json.loads(path.read_text())
        return {section: {group: tuple(paths) for group, paths in stored[section].items()} for section in stored}
    except (OSError, ValueError, KeyError, AttributeError):
        plan = switch_plan(model, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan, indent=1) + "\n")
        return plan


def run_contributions(
    models: dict[str, torch.nn.Module],
    pairs,
    count: int,
    cache: ConfusionCache,
    split: str = "test",
    resamples: int = DEFAULT_RESAMPLES,
    stage_models: tuple[str, ...] = (),
    on_update=None,
    progress: bool = True,
) -> dict:
    """Every arm of every model over the first `count` pairs, those already in `cache` read back, the others
    computed and cached: every model's kinds first, then the stages of the models in `stage_models`.
    `on_update(summary)` is called after each computed arm. Returns the summary: {"models": {name: {"miou",
    "photos", "digest", "kinds": {group: {"modules", "off", "flat"}}, "stages": {...}}}, "missing": ["name:
    arm", ...]} (a model's entry once its plain arm is done; a group's mode once its arm is done)."""
    digests = {name: model_digest(model) for name, model in models.items()}
    arms = {}
    for name, model in models.items():
        plan = _cached_plan(cache, name, digests[name], model, pairs[0][0])
        arms[name] = plan_arms(plan, by_stage=name in stage_models) if any(plan["kinds"].values()) else []
    order = [(name, arm) for name in models for arm in arms[name] if not arm.by_stage]
    order += [(name, arm) for name in models for arm in arms[name] if arm.by_stage]
    paths = {(name, arm): cache.path(name, digests[name], split, count, arm) for name, arm in order}
    done = {key: found for key in order if (found := cache.load(paths[key], key[1])) is not None}
    entries: dict = {}

    def summary() -> dict:
        result, missing = {}, []
        for name, arm in order:
            plain = done.get((name, Arm(PLAIN)))
            if (name, arm) not in done or plain is None:
                missing.append(f"{name}: {arm.label}")
                continue
            entry = result.setdefault(
                name, {"miou": _miou(plain), "photos": count, "digest": digests[name], "kinds": {}, "stages": {}}
            )
            if arm.mode == PLAIN:
                continue
            if (name, arm) not in entries:
                entries[name, arm] = switch_contribution(plain, done[name, arm], resamples)
            group = entry["stages" if arm.by_stage else "kinds"].setdefault(arm.group, {"modules": list(arm.modules)})
            group[arm.mode] = entries[name, arm]
        return {"models": result, "missing": missing}

    todo = [key for key in order if key not in done]
    for name, arm in tqdm(todo, desc="arms", disable=not progress):
        done[name, arm] = arm_confusions(models[name], pairs, count, arm, progress)
        cache.save(paths[name, arm], arm, done[name, arm])
        if on_update is not None:
            on_update(summary())
    return summary()
