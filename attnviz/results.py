"""Read checkpoints/results.json, the file `python -m attnviz.evaluate` writes.

The pages show these figures; this module is the one place that knows the
file's schema, and it tolerates a missing or partly broken file (a page then
says what is missing instead of failing).
"""

from __future__ import annotations

import json
from pathlib import Path

from attnviz.i18n import translate

__all__ = [
    "BASELINE",
    "COLUMN_HELP",
    "as_number",
    "read_results",
    "model_results",
    "miou_interval",
    "paired_difference",
    "results_rows",
    "class_figure",
    "markdown_tables",
    "EFFECTS",
    "switch_figures",
    "switch_text",
    "interventions_source",
    "interventions_tables",
]


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


BASELINE = "fcn-none"
DASH = "–"

# The compare table's columns and what each says (the tooltip of its header); a dash means "no figure".
COLUMN_HELP = {
    "model": "Checkpoint name: <head>-<attention module>.",
    "test mIoU (%)": "Mean IoU over the 11 CamVid classes on the 233 test photos.",
    "95% interval (%)": "Percentile bootstrap over the test photos (seed 0): where the mIoU would fall on other "
    "photos like these. It does not cover training seeds (one seed per model).",
    f"vs {BASELINE} (points)": f"mIoU minus {BASELINE}'s (the no-attention baseline), with the 95% interval of a "
    "paired bootstrap over the same photos. – for the baseline itself.",
    "beyond test noise": f"'yes' when the interval of the difference to {BASELINE} excludes 0. Differences inside "
    "test noise cannot rank the modules; seed noise comes on top.",
    "pixel acc. (%)": "Share of labelled test pixels classified right.",
    "PAM own-class (x chance)": "DANet models: share of a row of S on the query pixel's own class over that class's "
    "share of the photo (1.00x = chance; mean over query cells, with its 95% bootstrap "
    "interval over photos). – : no position attention.",
    "PAM far-key own-class (x chance)": "The same over far keys only (the query's nearest 10% of cells dropped): a "
    "local attention scores about 1, a semantic one stays high; 95% bootstrap "
    "interval over photos. – : no position attention.",
    "PAM α": "The learned weight of the attention output (E = α·D·Sᵀ + A; starts at 0). – : no position attention.",
    "parameters": "All parameters of the model.",
    "attention params": "Parameters of the attention modules alone.",
    "GMACs @360x480": "Multiply-adds of one 360x480 forward pass, in billions.",
    "CPU latency (ms)": "Median forward time, batch 1, 360x480, on the CPU of the machine that ran evaluate.",
}


def _number(entry: dict, key: str, scale: float = 1.0):
    value = as_number(entry.get(key))
    return None if value is None else value * scale


def _text(value, template: str) -> str:
    return DASH if value is None else template.format(value)


def miou_interval(entry: dict) -> tuple[float, float] | None:
    """(low, high) of the model's bootstrap interval of test mIoU, None when results.json has none."""
    interval = entry.get("miou_interval")
    if not isinstance(interval, dict):
        return None
    low, high = as_number(interval.get("low")), as_number(interval.get("high"))
    return None if low is None or high is None else (low, high)


def paired_difference(results: dict, model: str, other: str = BASELINE) -> dict | None:
    """mIoU(model) - mIoU(other) with its paired-bootstrap interval, read either way round; None if absent."""
    pairs = results.get("paired_differences")
    pairs = pairs if isinstance(pairs, dict) else {}
    for key, sign in ((f"{model} - {other}", 1.0), (f"{other} - {model}", -1.0)):
        entry = pairs.get(key)
        if isinstance(entry, dict) and all(as_number(entry.get(k)) is not None for k in ("difference", "low", "high")):
            low, high = sorted((sign * entry["low"], sign * entry["high"]))
            return {
                "difference": sign * entry["difference"],
                "low": low,
                "high": high,
                "beyond_noise": bool(low > 0 or high < 0),
            }
    return None


def _difference_text(difference: dict | None) -> str:
    if difference is None:
        return DASH
    return f"{100 * difference['difference']:+.2f} [{100 * difference['low']:+.2f}, {100 * difference['high']:+.2f}]"


def _pam_block(entry: dict, key: str) -> dict:
    """A PAM figure's block: "own" -> pam_own_class_ratio, "far" -> pam_quality.far_key_ratio ({} if absent)."""
    if key == "own":
        block = entry.get("pam_own_class_ratio")
    else:
        quality = entry.get("pam_quality")
        block = quality.get("far_key_ratio") if isinstance(quality, dict) else None
    return block if isinstance(block, dict) else {}


