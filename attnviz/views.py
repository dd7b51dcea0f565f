"""Plain views of what a page shows, computed without Streamlit so that they can be tested as values.

A page asks for a view and lays it out; every number it prints is a field here.

`position_view`: the Position page (DANet's PAM, Fu et al., CVPR 2019) for one
chosen pixel: its feature cell (attnviz.geometry), row or column i of S (never
the whole S: `PositionAttentionRecord.row`/`column`), the top locations, the
class share of the row when the photo has labels, the far-key share
(attnviz.quality), and the worked formula for the largest entry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnviz.analysis import attention_share_on_class, feature_centre, feature_index, top_locations
from attnviz.data.camvid import IGNORE_INDEX
from attnviz.quality import far_key_own_class_ratio
from attnviz.records import PositionAttentionRecord

__all__ = ["ClassShare", "PositionView", "position_view"]

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
    feature_hw: tuple[int, int]
    mode: str                            # "row" (where i attends) or "column" (who attends to i)
    values: np.ndarray                   # (h, w) row or column i of S
    top: list[int]                       # flat indices of the largest values, largest first
    top_centres: list[tuple[int, int]]   # their cells' centres in photo pixels
    pixel_centre: tuple[int, int]        # the chosen cell's centre in photo pixels
    formula: tuple[int, int, float, float, float]  # (query, key, energy, log-normaliser, S entry) of top[0]
    class_share: ClassShare | None       # None: no labels, or a column (shares are of rows)

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
        width = self.feature_hw[1]
        return [(*divmod(t, width), float(self.values.flat[t])) for t in self.top]


def position_view(record: PositionAttentionRecord, pixel: tuple[int, int], image_hw: tuple[int, int],
                  mode: str = "row", label: np.ndarray | None = None, top_k: int = 5) -> PositionView:
    """Everything the Position page shows for integer photo pixel (x, y) on a photo of `image_hw`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x, y = pixel
    feature_hw = (record.height, record.width)
    index = feature_index(x, y, image_hw, feature_hw)
    values = (record.row(index) if mode == "row" else record.column(index)).numpy()
    top = top_locations(values, top_k)
    query, key = (index, top[0]) if mode == "row" else (top[0], index)
    class_share = None
    if label is not None and mode == "row":
        class_id = int(label[y, x])
        if class_id == IGNORE_INDEX:
            class_share = ClassShare(class_id)
        else:
            share, chance = attention_share_on_class(values, label, class_id)
            far = far_key_own_class_ratio(values[None], label, [index], [class_id])[0]
            class_share = ClassShare(class_id, share, chance, float(far))
    return PositionView(
        pixel=(x, y), index=index, cell=divmod(index, record.width), feature_hw=feature_hw, mode=mode,
        values=values, top=top, top_centres=[feature_centre(t, image_hw, feature_hw) for t in top],
        pixel_centre=feature_centre(index, image_hw, feature_hw), formula=(query, key, *record.entry(query, key)),
        class_share=class_share)
