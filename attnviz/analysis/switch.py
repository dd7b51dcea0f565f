"""What switching attention modules off (or flattening them) does to a model's answer on one photo.

Two analyses of the same photo, one with an intervention (`attnviz.capture.interventions`, through
`attnviz.analysis.forward.analyse(..., intervention=...)`), compared pixel by pixel: which pixels change class,
what share of the photo that is, and, where the photo has a ground truth, how its mIoU and each class's IoU
move; for a classifier, the top 5 before and after and the change in the first class's probability. The
differences are paired (the same photo, the same weights), so they need no interval of their own; over the
test split `attnviz.evaluate --interventions` gives them one.

`switch_groups` names what can be switched in a pass: every module of one kind together (all ECA layers, PAM,
CAM, CBAM's two gates), and each stage's modules of that kind (which stages matter); `switch_choices` adds one
layer at a time, for a page's picker. `changed_grid` samples the changed pixels for a map a browser can hover.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from attnviz.analysis.metrics import score_prediction
from attnviz.capture.interventions import switchable
from attnviz.capture.recorder import split_name
from attnviz.capture.records import ChannelAttentionRecord, SpatialAttentionRecord
from attnviz.kinds import AttentionKind

__all__ = [
    "SwitchEffect",
    "switch_effect",
    "switch_groups",
    "SwitchChoice",
    "switch_choices",
    "kinds_of",
    "cbam_parents",
    "stage_of",
    "effect_words",
    "largest_iou_changes",
    "ChangedGrid",
    "changed_grid",
]

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
        first_record.setdefault(name, record)  # a dataflow gate is switched by its record's own key ("1:channel")
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


def cbam_parents(records: dict) -> set[str]:
    """The paths of CBAM modules among `records` (name -> record), read from the records alone: a module whose
    children made both a channel gate and CBAM's spatial gate (kind "cbam-spatial")."""
    channel, spatial = set(), set()
    for name, record in records.items():
        parent = split_name(name)[0].rpartition(".")[0]
        if isinstance(record, SpatialAttentionRecord) and record.kind == AttentionKind.CBAM_SPATIAL:
            spatial.add(parent)
        elif isinstance(record, ChannelAttentionRecord):
            channel.add(parent)
    return channel & spatial


@dataclass(frozen=True)
class SwitchChoice:
    """One entry of a page's picker: the modules `paths` of one `kind`, all of them, one `stage`'s or one
    `layer` (a module path; CBAM's layer is the module that holds its two gates)."""

    kind: str
    paths: tuple[str, ...]
    stage: str = ""
    layer: str = ""


def switch_choices(records: dict, kinds: tuple[str, ...] | None = None) -> dict[str, SwitchChoice]:
    """What a page's picker offers to switch, in order, by a stable key: every module of a kind together (key:
    the kind, "eca"), then each stage's ("eca @ backbone.layer3", when the kind spans several stages), then each
    layer alone ("eca: backbone.layer3.1.attn", when the kind has several). `kinds`: only these kinds (None:
    all). CBAM is found by `cbam_parents`."""
    cbams = cbam_parents(records)
    chosen = {kind: paths for kind, paths in switch_groups(records, cbams).items() if kinds is None or kind in kinds}
    staged = switch_groups(records, cbams, by_stage=True)
    choices: dict[str, SwitchChoice] = {}
    for kind, paths in chosen.items():
        choices[kind] = SwitchChoice(kind, paths)
        stages = {key.partition(" @ ")[2]: value for key, value in staged.items() if key.partition(" @ ")[0] == kind}
        if len(stages) > 1:
            choices.update(
                (f"{kind} @ {stage}", SwitchChoice(kind, value, stage=stage)) for stage, value in stages.items()
            )
        layers: dict[str, list[str]] = {}
        for path in paths:
            layers.setdefault(path.rpartition(".")[0] if kind == "cbam" else path, []).append(path)
        if len(layers) > 1:
            choices.update(
                (f"{kind}: {layer}", SwitchChoice(kind, tuple(value), layer=layer)) for layer, value in layers.items()
            )
    return choices


def kinds_of(records: dict) -> tuple[str, ...]:
    """The kinds of `records` (name -> record), each once, in order: the module group a page shows."""
    return tuple(dict.fromkeys(str(record.kind) for record in records.values() if hasattr(record, "kind")))


def largest_iou_changes(effect: SwitchEffect) -> list[tuple[str, float]]:
    """The per-class IoU changes, the largest (in size) first; classes that did not move come last."""
    changes = effect.class_iou_change or {}
    return sorted(changes.items(), key=lambda item: -abs(item[1]))


@dataclass(frozen=True)
class ChangedGrid:
    """The changed pixels sampled every `step` pixels (a grid a browser can hover): `rows`, `cols` the photo
    pixels sampled (the middle of each step x step block), `old` and `new` their classes, `changed` whether
    the class changed there."""

    step: int
    rows: np.ndarray
    cols: np.ndarray
    old: np.ndarray
    new: np.ndarray
    changed: np.ndarray


def changed_grid(before: np.ndarray, after: np.ndarray, max_side: int = 240) -> ChangedGrid:
    """`before` and `after` (H, W class indices) sampled at the middle pixel of blocks of `step` pixels, the
    smallest step that keeps the grid's longer side at most `max_side` cells."""
    height, width = before.shape
    step = max(1, -(-max(height, width) // max_side))
    rows = np.arange(step // 2, height, step)
    cols = np.arange(step // 2, width, step)
    old, new = before[np.ix_(rows, cols)], after[np.ix_(rows, cols)]
    return ChangedGrid(step, rows, cols, old, new, old != new)
