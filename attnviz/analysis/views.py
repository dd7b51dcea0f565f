"""Plain views of what a page shows, computed without Streamlit so that they can be tested as values.

A page asks for a view and lays it out; every number it prints is a field here.

`position_view`: the Position page for one chosen pixel: its feature cell
(attnviz.analysis.geometry), row or column i of S (never the whole S: the record's
`row`/`column`), the top locations, the class share of the row when the photo
has labels, the far-key share (attnviz.analysis.quality), and the worked formula for
the largest entry. Any spatial self-attention record with row/column works:
DANet's PAM (Fu et al., CVPR 2019) and SAGAN / non-local blocks read from a
user's model (keys may lie on a sub-sampled grid: then the row is on the key
grid and there is no far-key figure), CCNet's criss-cross attention (a row is
zero off the query's cross), and GCNet's context block (one map shared by
every query, no per-entry formula).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from attnviz.analysis.attribution import cell_mass, rank_correlation, top_overlap
from attnviz.analysis.forward import Check, attention_share_on_class, feature_centre, feature_index, top_locations
from attnviz.analysis.geometry import same_place
from attnviz.analysis.quality import far_key_own_class_ratio
from attnviz.capture.recorder import split_name
from attnviz.capture.records import (
    BranchWeightRecord,
    ChannelAttentionRecord,
    CoordinateAttentionRecord,
    GateRecord,
    SpatialAttentionRecord,
    WindowAttentionRecord,
)
from attnviz.data.camvid import IGNORE_INDEX
from attnviz.i18n import DEFAULT_LANGUAGE, translate
from attnviz.results import BASELINE, DASH, as_number, model_results, switch_text

__all__ = [
    "MAX_PINS",
    "with_pin",
    "ClassShare",
    "PositionView",
    "position_view",
    "panel_views",
    "shared_colour_range",
    "cell_size",
    "SumReading",
    "sum_reading",
    "row_baseline",
    "FormulaPair",
    "formula_pair",
    "full_map_size",
    "position_notice",
    "CoordinateView",
    "coordinate_view",
    "most_varied_channel",
    "ChannelScaling",
    "channel_scaling",
    "findings_rows",
    "module_heads",
    "head_of",
    "GatePlane",
    "gate_planes",
    "branch_weights",
    "attribution_cells",
    "Agreement",
    "agreement",
    "top_overlap_chance",
    "card_rows",
    "recognised_by_structure",
    "ComputedModules",
    "computed_modules",
    "in_rows",
    "default_comparison",
    "centre_cell",
    "comparison_table",
    "photos_evaluated",
    "evaluation_source",
    "SWITCH_COLUMNS",
    "switch_table",
    "switch_summary",
    "ChannelMapSummary",
    "channel_map_summary",
    "channel_energy",
    "ChannelRow",
    "channel_row",
    "saturated_share",
    "telling_channel",
    "Spread",
    "spread",
    "BranchSum",
    "strongest_branch_sum",
    "spatial_partner",
    "bracketed",
    "plain_eca_layers",
    "se_parameters",
    "KernelLayer",
    "distinct_kernel_layers",
    "kernel_rule_rows",
    "released_kernels_text",
    "EcaNeighbourhoods",
    "eca_neighbourhoods",
    "KernelDerivation",
    "kernel_derivation",
    "cell_middle",
    "neighbours",
]

MODES = ("row", "column")
MAX_PINS = 4  # the Position page's pins at most (its link, the live canvas's data.max_pins)


def with_pin(pins, pixel: tuple[int, int], most: int = MAX_PINS) -> list[tuple[int, int]]:
    """The pins (oldest first) after `pixel` is chosen: it becomes the newest, an equal older pin is dropped, and
    past `most` the oldest go. The live canvas adds pins by the same rule in the page (attention_canvas.js)."""
    point = (int(pixel[0]), int(pixel[1]))
    return ([tuple(p) for p in pins if tuple(p) != point] + [point])[-most:]


@dataclass(frozen=True)
class ClassShare:
    """How much of a row of S falls on the query pixel's own class (labelled photos only)."""

    class_id: int  # IGNORE_INDEX: the pixel is unlabelled (no shares then)
    share: float = float("nan")  # of the row's mass on labelled pixels, the part on the class
    chance: float = float("nan")  # the class's share of the labelled photo
    far_key_ratio: float = float("nan")  # own-class ratio over the far keys only (nearest 10% of cells dropped)

    @property
    def ratio(self) -> float:
        return self.share / self.chance if self.chance else float("nan")


