"""What switching attention modules off (or flattening them) does to a model's answer on one photo.

Two analyses of the same photo, one with an intervention (`attnviz.capture.interventions`, through
`attnviz.analysis.forward.analyse(..., intervention=...)`), compared pixel by pixel: which pixels change class,
what share of the photo that is, and, where the photo has a ground truth, how its mIoU and each class's IoU
move; for a classifier, the top 5 before and after and the change in the first class's probability. The
differences are paired (the same photo, the same weights), so they need no interval of their own; over the
test split `attnviz.evaluate --interventions` gives them one.

`switch_groups` names what can be switched in a pass: every module of one kind together (all ECA layers, PAM,
CAM, CBAM's two gates), and each stage's modules of that kind (which stages matter).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from attnviz.analysis.metrics import score_prediction
from attnviz.capture.interventions import switchable
from attnviz.capture.recorder import split_name

__all__ = ["SwitchEffect", "switch_effect", "switch_groups", "stage_of", "effect_words"]

# below this share of changed pixels a switch "barely" changes the answer; above LARGE_SHARE it "changes it a lot"
SMALL_SHARE, LARGE_SHARE = 0.01, 0.10


@dataclass(frozen=True)
class SwitchEffect:
    """The answer with and without, compared. Segmentation: `changed` (H, W) bool and its share; with a ground
    truth, the mIoU before and after and each present class's IoU change. Classification: the top 5 before and
    after and the first class's probability change (after minus before)."""

    changed: np.ndarray | None = None
    changed_share: float | None = None
    miou_before: float | None = None
    miou_after: float | None = None
    class_iou_change: dict[str, float] | None = None
    top_before: list[tuple[int, str, float]] | None = None
    top_after: list[tuple[int, str, float]] | None = None
    top_probability_change: float | None = None

    @property
    def miou_change(self) -> float | None:
        if self.miou_before is None or self.miou_after is None:
            return None
        return self.miou_after - self.miou_before


def switch_effect(before, after, label: np.ndarray | None = None) -> SwitchEffect:
    """Compare two `Analysis` of one photo (`after` with an intervention). `label`: the photo's CamVid ground
    truth (H, W), for the mIoU and the per-class IoU changes of a CamVid model."""
    if before.prediction is not None and after.prediction is not None:
        changed = before.prediction != after.prediction
        effect = dict(changed=changed, changed_share=float(changed.mean()))
        if label is not None:
            scored_before, scored_after = (
                score_prediction(before.prediction, label),
                score_prediction(after.prediction, label),
            )
            classes = [
                name
                for name, value in scored_before["per_class_iou"].items()
                if value is not None and scored_after["per_class_iou"][name] is not None
            ]
            effect.update(
                miou_before=scored_before["miou"],
                miou_after=scored_after["miou"],
                class_iou_change={
                    name: scored_after["per_class_iou"][name] - scored_before["per_class_iou"][name] for name in classes
                },
            )
        return SwitchEffect(**effect)
    if before.top_classes and after.top_classes:
        first = before.top_classes[0][0]
        probabilities_after = _probabilities_of(after.top_classes)
        after_probability = probabilities_after.get(first)
        change = None if after_probability is None else after_probability - before.top_classes[0][2]
        return SwitchEffect(top_before=before.top_classes, top_after=after.top_classes, top_probability_change=change)
    raise ValueError("the two analyses have neither predictions nor top classes to compare")


def _probabilities_of(top: list[tuple[int, str, float]]) -> dict[int, float]:
    return {index: probability for index, _, probability in top}


def stage_of(path: str) -> str:
    """The stage a module path lies in: its backbone layer ("backbone.layer3.1.attn" -> "backbone.layer3"), or
    the path's first two parts ("head.pam" -> "head.pam")."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.startswith("layer") and part[5:].isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2])


def _kind(record, path: str, cbam_paths: set[str]) -> str:
    parent = path.rpartition(".")[0]
    if parent in cbam_paths:
        return "cbam"  # CBAM's channel gate (kind "flexible") and spatial gate switch together
    return str(getattr(record, "kind", type(record).__name__))


def switch_groups(records: dict, cbam_paths: set[str] = frozenset(), by_stage: bool = False) -> dict[str, tuple]:
    """What can be switched in a pass, grouped: {kind: module paths} (every module of one kind together), or
    with `by_stage`, {"kind @ stage": paths}. `records`: an Analysis' records (name -> record); `cbam_paths`:
    the paths of CBAM modules, whose two gates form one kind ("cbam")."""
    paths = switchable(records.items())
    first_record = {}
    for name, record in records.items():
        first_record.setdefault(split_name(name)[0], record)
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for path in paths:
        kind = _kind(first_record[path], path, set(cbam_paths))
        key = f"{kind} @ {stage_of(path)}" if by_stage else kind
        groups.setdefault(key, []).append(path)
    return {key: tuple(value) for key, value in groups.items()}


def effect_words(effect: SwitchEffect) -> str:
    """A catalog key under "switch.effect" that says, from the data, how much the switch changed the answer:
    "barely" (< 1% of the pixels), "some", "a_lot" (>= 10%); for a classifier "top_kept" or "top_changed"."""
    if effect.changed_share is not None:
        if effect.changed_share < SMALL_SHARE:
            return "barely"
        return "a_lot" if effect.changed_share >= LARGE_SHARE else "some"
    kept = effect.top_before and effect.top_after and effect.top_before[0][0] == effect.top_after[0][0]
    return "top_kept" if kept else "top_changed"
