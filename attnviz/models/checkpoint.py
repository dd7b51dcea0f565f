"""Checkpoint I/O: <name>.safetensors (weights) beside <name>.json (model card).

Loading never unpickles: weights come from safetensors only, and the card is
JSON. A checkpoint whose keys or shapes do not match the architecture in its
card gets an error that names them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attnviz.models.segmentation import ModelConfig, SegmentationModel
from attnviz.modules import ATTENTION_TITLES
from attnviz.results import as_number

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "save_checkpoint",
    "load_checkpoint",
    "read_card",
    "list_checkpoints",
    "inspect_checkpoint",
    "scan_checkpoints",
    "card_summary",
    "load_state_dict_checked",
    "state_dict_mismatch",
    "DEFAULT_CHECKPOINT_DIR",
]

DEFAULT_CHECKPOINT_DIR = Path(
    os.environ.get("ATTNVIZ_CHECKPOINTS") or Path(__file__).resolve().parents[2] / "checkpoints"
)


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(
    model: SegmentationModel, name: str, card: dict, directory: str | Path = DEFAULT_CHECKPOINT_DIR, half: bool = True
) -> Path:
    """Write <name>.safetensors (floats in fp16 when `half`) and <name>.json.

    Both files are written beside their targets under temporary names first and then renamed
    (os.replace is atomic), so a crash while saving leaves the previous pair as it was.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value.contiguous()
    weights_path, card_path = directory / f"{name}.safetensors", directory / f"{name}.json"
    card = {
        **card,
        "name": name,
        "config": model.config.to_dict(),
        "weights": weights_path.name,
        "weights_dtype": "float16" if half else "float32",
    }
    weights_tmp, card_tmp = (path.with_name(f".{path.name}.partial") for path in (weights_path, card_path))
    try:
        save_file(state, str(weights_tmp), metadata={"name": name, "format": "attnviz-1"})
        card_tmp.write_text(json.dumps(card, indent=2) + "\n")
        os.replace(weights_tmp, weights_path)
        os.replace(card_tmp, card_path)
    finally:
        weights_tmp.unlink(missing_ok=True)
        card_tmp.unlink(missing_ok=True)
    return weights_path


def read_card(name: str, directory: str | Path = DEFAULT_CHECKPOINT_DIR) -> dict:
    """The model card of checkpoint `name`: a JSON object; CheckpointError with the reason otherwise."""
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"no model card {path.name}")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"model card {path.name} is not valid JSON: {error}") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"model card {path.name} holds {type(card).__name__}, not a JSON object")
    for section in ("training", "evaluation"):
        if section in card and not isinstance(card[section], dict):
            raise CheckpointError(f"model card {path.name}: '{section}' is not a JSON object")
    return card


def card_config(card: dict, name: str) -> ModelConfig:
    """The architecture a card describes; CheckpointError naming what is wrong."""
    try:
        return ModelConfig.from_dict(card["config"])
    except KeyError:
        raise CheckpointError(f"model card {name}.json has no 'config'") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"model card {name}.json has no valid 'config': {error}") from None


def weights_path(card: dict, name: str, directory: str | Path) -> Path:
    """The card's weights file: a plain file name in the card's own folder (no path, no '..');
    <name>.safetensors when the named file is absent (a checkpoint pair renamed together)."""
    file_name = card.get("weights", f"{name}.safetensors")
    if (
        not isinstance(file_name, str)
        or not file_name
        or Path(file_name).name != file_name
        or file_name in (".", "..")
        or "\\" in file_name
    ):
        raise CheckpointError(
            f"model card {name}.json: 'weights' must be a file name in the same folder, got {file_name!r}"
        )
    path = Path(directory) / file_name
    beside = Path(directory) / f"{name}.safetensors"
    if not path.is_file() and beside.is_file():
        return beside  # a pair renamed together: the card still names the old file
    if not path.is_file():
        raise CheckpointError(f"weights file {file_name} of {name} is missing")
    return path


@dataclass(frozen=True)
class CheckpointInfo:
    """What the app needs to list a checkpoint before loading it: name, architecture, title, card."""

    name: str
    config: ModelConfig
    card: dict

    @property
    def pam_affinity(self) -> float:
        settings = self.card.get("training", {}).get("settings", {})
        return (as_number(settings.get("pam_affinity")) if isinstance(settings, dict) else None) or 0.0

    @property
    def label(self) -> str:
        """Short enough for a select box: the name, and "PAM + class affinity" where it applies."""
        return (
            f"{self.name} (PAM + class affinity)"
            if self.pam_affinity > 0 and "affinity" not in self.name
            else self.name
        )

    @property
    def title(self) -> str:
        """E.g. "danet-eca · DANet head · ECA (Efficient Channel Attention) in the backbone"."""
        head = "DANet head" if self.config.head == "danet" else f"{self.config.head.upper()} head"
        parts = [self.name, head, f"{ATTENTION_TITLES[self.config.attention]} in the backbone"]
        if self.pam_affinity > 0:
            parts.append("PAM supervised with class affinity")
        return " · ".join(parts)