@dataclass(frozen=True)
class PositionView:
    pixel: tuple[int, int]  # (x, y) photo pixel
    index: int  # flat feature cell i
    cell: tuple[int, int]  # (row, col) of i on the feature grid
    feature_hw: tuple[int, int]  # the grid of `index`: the query grid for a row, the key grid for a column
    mode: str  # "row" (where i attends) or "column" (who attends to i)
    values: np.ndarray  # (h, w) row or column i of S
    top: list[int]  # flat indices of the largest values, largest first
    top_centres: list[tuple[int, int]]  # their cells' centres in photo pixels
    pixel_centre: tuple[int, int]  # the chosen cell's centre in photo pixels
    formula: tuple[int, int, float, float, float] | None  # (query, key, energy, log-normaliser, S entry) of
    #                                      top[0]; None for a record without per-entry maths (GCNet's map)
    class_share: ClassShare | None  # None: no labels, or a column (shares are of rows)
    values_hw: tuple[int, int] = (0, 0)  # the grid of `values`: the key grid for a row, else the query grid

    @property
    def num_pixels(self) -> int:
        return self.feature_hw[0] * self.feature_hw[1]

    @property
    def total(self) -> float:
        """The row's sum (1) or the column's (on average 1)."""
        return float(self.values.sum())

    @property
    def top_cells(self) -> list[tuple[int, int, float]]:
        """(row, col, value) of each top location."""
        width = self.values.shape[-1]
        return [(*divmod(t, width), float(self.values.flat[t])) for t in self.top]