def _pam_text(entry: dict, key: str) -> str:
    """ "1.48x [1.31, 1.66]": the mean with its bootstrap interval over photos when there is one; a dash if none."""
    block = _pam_block(entry, key)
    mean = _number(block, "mean")
    if mean is None:
        return DASH
    bounds = block.get("interval")
    if isinstance(bounds, list) and len(bounds) == 2 and all(as_number(b) is not None for b in bounds):
        return f"{mean:.2f}x [{bounds[0]:.2f}, {bounds[1]:.2f}]"
    return f"{mean:.2f}x"


def _models(results: dict) -> dict[str, dict]:
    models = results.get("models")
    return {
        name: entry for name, entry in (models.items() if isinstance(models, dict) else []) if isinstance(entry, dict)
    }


def results_rows(results: dict) -> list[dict]:
    """The compare table: one row per model, best test mIoU first, every cell text (a dash where a figure is
    missing or does not apply); the columns are COLUMN_HELP's."""
    models = _models(results)
    order = sorted(models, key=lambda name: -(_number(models[name], "miou") or 0.0))
    rows = []
    for name in order:
        entry = models[name]
        interval = miou_interval(entry)
        difference = None if name == BASELINE else paired_difference(results, name)
        rows.append(
            {
                "model": name,
                "test mIoU (%)": _text(_number(entry, "miou", 100), "{:.1f}"),
                "95% interval (%)": DASH if interval is None else f"{100 * interval[0]:.1f}–{100 * interval[1]:.1f}",
                f"vs {BASELINE} (points)": _difference_text(difference),
                "beyond test noise": DASH if difference is None else ("yes" if difference["beyond_noise"] else "no"),
                "pixel acc. (%)": _text(_number(entry, "pixel_accuracy", 100), "{:.1f}"),
                "PAM own-class (x chance)": _pam_text(entry, "own"),
                "PAM far-key own-class (x chance)": _pam_text(entry, "far"),
                "PAM α": _text(_number(entry, "pam_alpha"), "{:.3f}"),
                "parameters": _text(_number(entry, "parameters"), "{:,.0f}"),
                "attention params": _text(_number(entry, "attention_parameters"), "{:,.0f}"),
                "GMACs @360x480": _text(_number(entry, "macs", 1e-9), "{:.3f}"),
                "CPU latency (ms)": _text(_number(entry, "latency_ms"), "{:.1f}"),
            }
        )
    return rows


def class_figure(entry: dict, class_name: str) -> dict | None:
    """The model's per-class PAM figures for `class_name` ({"queries", "own_class_ratio", "far_key_ratio",
    ...}), None when results.json has none."""
    quality = entry.get("pam_quality")
    per_class = quality.get("per_class") if isinstance(quality, dict) else None
    figure = per_class.get(class_name) if isinstance(per_class, dict) else None
    return figure if isinstance(figure, dict) and as_number(figure.get("queries")) else None


