"""Read checkpoints/results.json, the file `python -m attnviz.evaluate` writes.

The pages show these figures; this module is the one place that knows the
file's schema, and it tolerates a missing or partly broken file (a page then
says what is missing instead of failing).
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["as_number", "read_results", "model_results", "results_rows", "pam_ratio_text", "markdown_tables"]


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


def as_number(value) -> float | None:
    """`value` as a float if it is a JSON number (not a bool, not a string), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(entry: dict, key: str, scale: float = 1.0):
    value = as_number(entry.get(key))
    return None if value is None else value * scale


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


def markdown_tables(results: dict) -> str:
    """The README's tables (overall and per class) from a results file, best test mIoU first."""
    models = {name: entry for name, entry in (results.get("models") or {}).items() if isinstance(entry, dict)}
    order = sorted(models, key=lambda name: -(models[name].get("miou") or 0))
    lines = ["| model | test mIoU | pixel acc. | PAM own-class ratio (mean / median) | PAM α | parameters "
             "| attention params | GMACs | CPU latency |", "|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        entry = models[name]
        ratio = entry.get("pam_own_class_ratio") or {}
        pam = f"{ratio['mean']:.2f}x / {ratio['median']:.2f}x" if ratio.get("mean") is not None else "–"
        alpha = f"{entry['pam_alpha']:.3f}" if entry.get("pam_alpha") is not None else "–"
        lines.append(f"| {name} | {entry['miou']:.1%} | {entry['pixel_accuracy']:.1%} | {pam} | {alpha} "
                     f"| {entry['parameters']:,} | {entry['attention_parameters']:,} | {entry['macs'] / 1e9:.3f} "
                     f"| {entry['latency_ms']:.1f} ms |")
    classes = list(next(iter(models.values()), {}).get("per_class_iou", {}))
    lines += ["", "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for name in order:
        ious = models[name].get("per_class_iou", {})
        lines.append(f"| {name} | " + " | ".join("–" if ious.get(c) is None else f"{100 * ious[c]:.0f}"
                                                 for c in classes) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "checkpoints" / "results.json"
    print(markdown_tables(read_results(source)))
