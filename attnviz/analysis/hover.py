"""What a browser needs to compute attention under the cursor itself, with no round trip to the server.

A row of DANet's S (Fu et al., CVPR 2019) is softmax(q_i . K): with the query
and key projections Q, K (N x C', C' = C/8) and the per-row log-sum-exp L in the
page, a row is S[i, j] = exp(q_i . k_j - L_i) and a column S[:, j] =
exp(Q . k_j - L), each O(N C') in JavaScript. As in the library
(`attnviz.capture.records`), a row's L_i is its own log-sum-exp, computed from
the energies the row is made of, so it sums to 1; a column uses the recorded L.
This module turns a spatial record into that payload (JSON with base64 float32 arrays: bytes inside the
component's data dict are not delivered) and says when it is too big to send:

- ``softmax``: DANet PAM, SAGAN, non-local (embedded / Gaussian): keys may lie on their own, sub-sampled grid;
- ``dot``: the non-local dot-product form, S = Q K^T / N_k (no softmax);
- ``cross``: CCNet's criss-cross attention: only the H + W - 1 keys of the query's row and column;
- ``shared``: GCNet's context block: one map, the same row for every query.

The photo-pixel -> cell mapping is not reimplemented in the page: the payload
carries each grid's per-axis cell tables and cell centres computed by
`attnviz.analysis.geometry` (one geometry), which the script only looks up.

What differs from the library's own rows: the page computes in float64 from
the float32 projections, the library in float32; they agree to about 1e-6
relative (the browser test checks 1e-5).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from attnviz.analysis import geometry
from attnviz.analysis.rollout import Rollout
from attnviz.analysis.tokens import HeadsMean
from attnviz.capture.records import (
    CrissCrossAttentionRecord,
    DenseAttentionRecord,
    GlobalContextRecord,
    PositionAttentionRecord,
    TokenAttentionRecord,
    WindowAttentionRecord,
)
from attnviz.i18n import Phrase

__all__ = ["MAX_PAYLOAD_BYTES", "HoverPayload", "hover_payload", "grid_tables", "encode_floats", "channel_payload"]

MAX_PAYLOAD_BYTES = 16 * 2**20  # Q and K (and L) above this go by the click path instead


@dataclass(frozen=True)
class HoverPayload:
    """`data`: the JSON the page script reads (None when too big); `num_bytes`: what Q, K, L would cost;
    `reason`: why it was not built, a Phrase shown in the page's language (empty when it was built)."""

    data: dict | None
    num_bytes: int
    reason: Phrase | str = ""


def _click_only(why: str, /, **values) -> Phrase:
    """Why a map is drawn on click, not under the pointer: the catalog's "position.click_only.<why>"."""
    return Phrase.of(f"position.click_only.{why}", **values)


def encode_floats(array, dtype=np.float32) -> str:
    """An array as base64 of its little-endian values, row-major (the page decodes a Float32Array /
    Float64Array)."""
    values = np.ascontiguousarray(np.asarray(array, dtype=np.dtype(dtype).newbyteorder("<")))
    return base64.b64encode(values.tobytes()).decode("ascii")


