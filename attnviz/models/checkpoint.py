"""Checkpoint I/O: <name>.safetensors (weights) beside <name>.json (model card).

Loading never unpickles: weights come from safetensors only, and the card is
JSON. A checkpoint whose keys or shapes do not match the architecture in its
card gets an error that names them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attnviz.models.segmentation import ModelConfig, SegmentationModel

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_card", "list_checkpoints",
           "load_state_dict_checked", "DEFAULT_CHECKPOINT_DIR"]

DEFAULT_CHECKPOINT_DIR = Path(os.environ.get("ATTNVIZ_CHECKPOINTS") or Path(__file__).resolve().parents[2] / "checkpoints")


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(model: SegmentationModel, name: str, card: dict,
                    directory: str | Path = DEFAULT_CHECKPOINT_DIR, half: bool = True) -> Path:
    """Write <name>.safetensors (floats in fp16 when `half`) and <name>.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value.contiguous()
    weights_path = directory / f"{name}.safetensors"
    save_file(state, str(weights_path), metadata={"name": name, "format": "attnviz-1"})
    card = {**card, "name": name, "config": model.config.to_dict(),
            "weights": weights_path.name, "weights_dtype": "float16" if half else "float32"}
    (directory / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return weights_path


def read_card(name: str, directory: str | Path = DEFAULT_CHECKPOINT_DIR) -> dict:
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        raise CheckpointError(f"no model card {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"model card {path} is not valid JSON: {error}") from None


def list_checkpoints(directory: str | Path = DEFAULT_CHECKPOINT_DIR) -> list[str]:
    """Names with both a .safetensors and a .json in `directory`."""
    directory = Path(directory)
    return sorted(p.stem for p in directory.glob("*.safetensors") if (directory / f"{p.stem}.json").exists())


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict that names every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not match the architecture:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8} more)" if len(keys) > 8 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def load_checkpoint(name: str, directory: str | Path = DEFAULT_CHECKPOINT_DIR,
                    device: str | torch.device = "cpu") -> tuple[SegmentationModel, dict]:
    """(model in eval mode on `device`, card) for checkpoint `name`."""
    directory = Path(directory)
    card = read_card(name, directory)
    weights_path = directory / card.get("weights", f"{name}.safetensors")
    if not weights_path.exists():
        raise CheckpointError(f"weights file {weights_path} is missing")
    try:
        config = ModelConfig.from_dict(card["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"model card {name}.json has no valid 'config': {error}") from None
    model = SegmentationModel(config)
    try:
        state = load_file(str(weights_path))
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{weights_path} is not a readable safetensors file: {error}") from None
    load_state_dict_checked(model, state, str(weights_path))
    return model.to(device).eval(), card