def position_view(
    record,
    pixel: tuple[int, int],
    image_hw: tuple[int, int],
    mode: str = "row",
    label: np.ndarray | None = None,
    top_k: int = 5,
) -> PositionView:
    """Everything the Position page shows for integer photo pixel (x, y) on a photo of `image_hw`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x, y = pixel
    # the clicked pixel is a query for a row, a key for a column (keys may lie on their own, sub-sampled grid)
    query_hw = (record.height, record.width)
    feature_hw = query_hw if mode == "row" else tuple(record.key_grid)
    index = feature_index(x, y, image_hw, feature_hw)
    values = (record.row(index) if mode == "row" else record.column(index)).numpy()
    values_hw = tuple(values.shape[-2:])
    top = top_locations(values, top_k)
    query, key = (index, top[0]) if mode == "row" else (top[0], index)
    formula = (query, key, *record.entry(query, key)) if hasattr(record, "entry") else None
    class_share = None
    if label is not None and mode == "row":
        class_id = int(label[y, x])
        if class_id == IGNORE_INDEX:
            class_share = ClassShare(class_id)
        else:
            share, chance = attention_share_on_class(values, label, class_id)
            far = (
                far_key_own_class_ratio(values[None], label, [index], [class_id])[0]
                if values_hw == query_hw
                else float("nan")
            )
            class_share = ClassShare(class_id, share, chance, float(far))
    return PositionView(
        pixel=(x, y),
        index=index,
        cell=divmod(index, feature_hw[1]),
        feature_hw=feature_hw,
        mode=mode,
        values=values,
        top=top,
        top_centres=[feature_centre(t, image_hw, values_hw) for t in top],
        pixel_centre=feature_centre(index, image_hw, feature_hw),
        formula=formula,
        class_share=class_share,
        values_hw=values_hw,
    )


def panel_views(panels, pins: list[tuple[int, int]], image_hw: tuple[int, int], mode: str) -> list[list[PositionView]]:
    """The view of every pin on every panel (anything with `record`, `image` and `label`, as the Position
    page's panels): a pin on the photo of `image_hw` is read at the same place of each panel's own photo."""
    return [
        [
            position_view(
                panel.record,
                same_place(*pin, image_hw, panel.image.shape[:2]),
                panel.image.shape[:2],
                mode,
                panel.label,
            )
            for pin in pins
        ]
        for panel in panels
    ]


def shared_colour_range(views) -> tuple[float, float]:
    """One colour range for every map of `views` (lists of PositionView): from the smallest value, or 0 when
    none is negative, to the largest, so that the same colour means the same weight in every map."""
    values = [view.values for row in views for view in row]
    return min(0.0, *(float(v.min()) for v in values)), max(float(v.max()) for v in values)


def cell_size(image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) in photo pixels of one cell of a grid laid over the photo (floored)."""
    return image_hw[0] // grid_hw[0], image_hw[1] // grid_hw[1]


@dataclass(frozen=True)
class SumReading:
    """Row or column i of S against attention spread evenly. A softmax row sums to 1 over its `baseline`
    keys (Nk; H + W - 1 on a criss-cross), so a key's even share is 1 / baseline; a column of Nk keys
    receives on average N / Nk (1 unless the keys were sub-sampled)."""

    total: float  # the sum of the row or column shown
    largest: float  # its largest entry
    baseline: int  # the keys a row spreads over
    column_average: float  # N / Nk: what a column sums to on average

    @property
    def largest_over_even(self) -> float:
        """The largest entry of a row over the even share 1 / baseline."""
        return self.largest * self.baseline

    @property
    def total_over_average(self) -> float:
        """A column's sum over the average column's."""
        return self.total / self.column_average


def row_baseline(record, view: PositionView) -> int:
    """The keys the view's row spreads over (an even row gives 1 / this to each): the record's baseline, or, for
    a row of a Swin window, the keys that row can reach (`WindowAttentionRecord.reachable_keys`: fewer than the
    window's where a shifted block's mask cuts it)."""
    if view.mode == "row" and isinstance(record, WindowAttentionRecord):
        return record.reachable_keys(view.index)
    return record.baseline


def sum_reading(view: PositionView, record) -> SumReading:
    """How the view's row or column compares with even attention, for any spatial record (SpatialMap)."""
    baseline = row_baseline(record, view)
    return SumReading(view.total, float(view.values.max()), baseline, record.num_pixels / record.num_keys)


@dataclass(frozen=True)
class FormulaPair:
    """The entry S_ij worked out on the Position page: the chosen pixel and its top location, i the query
    and j the key (a row's chosen pixel is i; a column's is j), with their feature cells and this photo's
    numbers (energy B_i·C_j, log Z_i, S_ij)."""

    query: int
    key: int
    query_cell: tuple[int, int]  # (row, col) of i on the query grid
    key_cell: tuple[int, int]  # (row, col) of j on the key grid
    key_grid: tuple[int, int]  # the grid j lies on
    key_cell_size: tuple[int, int]  # photo pixels of one key cell (height, width)
    energy: float
    log_z: float
    entry: float
    even_ratio: float  # S_ij over the even share 1 / baseline


def formula_pair(view: PositionView, baseline: int, image_hw: tuple[int, int]) -> FormulaPair | None:
    """The view's worked formula (None when the record has no per-entry maths: GCNet's shared map)."""
    if view.formula is None:
        return None
    query, key, energy, log_z, entry = view.formula
    top_cell = view.top_cells[0][:2]
    query_cell, key_cell = (view.cell, top_cell) if view.mode == "row" else (top_cell, view.cell)
    key_grid = view.values_hw if view.mode == "row" else view.feature_hw
    return FormulaPair(
        query,
        key,
        tuple(query_cell),
        tuple(key_cell),
        tuple(key_grid),
        cell_size(image_hw, key_grid),
        energy,
        log_z,
        entry,
        entry * baseline,
    )


def full_map_size(record) -> int:
    """The entries of the whole S, N x Nk: what the page never builds."""
    return record.num_pixels * record.num_keys


def position_notice(source: str, affinity_weight: float = 0.0) -> str:
    """Which note on the classes fits the model shown: "affinity" (a shipped DANet whose PAM was supervised
    with class affinity), "plain" (a shipped DANet trained by the segmentation loss alone), "imagenet" (a timm
    classifier, trained on whole-photo labels) or "user" (a user's model: nothing known of its training)."""
    if source == "camvid":
        return "affinity" if affinity_weight > 0 else "plain"
    return "imagenet" if source == "timm" else "user"


def findings_rows(checks: list[Check], language: str = DEFAULT_LANGUAGE) -> list[dict[str, str]]:
    """The Overview's table of what attnviz found in a user's model (`Analysis.checks`), as text cells in
    `language`: module path, who found it, family (and form), map size, the check (verified, or why not; for
    the dataflow reader, how it found the module) and whether it is drawn."""

    def text(key: str, **values) -> str:
        return translate(f"overview.user.{key}", language, **values)

    def family(check: Check) -> str:  # a family is a name ("pam"); the type of a record found by dataflow, a word
        if check.reader == "dataflow" and check.drawn:
            return translate(f"overview.records.{check.family}", language)
        return check.family + (f" ({check.form})" if check.form else "")

    rows = []
    for check in checks:
        error = "–" if check.max_error is None else f"{check.max_error:.1e}"
        if check.reader == "dataflow":  # found by what it computes: its op's own output, nothing to verify against
            status = check.found_by.text(language) if check.found_by else "–"
        elif check.reader in ("library", "own"):  # read through its own gate, or a module that records itself
            status = text(f"status_{check.reader}")
        elif check.drawn:
            status = text("status_verified", error=error)
        else:
            status = check.reason.text(language) if check.reason else text("status_not_verified", error=error)
        rows.append(
            {
                "module": check.name,
                "reader": text(f"reader_{check.reader}"),
                "family": family(check),
                "map": text("map_keys", map=check.map, keys=check.keys) if check.keys else check.map or "–",
                "check": status,
                "drawn": text("drawn_yes" if check.drawn else "drawn_no"),
            }
        )
    return rows


@dataclass(frozen=True)
class CoordinateView:
    """What the Coordinate Attention page shows for one channel (Hou et al., CVPR 2021): y = x · a_h · a_w."""

    channel: int
    height_weights: np.ndarray  # (H,) a_h of the channel: one weight per feature row
    width_weights: np.ndarray  # (W,) a_w: one weight per feature column
    product: np.ndarray  # (H, W) a_h[i] * a_w[j]: the factor every feature cell is scaled by
    cell: tuple[int, int]  # the chosen pixel's feature (row, col)
    at_cell: tuple[float, float, float]  # (a_h, a_w, product) there


def coordinate_view(
    record, channel: int, pixel: tuple[int, int], image_hw: tuple[int, int], batch: int = 0
) -> CoordinateView:
    """Channel `channel` of a CoordinateAttentionRecord, and its factors at photo pixel (x, y)
    (attnviz.analysis.geometry)."""
    a_h = record.height_weights[batch, channel].double().numpy()
    a_w = record.width_weights[batch, channel].double().numpy()
    product = a_h[:, None] * a_w[None, :]
    row, col = divmod(feature_index(*pixel, image_hw, product.shape), product.shape[1])
    return CoordinateView(
        int(channel), a_h, a_w, product, (row, col), (float(a_h[row]), float(a_w[col]), float(product[row, col]))
    )


def most_varied_channel(record, batch: int = 0) -> int:
    """The channel whose factor a_h · a_w varies most over the map (the one worth showing first)."""
    a_h, a_w = record.height_weights[batch].double(), record.width_weights[batch].double()
    return int((a_h[:, :, None] * a_w[:, None, :]).flatten(1).std(1).argmax())


@dataclass(frozen=True)
class ChannelScaling:
    """One channel of a channel-attention layer on this photo: its input map x_c, its weight ω_c and the
    output ω_c · x_c (SE, ECA, flexible attention: y = x * w)."""

    channel: int
    weight: float
    before: np.ndarray  # (h, w) x_c, the layer's input
    after: np.ndarray  # (h, w) ω_c x_c


def channel_scaling(record, channel: int, batch: int = 0) -> ChannelScaling:
    """x_c and ω_c · x_c of a ChannelAttentionRecord captured with its features."""
    if record.features is None:
        raise ValueError("this record has no features: capture with keep_features=True")
    before = record.features[batch, channel].double().numpy()
    weight = float(record.weights[batch, channel])
    return ChannelScaling(int(channel), weight, before, weight * before)


# ----------------------------------------------------------------------------- heads, gates and branches
# what the dataflow reader finds in modules of no known family (attnviz.capture.dataflow), as the pages draw it


def head_of(name: str) -> tuple[str, str | None]:
    """(module, head) of a record name: "blocks.0.attn:head2" -> ("blocks.0.attn", "head2"), "x:mean" ->
    ("x", "mean"), a second call's "x:head0#1" -> ("x#1", "head0"); any other name is a module of its own,
    (name, None)."""
    path, part, call = split_name(name)
    if part == "mean" or (part.startswith("head") and part[4:].isdigit()):
        return path + (f"#{call}" if call else ""), part
    return name, None


def module_heads(names) -> dict[str, list[str]]:
    """The record names grouped by module, in the order the modules first appear: a module whose map has
    several heads (recorded as "module:head0", ..., "module:mean") gets its mean first, then its heads in
    order; any other name is a group of one."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(head_of(name)[0], []).append(name)

    def order(name: str) -> tuple[int, int]:
        part = head_of(name)[1]
        return (0, 0) if part in (None, "mean") else (1, int(part[4:]))

    return {module: sorted(members, key=order) for module, members in groups.items()}


@dataclass(frozen=True)
class GatePlane:
    """One (rows, columns) plane of a gate or of softmax weights, as drawn: its values and what it is."""

    values: np.ndarray  # (rows, columns)
    axes: tuple[str, str]  # the plane's (row axis, column axis) names, e.g. ("H", "W"), ("C", "W")
    descriptor: int | None = None  # the descriptor k of a softmax over descriptors at every pixel
    mean_over: str | None = None  # the axis averaged out (a gate per element: "C")


def gate_planes(record, batch: int = 0, max_planes: int = 8) -> list[GatePlane]:
    """What to draw of a GateRecord: a softmax over K descriptors at every pixel (axes K, H, W) gives one
    plane per descriptor (their mean is 1/K everywhere: nothing to see); a gate per element (C, H, W) gives
    its mean over C; a gate on a plane (TripletAttention's C x W) is that plane. At most `max_planes`."""
    gate = record.gate[batch].float().numpy()
    axes = tuple(record.axes[-2:])
    if record.axes[0] == "K" and gate.ndim == 3:
        return [GatePlane(gate[k], axes, descriptor=k) for k in range(min(gate.shape[0], max_planes))]
    if gate.ndim == 3:
        return [GatePlane(gate.mean(0), axes, mean_over=record.axes[0])]
    return [GatePlane(gate.reshape(-1, *gate.shape[-2:]).mean(0), axes)]


def branch_weights(record, batch: int = 0) -> np.ndarray:
    """(K, C) weights of a BranchWeightRecord (each channel's weights over the K branches sum to 1)."""
    return record.weights[batch].float().numpy()


# ----------------------------------------------------------------------------- attention vs attribution
# the Attribution page: where the chosen pixel's row of S looks, beside what drives its prediction
# (attnviz.analysis.attribution computes the maps)


def attribution_cells(attribution: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """An attribution map (H, W) or (3, H, W) as its magnitude's share in each cell of `grid` (sums to 1)."""
    return cell_mass(torch.from_numpy(np.asarray(attribution)), grid).numpy()


@dataclass(frozen=True)
class Agreement:
    """How an attribution map agrees with the attention row, cell by cell on the same grid."""

    rho: float  # Spearman's rank correlation of the two maps
    overlap: float  # share of the row's k largest cells that are among the attribution's k largest


def agreement(attention_row: np.ndarray, cells: np.ndarray, k: int) -> Agreement:
    """The rank correlation and the top-k overlap of two maps of one grid."""
    if np.shape(attention_row) != np.shape(cells):
        raise ValueError(f"the maps must share a grid, got {np.shape(attention_row)} and {np.shape(cells)}")
    return Agreement(rank_correlation(attention_row, cells), top_overlap(attention_row, cells, k))


def top_overlap_chance(grid: tuple[int, int], k: int) -> float:
    """The top-k overlap of two unrelated maps on average: each of the row's k cells is among the other's k
    with probability k / cells (k at most the grid's cells)."""
    cells = grid[0] * grid[1]
    return min(k, cells) / cells


# ----------------------------------------------------------------------------- the Overview
# a shipped model's card, and what a user's model holds, sorted for display


def card_rows(card: dict, language: str = DEFAULT_LANGUAGE) -> list[dict[str, str]]:
    """The model card's figures as (label, value) rows in `language`, read defensively (a hand-edited card may
    hold anything); a field the card lacks is left out."""
    evaluation = card.get("evaluation") if isinstance(card.get("evaluation"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    settings = training.get("settings") if isinstance(training.get("settings"), dict) else {}
    field, value_column = translate("overview.card.field", language), translate("overview.card.value", language)
    rows = []

    def add(key: str, value) -> None:
        if value is not None and value != "":
            rows.append({field: translate(f"overview.card.{key}", language), value_column: str(value)})

    miou = as_number(evaluation.get("miou"))
    add("miou", None if miou is None else f"{miou:.1%}")
    add("split", evaluation.get("split") if isinstance(evaluation.get("split"), str) else None)
    for key in ("parameters", "attention_parameters"):
        number = as_number(evaluation.get(key))
        add(key, None if number is None else f"{int(number):,}")
    if training:
        add("epochs", training.get("epochs"))
        add("device", training.get("device"))
        seconds = as_number(training.get("wall_time_s"))
        add(
            "minutes",
            None if seconds is None else translate("overview.card.minutes_value", language, minutes=seconds / 60),
        )
        add("batch_size", settings.get("batch_size"))
        crop = settings.get("crop")
        add("crop", " x ".join(str(c) for c in crop) if isinstance(crop, list) else crop)
        add("lr", settings.get("lr"))
        add("pam_affinity", settings["pam_affinity"] if as_number(settings.get("pam_affinity")) else None)
        add("licence", training.get("data_licence"))
    return rows


def recognised_by_structure(records: dict) -> dict:
    """The records of `records` that a reader other than the dataflow reader found (CBAM's spatial gate,
    CoordAtt by their structure), in order."""
    return {name: record for name, record in records.items() if record.reader != "dataflow"}


@dataclass(frozen=True)
class ComputedModules:
    """What the dataflow reader found in a user's model, by how the Overview draws it (each a dict of record
    name -> record, in the model's order)."""

    spatial: dict  # spatial gates, drawn over the photo
    coordinates: dict  # coordinate attention's a_h and a_w
    channel_gates: dict  # sigmoid gates over channels, one row a layer
    channel_softmaxes: dict  # softmax weights over channels, sorted
    branches: dict  # softmax weights over branches
    planes: dict  # gates on elements or planes

    def __bool__(self) -> bool:
        return any(vars(self).values())


def computed_modules(records: dict) -> ComputedModules:
    """The records of `records` that the dataflow reader found (modules of no known family), grouped by how
    they are drawn."""
    found = {name: record for name, record in records.items() if record.reader == "dataflow"}

    def of(kind, gate: bool | None = None) -> dict:
        return {
            name: record
            for name, record in found.items()
            if isinstance(record, kind) and (gate is None or (record.kind == "gate") == gate)
        }

    return ComputedModules(
        of(SpatialAttentionRecord),
        of(CoordinateAttentionRecord),
        of(ChannelAttentionRecord, gate=True),
        of(ChannelAttentionRecord, gate=False),
        of(BranchWeightRecord),
        of(GateRecord),
    )


def in_rows(items, per_row: int) -> list[list]:
    """`items` in rows of `per_row` (the last row may be shorter)."""
    items = list(items)
    return [items[start : start + per_row] for start in range(0, len(items), per_row)]


# ----------------------------------------------------------------------------- Compare
# the models compared on one photo, and the evaluation table of results.json (attnviz.results)

COMPARED_FIRST = ("fcn-none", "fcn-se", "fcn-eca", "fcn-cbam")  # the models compared when the page opens
MOST_COMPARED = 4


def default_comparison(names: list[str]) -> list[str]:
    """The models compared first: the plain FCN and its channel-attention variants where shipped (at most
    MOST_COMPARED), else the first two models."""
    return [name for name in COMPARED_FIRST if name in names][:MOST_COMPARED] or names[:2]


def centre_cell(image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> int:
    """The flat index of the grid cell under the photo's centre pixel (w // 2, h // 2)."""
    height, width = image_hw
    return feature_index(width // 2, height // 2, image_hw, grid_hw)


def comparison_table(rows: list[dict], shown: list[str], yes: str, no: str) -> pd.DataFrame:
    """results_rows as a table, with the compact columns of the page's first table: "shown" (the model is
    compared above), "difference" (from the baseline, without its interval) and "beyond" (`yes` / `no`, a
    dash where the results say neither)."""
    table = pd.DataFrame(rows)
    table.insert(1, "shown", table["model"].isin(shown))
    table["difference"] = table[f"vs {BASELINE} (points)"].str.split(" [", n=1, regex=False).str[0]
    table["beyond"] = table["beyond test noise"].map({"yes": yes, "no": no}).fillna(DASH)
    return table


def photos_evaluated(results: dict, models) -> int | str:
    """The test photos behind the figures of `models` (the most any was evaluated on), "?" when none says."""
    photos = max((as_number(model_results(results, name).get("images")) or 0 for name in models), default=0)
    return int(photos) if photos else "?"


def evaluation_source(results: dict) -> dict[str, object]:
    """How results.json was made: its command, the CPU and the latency threads and repeats ("?" if unsaid)."""
    meta = results["meta"] if isinstance(results.get("meta"), dict) else {}
    machine = meta["machine"] if isinstance(meta.get("machine"), dict) else {}
    return {
        "command": str(meta.get("command", "python -m attnviz.evaluate")).strip(),
        "cpu": machine.get("cpu", "?"),
        "threads": meta.get("latency_threads", "?"),
        "repeats": meta.get("latency_repeats", "?"),
    }


SWITCH_COLUMNS = ("model", "module", "off", "off_effect", "flat", "flat_effect")


def switch_group_label(group: str, kind_words: dict[str, str] | None = None) -> str:
    """A switched group ("eca", or "eca @ backbone.layer2" by stage) named by its kind's word in `kind_words`."""
    kind, at, stage = group.partition(" @ ")
    return (kind_words or {}).get(kind, kind) + (f" @ {stage}" if at else "")


def switch_table(
    figures: list[dict], effect_words: dict[str, str], kind_words: dict[str, str] | None = None
) -> pd.DataFrame:
    """results.switch_figures as the page's table (SWITCH_COLUMNS): each mode's change in mIoU points with its
    interval, and what that interval says in `effect_words` (keyed by results.EFFECTS); a dash where missing.
    A group ("eca", or "eca @ backbone.layer2" by stage) is named by its kind's word in `kind_words`."""
    rows = []
    for figure in figures:
        row = {"model": figure["model"], "module": switch_group_label(figure["module"], kind_words)}
        for mode in ("off", "flat"):
            row[mode] = switch_text(figure[mode])
            row[f"{mode}_effect"] = DASH if figure[mode] is None else effect_words[figure[mode]["effect"]]
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SWITCH_COLUMNS))


def switch_summary(figures: list[dict]) -> dict | None:
    """The switches in a sentence: {"switches" (with a figure), "unmeasurable" (whose interval includes 0),
    "model", "module", "mode", "difference" (in points)} of the largest change by size; None without figures."""
    found = [(row, mode) for row in figures for mode in ("off", "flat") if row[mode] is not None]
    if not found:
        return None
    row, mode = max(found, key=lambda item: abs(item[0][item[1]]["difference"]))
    return {
        "switches": len(found),
        "unmeasurable": sum(row_[mode_]["effect"] == "unmeasurable" for row_, mode_ in found),
        "negligible": sum(row_[mode_]["effect"] == "negligible" for row_, mode_ in found),
        "model": row["model"],
        "module": row["module"],
        "mode": mode,
        "difference": 100 * row[mode]["difference"],
    }


# ----------------------------------------------------------------------------- DANet's channel map
# X (C x C, Fu et al., CVPR 2019): how peaked its rows are, and one row of it


ONE_HOT = 0.99  # a row of X whose largest entry is above this is, to the eye, one-hot


@dataclass(frozen=True)
class ChannelMapSummary:
    """What the Channel map page says of X as a whole."""

    channels: int  # C
    one_hot: float  # the share of rows whose largest entry is above ONE_HOT
    most_peaked: int  # the row with the largest entry (the channel shown first)

    @property
    def mostly_one_hot(self) -> bool:
        return self.one_hot >= 0.5

    @property
    def uniform(self) -> float:
        """An entry of a row spread evenly over the C channels."""
        return 1 / self.channels

    @property
    def entries(self) -> int:
        """The entries of X, C x C."""
        return self.channels * self.channels


def channel_map_summary(attention: np.ndarray) -> ChannelMapSummary:
    """The summary of X, (C, C) with rows summing to 1."""
    largest = attention.max(1)
    return ChannelMapSummary(attention.shape[0], float(np.mean(largest > ONE_HOT)), int(largest.argmax()))


def channel_energy(features: torch.Tensor, batch: int = 0) -> np.ndarray:
    """A · Aᵀ in float64: the (C, C) dot products of the channel maps A_c (the features of `batch`)."""
    flat = features[batch].flatten(1).double()
    return (flat @ flat.T).numpy()


@dataclass(frozen=True)
class ChannelRow:
    """Row c of X: whom channel c mixes in, and how much."""

    channel: int
    values: np.ndarray  # (C,) X_c·, sums to 1
    total: float
    related: list[int]  # the largest entries' channels, largest first (the first is c's partner)

    @property
    def partner(self) -> int:
        return int(self.related[0])


def channel_row(attention: np.ndarray, channel: int, related: int = 6) -> ChannelRow:
    """Row `channel` of X and its `related` largest entries."""
    values = attention[channel]
    return ChannelRow(int(channel), values, float(values.sum()), top_locations(values, related))


# ----------------------------------------------------------------------------- channel weights
# SE, ECA and flexible attention (CBAM's channel branch): one weight per channel, ω = σ(...)

SATURATED = (0.05, 0.95)  # a sigmoid weight outside these is, to the eye, off or on


def saturated_share(weights: np.ndarray, bounds: tuple[float, float] = SATURATED) -> float:
    """The share of `weights` below bounds[0] or above bounds[1]."""
    low, high = bounds
    return float(np.mean((weights < low) | (weights > high)))


VARIES = 0.05  # a channel's weight "changes with the photo" when its photos' weights span at least this


def telling_channel(
    weights: np.ndarray, across: np.ndarray, bounds: tuple[float, float] = SATURATED, varies: float = VARIES
) -> int | None:
    """The channel a worked example should show: its weight on this photo (`weights`, (C,)) lies within
    `bounds` (neither switched off nor passed whole, so ω_c·x_c differs visibly from x_c), and its weights on
    the photos of `across` ((P, C)) span at least `varies`; of those, the one whose weight changes most across
    the photos. None when no channel qualifies (the page then says so)."""
    low, high = bounds
    weights, across = np.asarray(weights, dtype=float), np.asarray(across, dtype=float).reshape(-1, len(weights))
    span = across.max(0) - across.min(0) if len(across) else np.zeros(len(weights))
    fits = (weights >= low) & (weights <= high) & (span >= varies)
    return int(np.flatnonzero(fits)[span[fits].argmax()]) if fits.any() else None


@dataclass(frozen=True)
class Spread:
    """The lowest, highest, mean and median of a map or of a layer's weights."""

    lowest: float
    highest: float
    mean: float
    median: float


def spread(values: np.ndarray) -> Spread:
    """The spread of `values` (the mean summed in float64; the median, a middle value, in their own precision)."""
    values = np.asarray(values)
    return Spread(
        float(values.min()), float(values.max()), float(values.astype(np.float64).mean()), float(np.median(values))
    )


@dataclass(frozen=True)
class BranchSum:
    """The weight of one channel of flexible attention: ω_c = σ(MLP(avg)_c + MLP(max)_c)."""

    channel: int
    avg: float  # MLP(AvgPool(F))_c
    max: float  # MLP(MaxPool(F))_c
    argument: float  # their sum, the sigmoid's argument
    weight: float  # ω_c


def strongest_branch_sum(avg: np.ndarray, mx: np.ndarray, weights: np.ndarray) -> BranchSum:
    """The branches of the most weighted channel (the sum is taken in the branches' own precision)."""
    top = int(weights.argmax())
    return BranchSum(top, float(avg[top]), float(mx[top]), float(avg[top] + mx[top]), float(weights[top]))


def spatial_partner(channel_layer: str) -> str:
    """The record name of the spatial gate that follows a CBAM channel gate: "layer4.cbam.channel" ->
    "layer4.cbam.spatial"."""
    return channel_layer.rsplit(".", 1)[0] + ".spatial"


def bracketed(value: float, digits: int = 3) -> str:
    """`value` as a term of a sum in a formula: a negative number in parentheses."""
    return f"({value:.{digits}f})" if value < 0 else f"{value:.{digits}f}"


def plain_eca_layers(layers: dict) -> dict:
    """The ECA layers with a plain 1D kernel and their pooled input recorded (every ECA of our models and of
    timm's ECA-ResNets and ECA-NFNet): those whose weight the ECA page works out."""
    return {name: record for name, record in layers.items() if record.kernel is not None and "pooled" in record.parts}


def se_parameters(channels: int, reduction: int = 16) -> int:
    """The weights of an SE block's two layers on C channels (C x C/r and C/r x C, biases left out)."""
    return 2 * channels * channels // reduction


@dataclass(frozen=True)
class KernelLayer:
    """An ECA layer as the kernel-size page marks it: its name, its channels C and its kernel size k."""

    name: str
    channels: int
    k: int


def distinct_kernel_layers(layers: dict) -> list[KernelLayer]:
    """The first ECA layer of each (C, k) among `layers` (name -> ChannelAttentionRecord; layers without a
    kernel left out), in order."""
    seen, marked = set(), []
    for name, record in layers.items():
        if record.kernel is None or (record.channels, len(record.kernel)) in seen:
            continue
        seen.add((record.channels, len(record.kernel)))
        marked.append(KernelLayer(name, record.channels, len(record.kernel)))
    return marked


TABLE_CHANNELS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def kernel_rule_rows(gamma: float, b: float, rules: dict, kernel_t, channels=TABLE_CHANNELS) -> list[dict]:
    """One row per C: C, t = (log2 C + b) / γ (`kernel_t`) rounded to 3 places, and the k of each of `rules`
    (column name -> rule(C, γ, b))."""
    rows = []
    for c in channels:
        row = {"C": c, "t = (log2 C + b)/γ": round(kernel_t(c, gamma, b), 3)}
        row.update({column: rule(c, gamma, b) for column, rule in rules.items()})
        rows.append(row)
    return rows


def released_kernels_text(released: dict) -> str:
    """The kernel sizes of the released models, "name: k1, k2, ...; name: ...", from name -> [(stage, k)]."""
    return "; ".join(f"{name}: {', '.join(str(k) for _, k in stages)}" for name, stages in released.items())


@dataclass(frozen=True)
class EcaNeighbourhoods:
    """ECA's 1D convolution across the channels, unrolled: what channel c reads from its k neighbours.

    Wang et al., CVPR 2020 (ECA-Net), eq. (4): ω_c = σ(Σ_j κ_j y_{c+j}), j = -(k-1)/2 .. (k-1)/2, with y the
    channels' averages. As the layer's Conv1d (zero padding (k-1)/2, no bias), a neighbour beyond either end of
    the channel axis reads 0. `bias` is a copy's Conv1d bias (0 in the paper's code). Row c of each (C, k) array
    is channel c's neighbourhood, in the kernel's order."""

    offsets: np.ndarray  # (k,) j = -(k-1)/2 .. (k-1)/2
    sources: np.ndarray  # (C, k) c + j: the neighbour's channel (below 0 or from C on: the padding)
    values: np.ndarray  # (C, k) y_{c+j}, 0 in the padding
    kernel: np.ndarray  # (k,) κ_j
    products: np.ndarray  # (C, k) κ_j · y_{c+j}
    bias: float
    sums: np.ndarray  # (C,) Σ_j κ_j · y_{c+j} + bias, the sigmoid's argument
    weights: np.ndarray  # (C,) ω_c = σ(sums)

    @property
    def padded(self) -> np.ndarray:
        """(C, k) True where the neighbour lies beyond the channel axis (a zero of the padding)."""
        return (self.sources < 0) | (self.sources >= len(self.sums))


def eca_neighbourhoods(kernel, pooled, bias: float = 0.0) -> EcaNeighbourhoods:
    """Every channel's neighbourhood of an ECA layer, in float64: `kernel` (k,) odd, `pooled` (C,) the averages
    y the layer recorded. The weights equal the layer's own within float32 rounding (tests/test_eca_views.py)."""
    kernel = np.asarray(kernel, dtype=np.float64).reshape(-1)
    pooled = np.asarray(pooled, dtype=np.float64).reshape(-1)
    if len(kernel) % 2 == 0:
        raise ValueError(f"ECA's kernel has an odd size, got {len(kernel)}")
    half = len(kernel) // 2
    offsets = np.arange(-half, half + 1)
    sources = np.arange(len(pooled))[:, None] + offsets[None, :]
    values = np.lib.stride_tricks.sliding_window_view(np.pad(pooled, half), len(kernel))
    products = values * kernel
    sums = products.sum(1) + bias
    return EcaNeighbourhoods(offsets, sources, values, kernel, products, float(bias), sums, 1 / (1 + np.exp(-sums)))


@dataclass(frozen=True)
class KernelDerivation:
    """ECA-Net's three steps to its kernel size (Wang et al., CVPR 2020, §3.2.3), with one layer's numbers.

    1. A linear mapping C = φ(k) = γk - b is too limited: inverted, k = (C + b) / γ grows as fast as C.
    2. Channel counts are powers of 2, so the paper takes C = φ(k) = 2^(γk - b).
    3. Inverted: k = ψ(C) = |log2(C)/γ + b/γ|_odd. The unrounded t = (log2 C + b) / γ gives back C = 2^(γt - b);
       the rounding to an odd k (attnviz.modules.eca) moves it to 2^(γk - b)."""

    channels: int  # C
    gamma: float
    b: float
    k: int  # ψ(C), the paper's rule
    linear_channels: float  # γk - b: the channels a linear φ gives this k
    linear_kernel: float  # (C + b) / γ: the kernel a linear φ needs for this C
    exponential_channels: float  # 2^(γk - b): the channels the exponential φ gives this k
    log2_channels: float  # log2 C
    t: float  # (log2 C + b) / γ, ψ before rounding


def kernel_derivation(channels: int, gamma: float, b: float, kernel_t, kernel_size) -> KernelDerivation:
    """The derivation's numbers for C = `channels` (`kernel_t` and `kernel_size`: attnviz.modules.eca's t and
    rule, functions of (C, γ, b))."""
    k = kernel_size(channels, gamma, b)
    return KernelDerivation(
        channels,
        gamma,
        b,
        k,
        gamma * k - b,
        (channels + b) / gamma,
        2.0 ** (gamma * k - b),
        float(np.log2(channels)),
        kernel_t(channels, gamma, b),
    )


# ----------------------------------------------------------------------------- Coordinate attention and steps


def cell_middle(cell: tuple[int, int], image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[float, float]:
    """The photo point (x, y) at the exact middle of grid cell (row, col), in fractional pixels."""
    (row, col), (height, width) = cell, image_hw
    return (col + 0.5) * width / grid_hw[1], (row + 0.5) * height / grid_hw[0]


def neighbours(items, item) -> tuple[int, object, object]:
    """(index of `item`, the item before it, the item after it) in `items`; the first has itself before it,
    the last itself after it."""
    items = list(items)
    index = items.index(item)
    return index, items[max(index - 1, 0)], items[min(index + 1, len(items) - 1)]