def grid_tables(image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> dict:
    """One grid on the photo, as `attnviz.analysis.geometry` maps it: the cell row of every photo row, the cell
    column of every photo column, and the centre pixel (x, y) of every cell row and column."""
    height, width = image_hw
    rows, cols = grid_hw
    centre_x = [geometry.cell_centre(c, image_hw, grid_hw)[0] for c in range(cols)]
    centre_y = [geometry.cell_centre(r * cols, image_hw, grid_hw)[1] for r in range(rows)]
    return {
        "rows": int(rows),
        "cols": int(cols),
        "row_of_y": geometry.axis_cells(height, rows).tolist(),
        "col_of_x": geometry.axis_cells(width, cols).tolist(),
        "centre_x": centre_x,
        "centre_y": centre_y,
    }


def _form(record) -> str:
    if isinstance(record, GlobalContextRecord):
        return "shared"
    if isinstance(record, CrissCrossAttentionRecord):
        return "cross"
    if isinstance(record, PositionAttentionRecord):
        return record.normalisation  # "softmax" or "dot"
    raise TypeError(f"no hover form for a {type(record).__name__}")


def _size_in_bytes(record) -> int:
    if isinstance(record, GlobalContextRecord):
        return 4 * record.num_pixels
    return 4 * (record.query[0].numel() + record.key[0].numel() + record.log_normaliser[0].numel())


def hover_payload(
    record, image_hw: tuple[int, int], batch: int = 0, max_bytes: int = MAX_PAYLOAD_BYTES
) -> HoverPayload:
    """The page's payload for one spatial record on a photo of `image_hw` (see the module docstring)."""
    if isinstance(record, DenseAttentionRecord):  # S kept as it ran (attnviz.capture.dataflow): drawn by the click path
        return HoverPayload(None, 4 * record.maps[batch].numel(), _click_only("dense"))
    if isinstance(record, TokenAttentionRecord) and (record.bias is not None or record.causal):  # masked tokens
        return HoverPayload(None, 0, _click_only("masked"))
    if isinstance(record, WindowAttentionRecord):  # Swin: a softmax per window, placed with the shift undone
        return HoverPayload(None, 0, _click_only("windows"))
    if isinstance(record, HeadsMean):  # a mean of softmax rows: no q and k of its own
        return HoverPayload(None, 0, _click_only("heads_mean"))
    if isinstance(record, Rollout):  # a product of the layers' means
        return HoverPayload(None, 0, _click_only("rollout"))
    form = _form(record)
    num_bytes = _size_in_bytes(record)
    if num_bytes > max_bytes:
        return HoverPayload(None, num_bytes, _click_only("too_big", size=num_bytes / 2**20, limit=max_bytes / 2**20))
    query_hw = (record.height, record.width)
    key_hw = tuple(record.key_grid)
    data = {
        "form": form,
        "query_grid": grid_tables(image_hw, query_hw),
        "key_grid": grid_tables(image_hw, key_hw),
        "image_hw": [int(image_hw[0]), int(image_hw[1])],
        "baseline": record.baseline,
    }
    if form == "shared":
        data["map"] = encode_floats(record.map[batch].float().cpu().numpy())
    else:
        data["channels"] = int(record.query.shape[-1])
        data["query"] = encode_floats(record.query[batch].float().cpu().numpy())
        data["key"] = encode_floats(record.key[batch].float().cpu().numpy())
        data["lse"] = encode_floats(record.log_normaliser[batch].float().cpu().numpy())
        if isinstance(record, TokenAttentionRecord) and record.prefix_keys:  # CLS, DIST, registers: in every row
            data["prefix_key"] = encode_floats(record.prefix_key[batch].float().cpu().numpy())
    return HoverPayload(data, num_bytes)


def channel_payload(record, batch: int = 0) -> dict:
    """DANet's channel map X (C x C) for the page: X itself, and, when the module's input A was kept, the
    softmax argument of every entry (float64: in the official form rowmax - A_c.A_j, whose entries reach
    thousands) with each row's log-normaliser, so that the page writes X[c, j] = exp(a - L) with numbers,
    and the most and least similar other channel of each row by the energy A_c . A_j."""
    attention = record.attention[batch].float().cpu().numpy()
    channels = attention.shape[0]
    data = {"channels": int(channels), "form": record.form, "x": encode_floats(attention)}
    if record.features is not None:
        flat = record.features[batch].flatten(1).double().cpu().numpy()
        energy = flat @ flat.T
        argument = energy.max(1, keepdims=True) - energy if record.form == "official" else energy
        peak = argument.max(1, keepdims=True)
        log_normaliser = (peak + np.log(np.exp(argument - peak).sum(1, keepdims=True)))[:, 0]
        others = np.where(np.eye(channels, dtype=bool), np.nan, energy)
        data.update(
            argument=encode_floats(argument, np.float64),
            lse=encode_floats(log_normaliser, np.float64),
            most_similar=np.nanargmax(others, 1).tolist(),
            least_similar=np.nanargmin(others, 1).tolist(),
        )
    return data
