"""How a transformer's token attention is laid out, in words a page can print ("197 tokens: CLS + 14x14
patches, 6 heads"), and the mean of a layer's heads as a map of its own.

A ViT's rows are over 1 + h·w tokens (Dosovitskiy et al., ICLR 2021): a class token first (CLS), in DeiT a
distillation token after it (Touvron et al., ICML 2021), sometimes registers (Darcet et al., ICLR 2024), then the
patch grid. attnviz.capture reads each head of each layer as a `TokenAttentionRecord` with the prefix tokens
apart; `token_layout` names what a record holds. `HeadsMean` is the mean over a layer's heads of their rows,
(1/H) Σ_h S_h: what a reader of one layer's attention usually looks at first (as in DINO's figures, Caron et
al., ICCV 2021, which show each head and their mean). It is a map over the same patch grid, computed from the
heads' records when asked (no N x N kept); a mean of softmax rows is not one softmax, so it has no energies,
no formula, and the page draws it on click, not under the pointer. `with_heads_means` adds one per layer to a
records dict, under "<layer>:mean", after the layer's heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attnviz.capture.recorder import split_name
from attnviz.capture.records import TokenAttentionRecord

__all__ = [
    "TokenLayout",
    "token_layout",
    "prefix_label",
    "HeadsMean",
    "with_heads_means",
    "class_attention_layers",
    "class_row",
]

_PREFIX_LABELS = {"cls": "CLS", "dist": "DIST"}


def prefix_label(name: str) -> str:
    """A prefix token's name as the pages print it: CLS, DIST, reg0 ... (the record's names otherwise)."""
    return _PREFIX_LABELS.get(name, name)


@dataclass(frozen=True)
class TokenLayout:
    tokens: int  # every key token: prefix + patches
    prefix: tuple[str, ...]  # the prefix key tokens' labels, in order ("CLS", "DIST")
    grid: tuple[int, int]  # the patch keys' grid (rows, columns)
    heads: int
    head: int | None  # the head this record is (None: not read per head)

    def parts(self, patches: str) -> str:
        """ "CLS + DIST + 14x14 patches" (what the tokens are, in order), `patches` naming the grid."""
        return " + ".join([*self.prefix, patches])


def token_layout(record) -> TokenLayout:
    """The layout of a TokenAttentionRecord's keys (attnviz.capture.records)."""
    names = tuple(prefix_label(n) for n in record.prefix_names) or tuple(f"t{i}" for i in range(record.prefix_keys))
    return TokenLayout(
        tokens=record.prefix_keys + record.num_keys,
        prefix=names[: record.prefix_keys],
        grid=tuple(record.key_grid),
        heads=record.heads,
        head=record.head,
    )


class OnTokensOf:
    """A map drawn on the tokens of one token record (`_tokens`): its patch grid, key grid, prefix tokens and
    baseline are that record's; it has no residual weight. What HeadsMean and attnviz.analysis.rollout.Rollout,
    which are no softmax of their own, share of a SpatialMap (attnviz.capture.records)."""

    _tokens: TokenAttentionRecord  # set by each subclass (a property)
    alpha = None

    height = property(lambda self: self._tokens.height)
    width = property(lambda self: self._tokens.width)
    num_pixels = property(lambda self: self._tokens.num_pixels)
    key_grid = property(lambda self: self._tokens.key_grid)
    num_keys = property(lambda self: self._tokens.num_keys)
    baseline = property(lambda self: self._tokens.baseline)
    prefix_keys = property(lambda self: self._tokens.prefix_keys)

    def branch_size(self, batch: int = 0) -> None:
        return None


@dataclass
class HeadsMean(OnTokensOf):
    """The mean of one layer's heads (TokenAttentionRecords of one SDPA call, same tokens): a spatial map."""

    heads: list[TokenAttentionRecord]
    normalisation: str = "mean"  # not one softmax: no energies, no formula (the page reads this)
    shared_by_all_queries: bool = False
    family: str = ""
    max_error: float | None = None
    prefix_names: tuple[str, ...] = field(default=())
    kind: str = ""  # how the heads were read ("dataflow"), as theirs
    found_by: object = None

    def __post_init__(self):
        first = self.heads[0]
        if any(
            (h.height, h.width, h.key_grid, h.prefix_keys)
            != (first.height, first.width, first.key_grid, first.prefix_keys)
            for h in self.heads
        ):
            raise ValueError("the heads of one layer must share their tokens")
        self.prefix_names, self.kind, self.found_by = first.prefix_names, first.kind, first.found_by

    _tokens = property(lambda self: self.heads[0])
    columns_use_recorded_normalisers = property(lambda self: True)

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """(1/H) Σ_h row_h(i) over the patch keys: sums to 1 minus the heads' mean share to the prefix tokens."""
        return torch.stack([h.row(index, batch) for h in self.heads]).mean(0)

    def rows(self, indices, batch: int = 0) -> torch.Tensor:
        return torch.stack([h.rows(indices, batch) for h in self.heads]).mean(0)

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        return torch.stack([h.column(index, batch) for h in self.heads]).mean(0)

    def prefix_share(self, index: int, batch: int = 0) -> torch.Tensor:
        return torch.stack([h.prefix_share(index, batch) for h in self.heads]).mean(0)


def with_heads_means(records: dict) -> dict:
    """`records` with a HeadsMean after the heads of each token layer that has more than one ("<layer>:mean")."""
    layers: dict[tuple[str, int], list[str]] = {}  # (module path, its call) -> the names of its heads
    for name, record in records.items():
        if isinstance(record, TokenAttentionRecord) and record.heads > 1:
            path, _, call = split_name(name)
            layers.setdefault((path, call), []).append(name)
    out = {}
    for name, record in records.items():
        out[name] = record
        path, _, call = split_name(name)
        names = layers.get((path, call))
        if names and name == names[-1] and len(names) == records[names[0]].heads:
            out[f"{path}:mean" + (f"#{call}" if call else "")] = HeadsMean([records[n] for n in names])
    return out


def class_attention_layers(records: dict) -> dict[str, list[TokenAttentionRecord]]:
    """Layer -> its heads, for the token records with no patch queries: class attention, where the prefix tokens
    alone ask, over every token (CaiT, Touvron et al., ICCV 2021; XCiT's last layers, El-Nouby et al., NeurIPS
    2021, sec. 3.3). Such a record has one row per prefix query, not a map per patch (`prefix_row`)."""
    layers: dict[str, list[TokenAttentionRecord]] = {}
    for name, record in records.items():
        if isinstance(record, TokenAttentionRecord) and record.num_pixels == 0 and record.prefix_queries:
            path, _, call = split_name(name)
            layers.setdefault(path + (f"#{call}" if call else ""), []).append(record)
    return layers


def class_row(heads: list[TokenAttentionRecord], batch: int = 0) -> torch.Tensor:
    """The heads' mean of the first prefix token's row (CLS's) over the patch keys, (key_height, key_width): sums
    to 1 minus the mean share the heads give the prefix keys."""
    return torch.stack([head.prefix_row(0, batch) for head in heads]).mean(0)
