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

from attnviz.analysis.forward import attention_share_on_class, feature_centre, feature_index, top_locations
from attnviz.data.camvid import IGNORE_INDEX
from attnviz.analysis.quality import far_key_own_class_ratio
from attnviz.capture.recorder import split_name

__all__ = ["ClassShare", "PositionView", "position_view", "CoordinateView", "coordinate_view", "most_varied_channel",
           "ChannelScaling", "channel_scaling", "findings_rows", "module_heads", "head_of", "GatePlane", "gate_planes",
           "branch_weights"]

MODES = ("row", "column")


@dataclass(frozen=True)
class ClassShare:
    """How much of a row of S falls on the query pixel's own class (labelled photos only)."""
    class_id: int            # IGNORE_INDEX: the pixel is unlabelled (no shares then)
    share: float = float("nan")      # of the row's mass on labelled pixels, the part on the class
    chance: float = float("nan")     # the class's share of the labelled photo
    far_key_ratio: float = float("nan")  # own-class ratio over the far keys only (nearest 10% of cells dropped)

    @property
    def ratio(self) -> float:
        return self.share / self.chance if self.chance else float("nan")


@dataclass(frozen=True)
class PositionView:
    pixel: tuple[int, int]               # (x, y) photo pixel
    index: int                           # flat feature cell i
    cell: tuple[int, int]                # (row, col) of i on the feature grid
    feature_hw: tuple[int, int]          # the grid of `index`: the query grid for a row, the key grid for a column
    mode: str                            # "row" (where i attends) or "column" (who attends to i)
    values: np.ndarray                   # (h, w) row or column i of S
    top: list[int]                       # flat indices of the largest values, largest first
    top_centres: list[tuple[int, int]]   # their cells' centres in photo pixels
    pixel_centre: tuple[int, int]        # the chosen cell's centre in photo pixels
    formula: tuple[int, int, float, float, float] | None  # (query, key, energy, log-normaliser, S entry) of
    #                                      top[0]; None for a record without per-entry maths (GCNet's map)
    class_share: ClassShare | None       # None: no labels, or a column (shares are of rows)
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


def position_view(record, pixel: tuple[int, int], image_hw: tuple[int, int],
                  mode: str = "row", label: np.ndarray | None = None, top_k: int = 5) -> PositionView:
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
            far = (far_key_own_class_ratio(values[None], label, [index], [class_id])[0]
                   if values_hw == query_hw else float("nan"))
            class_share = ClassShare(class_id, share, chance, float(far))
    return PositionView(
        pixel=(x, y), index=index, cell=divmod(index, feature_hw[1]), feature_hw=feature_hw, mode=mode,
        values=values, top=top, top_centres=[feature_centre(t, image_hw, values_hw) for t in top],
        pixel_centre=feature_centre(index, image_hw, feature_hw), formula=formula, class_share=class_share,
        values_hw=values_hw)


def findings_rows(checks: list[dict]) -> list[dict]:
    """The Overview's table of what attnviz found in a user's model (`Analysis.checks`), as text cells:
    module path, family (and form), map size, and the reconstruction check (verified, or why not)."""
    rows = []
    for check in checks:
        error = check.get("max_error")
        shown_error = "–" if error is None else f"{error:.1e}"
        family = check["family"] + (f" ({check['form']})" if check.get("form") else "")
        reader = check.get("reader", "structure")
        if reader == "dataflow":   # found by what it computes: its op's own output, nothing to verify against
            status = check.get("reason") or "–"
        elif reader == "library":   # timm / torchvision, by type: its own gate's output
            status = "read through hooks on its own gate"
        elif reader == "own":
            status = "attnviz's own module: it records itself"
        else:
            status = (f"verified (max error {shown_error})" if check["verified"]
                      else check.get("reason") or f"recognised, not verified (max error {shown_error})")
        rows.append({"module": check["name"], "reader": reader, "family": family, "map": check.get("map") or "–",
                     "check": status, "drawn": "yes" if check["verified"] else "no"})
    return rows


@dataclass(frozen=True)
class CoordinateView:
    """What the Coordinate Attention page shows for one channel (Hou et al., CVPR 2021): y = x · a_h · a_w."""
    channel: int
    height_weights: np.ndarray   # (H,) a_h of the channel: one weight per feature row
    width_weights: np.ndarray    # (W,) a_w: one weight per feature column
    product: np.ndarray          # (H, W) a_h[i] * a_w[j]: the factor every feature cell is scaled by
    cell: tuple[int, int]        # the chosen pixel's feature (row, col)
    at_cell: tuple[float, float, float]  # (a_h, a_w, product) there


def coordinate_view(record, channel: int, pixel: tuple[int, int], image_hw: tuple[int, int],
                    batch: int = 0) -> CoordinateView:
    """Channel `channel` of a CoordinateAttentionRecord, and its factors at photo pixel (x, y) (attnviz.analysis.geometry)."""
    a_h = record.height_weights[batch, channel].double().numpy()
    a_w = record.width_weights[batch, channel].double().numpy()
    product = a_h[:, None] * a_w[None, :]
    row, col = divmod(feature_index(*pixel, image_hw, product.shape), product.shape[1])
    return CoordinateView(int(channel), a_h, a_w, product, (row, col), (float(a_h[row]), float(a_w[col]),
                                                                      float(product[row, col])))


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
    before: np.ndarray   # (h, w) x_c, the layer's input
    after: np.ndarray    # (h, w) ω_c x_c


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
    values: np.ndarray      # (rows, columns)
    axes: tuple[str, str]   # the plane's (row axis, column axis) names, e.g. ("H", "W"), ("C", "W")
    descriptor: int | None = None   # the descriptor k of a softmax over descriptors at every pixel
    mean_over: str | None = None    # the axis averaged out (a gate per element: "C")


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