def card_summary(card: dict) -> dict:
    """What the Overview shows of a model card, read defensively (a hand-edited card may hold anything):
    {"evaluation": str | None, "training": str | None, "note": str | None, "history": [dict] (epoch, loss,
    val_miou where present; entries of the wrong type dropped)}."""
    evaluation = card.get("evaluation") if isinstance(card.get("evaluation"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    settings = training.get("settings") if isinstance(training.get("settings"), dict) else {}
    summary = {"evaluation": None, "training": None, "note": None, "history": []}
    miou = as_number(evaluation.get("miou"))
    if miou is not None:
        parts = [f"mIoU on the CamVid {evaluation.get('split', 'test')} split: **{miou:.1%}**"]
        for key, title in (("parameters", "parameters"), ("attention_parameters", "attention parameters")):
            if as_number(evaluation.get(key)) is not None:
                parts.append(f"{title} {int(evaluation[key]):,}")
        summary["evaluation"] = ", ".join(parts) + "."
    if training:
        minutes = as_number(training.get("wall_time_s"))
        summary["training"] = (
            f"Trained {training.get('epochs', '?')} epochs on {training.get('device', '?')}"
            + (f" in {minutes / 60:.0f} min" if minutes is not None else "")
            + f"; batch {settings.get('batch_size', '?')}, crop {settings.get('crop', '?')}"
            + f", lr {settings.get('lr', '?')}"
            + (f", PAM affinity weight {settings['pam_affinity']}" if as_number(settings.get("pam_affinity")) else "")
            + f". Data: {training.get('data_licence', 'not stated')}."
        )
    if isinstance(training.get("note"), str):
        summary["note"] = training["note"]
    history = training.get("history") if isinstance(training.get("history"), list) else []
    for entry in history:
        if (
            isinstance(entry, dict)
            and as_number(entry.get("epoch")) is not None
            and as_number(entry.get("loss")) is not None
        ):
            clean = {"epoch": entry["epoch"], "loss": entry["loss"]}
            if as_number(entry.get("val_miou")) is not None:
                clean["val_miou"] = entry["val_miou"]
            summary["history"].append(clean)
    return summary


def inspect_checkpoint(name: str, directory: str | Path = DEFAULT_CHECKPOINT_DIR) -> CheckpointInfo:
    """Check a checkpoint's card and weights file without loading the weights."""
    card = read_card(name, directory)
    config = card_config(card, name)
    weights_path(card, name, directory)
    return CheckpointInfo(name, config, card)


def scan_checkpoints(directory: str | Path = DEFAULT_CHECKPOINT_DIR) -> tuple[list[CheckpointInfo], dict[str, str]]:
    """(the checkpoints in `directory` that can be loaded, {name: reason} for those that cannot)."""
    usable, problems = [], {}
    for name in list_checkpoints(directory):
        try:
            usable.append(inspect_checkpoint(name, directory))
        except CheckpointError as error:
            problems[name] = str(error)
    return usable, problems


def list_checkpoints(directory: str | Path = DEFAULT_CHECKPOINT_DIR) -> list[str]:
    """Names with a .json model card in `directory` (whether they load is `scan_checkpoints`' question)."""
    directory = Path(directory)
    return sorted(
        p.stem
        for p in directory.glob("*.json")
        if p.stem != "results" and p.stem != "bench" and not p.name.startswith(".")
    )


def key_mismatch_report(heading: str, **groups: list[str]) -> str:
    """A heading, then one line per non-empty group of keys ("shape_mismatch" -> "shape mismatch"),
    each with its count and at most 8 of its keys."""
    lines = [heading]
    for title, keys in groups.items():
        if keys:
            shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8} more)" if len(keys) > 8 else "")
            lines.append(f"  {title.replace('_', ' ')} ({len(keys)}): {shown}")
    return "\n".join(lines)


def state_dict_mismatch(
    heading: str, expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> str | None:
    """None when `state` has exactly the keys and shapes of `expected`; else `key_mismatch_report`'s message
    (missing, unexpected and mis-shaped keys with their counts)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        return key_mismatch_report(heading, missing=missing, unexpected=unexpected, shape_mismatch=mismatched)
    return None


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict that names every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    problem = state_dict_mismatch(f"{source} does not match the architecture:", expected, state)
    if problem:
        raise CheckpointError(problem)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def load_checkpoint(
    name: str, directory: str | Path = DEFAULT_CHECKPOINT_DIR, device: str | torch.device = "cpu"
) -> tuple[SegmentationModel, dict]:
    """(model in eval mode on `device`, card) for checkpoint `name`; CheckpointError on any problem."""
    info = inspect_checkpoint(name, directory)
    path = weights_path(info.card, name, directory)
    model = SegmentationModel(info.config)
    try:
        state = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {error}") from None
    load_state_dict_checked(model, state, path.name)
    return model.to(device).eval(), info.card