def markdown_tables(results: dict) -> str:
    """The README's tables from a results file, best test mIoU first: overall (with the intervals), the
    attention-quality figures of the DANet models, and per-class IoU."""
    rows = results_rows(results)
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    models = _models(results)
    quality = {
        name: models[name]["pam_quality"]
        for name in (r["model"] for r in rows)
        if isinstance(models[name].get("pam_quality"), dict) and models[name]["pam_quality"]
    }
    if quality:
        lines += [
            "",
            "| model | own-class: mean [95% interval] / median | far-key own-class: mean [95% interval] "
            "/ median | far-key > 1 | row entropy (log N) | mass on nearest 5% |",
            "|---|---|---|---|---|---|",
        ]
        for name, figures in quality.items():
            own = models[name].get("pam_own_class_ratio") or {}
            far, entropy, near = figures["far_key_ratio"], figures["row_entropy"], figures["near_mass"]
            lines.append(
                f"| {name} | {_pam_text(models[name], 'own')} / {own.get('median', 0):.2f}x "
                f"| {_pam_text(models[name], 'far')} / {far['median']:.2f}x | {far['above_chance']:.0%} "
                f"| {entropy['mean']:.2f} ({entropy['log_n']:.2f}) | {near['mean']:.1%} |"
            )
        classes = list(next(iter(quality.values())).get("per_class", {}))
        for figures in quality.values():
            classes += [c for c in figures.get("per_class", {}) if c not in classes]
        lines += [
            "",
            "| far-key own-class (x chance), (query cells of the class) | " + " | ".join(classes) + " |",
            "|---|" + "---|" * len(classes),
        ]
        for name, figures in quality.items():
            cells = []
            for c in classes:
                figure = figures.get("per_class", {}).get(c)
                ratio = None if figure is None else as_number(figure.get("far_key_ratio"))
                cells.append(DASH if ratio is None else f"{ratio:.2f}x ({figure['queries']})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    classes = list(next(iter(models.values()), {}).get("per_class_iou", {}))
    lines += ["", "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for name in (r["model"] for r in rows):
        ious = models[name].get("per_class_iou", {})
        lines.append(
            f"| {name} | " + " | ".join(DASH if ious.get(c) is None else f"{100 * ious[c]:.0f}" for c in classes) + " |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- interventions
# results.json's "interventions" section (python -m attnviz.evaluate --interventions): per model, the change in
# mIoU with each attention kind ("kinds") or each kind's stage ("stages") switched off or flattened

SWITCH_MODES = ("off", "flat")
# what a switch's interval says: below 0 (the model needs the module), above 0, beyond noise but under
# NEGLIGIBLE in size, or it includes 0
EFFECTS = ("lower", "higher", "negligible", "unmeasurable")
NEGLIGIBLE = 0.001  # an mIoU change under 0.1 points, even beyond the test photos' noise, is next to nothing


def _switch_figure(block) -> dict | None:
    """{"difference", "low", "high", "effect"} of one switch (mIoU fractions), None when absent or malformed."""
    if not isinstance(block, dict):
        return None
    difference, low, high = (as_number(block.get(key)) for key in ("difference", "low", "high"))
    if difference is None or low is None or high is None:
        return None
    effect = "lower" if high < 0 else "higher" if low > 0 else "unmeasurable"
    if effect != "unmeasurable" and abs(difference) < NEGLIGIBLE:
        effect = "negligible"
    return {"difference": difference, "low": low, "high": high, "effect": effect}


def switch_figures(results: dict, section: str = "kinds") -> list[dict]:
    """One row per model and switched group of `section` ("kinds": every module of a kind at once; "stages":
    one kind's modules in one stage), models by name: {"model", "module", "miou" (the plain model's), "off",
    "flat"} with each mode's `_switch_figure` (None where missing)."""
    block = results.get("interventions")
    models = block.get("models") if isinstance(block, dict) else None
    rows = []
    for name, entry in sorted(models.items() if isinstance(models, dict) else []):
        groups = entry.get(section) if isinstance(entry, dict) else None
        for group, figures in groups.items() if isinstance(groups, dict) else []:
            figures = figures if isinstance(figures, dict) else {}
            rows.append(
                {
                    "model": name,
                    "module": group,
                    "miou": as_number(entry.get("miou")),
                    **{mode: _switch_figure(figures.get(mode)) for mode in SWITCH_MODES},
                }
            )
    return rows


def switch_text(figure: dict | None) -> str:
    """ "-1.23 [-1.80, -0.70]": the change in mIoU points with its 95% interval; a dash when missing."""
    if figure is None:
        return DASH
    return f"{100 * figure['difference']:+.2f} [{100 * figure['low']:+.2f}, {100 * figure['high']:+.2f}]"


def interventions_source(results: dict) -> dict[str, object]:
    """How the interventions section was made: {"command", "cpu", "threads", "photos", "missing" (the passes
    not yet run)}; "?" where unsaid."""
    block = results.get("interventions")
    meta = block.get("meta") if isinstance(block, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    machine = meta["machine"] if isinstance(meta.get("machine"), dict) else {}
    missing = meta.get("missing")
    return {
        "command": str(meta.get("command", "python -m attnviz.evaluate --interventions")).strip(),
        "cpu": machine.get("cuda") or machine.get("cpu", "?"),
        "threads": machine.get("threads", "?"),
        "photos": meta.get("photos", "?"),
        "missing": [str(item) for item in missing] if isinstance(missing, list) else [],
    }


def interventions_tables(results: dict) -> str:
    """The README's tables of the interventions section: every kind switched at once, then stage by stage;
    "" without the section."""
    words = {effect: translate(f"compare.switches.effects.{effect}", "en") for effect in EFFECTS}
    tables = []
    for section, title in (("kinds", "switched (all at once)"), ("stages", "switched (one stage)")):
        rows = switch_figures(results, section)
        if not rows:
            continue
        lines = [
            f"| model | {title} | off: Δ mIoU (points) [95%] | off | flat: Δ mIoU (points) [95%] | flat |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            cells = [row["model"], row["module"]]
            for mode in SWITCH_MODES:
                figure = row[mode]
                cells += [switch_text(figure), DASH if figure is None else words[figure["effect"]]]
            lines.append("| " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


if __name__ == "__main__":
    import sys

    source = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "checkpoints" / "results.json"
    )
    results = read_results(source)
    print("\n\n".join(filter(None, (markdown_tables(results), interventions_tables(results)))))
