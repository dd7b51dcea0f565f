"""Read checkpoints/results.json, the file `python -m attnviz.evaluate` writes.

The pages show these figures; this module is the one place that knows the
file's schema, and it tolerates a missing or partly broken file (a page then
says what is missing instead of failing).
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_results", "model_results", "results_rows", "pam_ratio_text"]


def read_results(path: str | Path) -> dict:
    """The parsed results file, or {} when it is missing or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_results(results: dict, name: str) -> dict:
    """One model's entry ({} when absent)."""
    models = results.get("models")
    entry = models.get(name) if isinstance(models, dict) else None
    return entry if isinstance(entry, dict) else {}


def _number(entry: dict, key: str, scale: float = 1.0):
    value = entry.get(key)
    return value * scale if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def results_rows(results: dict) -> list[dict]:
    """One row per model for the compare table; None where a figure is missing."""
    models = results.get("models")
    rows = []
    for name, entry in (models.items() if isinstance(models, dict) else []):
        if not isinstance(entry, dict):
            continue
        ratio = entry.get("pam_own_class_ratio")
        ratio = ratio if isinstance(ratio, dict) else {}
        rows.append({
            "model": name,
            "test mIoU": _number(entry, "miou"),
            "pixel acc.": _number(entry, "pixel_accuracy"),
            "PAM own-class ratio": _number(ratio, "mean"),
            "PAM α": _number(entry, "pam_alpha"),
            "parameters": _number(entry, "parameters"),
            "attention params": _number(entry, "attention_parameters"),
            "GMACs @360x480": _number(entry, "macs", 1e-9),
            "CPU latency (ms)": _number(entry, "latency_ms"),
        })
    return rows


def pam_ratio_text(entry: dict) -> str | None:
    """The model's PAM own-class figure in words, or None when results.json has none."""
    ratio = entry.get("pam_own_class_ratio")
    if not isinstance(ratio, dict) or not isinstance(ratio.get("mean"), (int, float)):
        return None
    return (f"{ratio['mean']:.2f}x chance on average (median {ratio.get('median', float('nan')):.2f}x) over "
            f"{ratio.get('queries', '?'):,} query cells of the test split ({ratio.get('per_photo', '?')} per photo, "
            f"cells at least {ratio.get('purity', 0.8):.0%} one class)")
