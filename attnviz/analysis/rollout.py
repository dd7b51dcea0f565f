"""Heads and layers of a transformer's token attention: the heads' mean of one layer, and attention rollout.

What is read (attnviz issue 32), from the `TokenAttentionRecord`s the dataflow reader makes of each
`F.scaled_dot_product_attention` call (one record per head, prefix tokens apart; `attnviz.capture.dataflow`):

- `token_layers`: the records grouped into layers, one layer per SDPA call, in order. The recorder keys the
  heads of one call "path:head0", "path:head1", ... ("path" alone, or "path:map", for a single head), and a
  module's second call "path:head0#1" (`attnviz.capture.recorder.split_name`); a layer is named "path" or
  "path#1" as `attnviz.analysis.views.head_of` names it. The order is the records' own (the recorder adds
  them as each module's forward ends, so in the order the layers ran), or, given the model, the order of
  `model.named_modules()` (then a module's calls in their order).
- `mean_row` / `mean_rows`: the mean over the heads of one layer of a query token's row over all key tokens,
  A[t, :] = (1/H) Σ_h S_h[t, :], prefix tokens first. Rows are computed on demand from the records' factors
  (`TokenAttentionRecord.token_rows`, float32) and averaged in float64; nothing N x N is kept unless asked
  for, and then only up to `MAX_TOKENS`² entries. A mean of rows that each sum to 1 sums to 1.
- `rollout` / `rollout_map`: attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in
  Transformers", ACL 2020): with A_l the heads' mean of layer l as a full token x token matrix,
  Ã_l = 0.5·A_l + 0.5·I (each row renormalised to sum to 1, as their code does), and R = Ã_L ··· Ã_1. Row t
  of R is how much of token t's output at the last layer is traced back, through every layer, to each input
  token; `rollout_map` draws a row (CLS's, token 0 in a ViT, by default) over the patch grid. R needs every
  layer's full matrix: it refuses above `MAX_TOKENS` tokens (a ViT-S/16 at 224 has 197), as the records'
  `matrix(max_pixels=...)` does, and it needs self-attention over the same tokens in every layer (a layer
  whose keys are not its queries, as in spatial-reduction attention, is refused).

What differs from the paper: nothing in the definition. The paper's form only: the popular re-implementation's
options (discarding the lowest fraction of each A_l, fusing heads by max or min instead of the mean) are not
offered. Rows are renormalised in float64 (a softmax row sums to 1 only within float32 rounding).

Known limits, stated where the maps are shown: rollout assumes that attention mixes the tokens linearly from
layer to layer and that the residual connection carries the token itself with weight 0.5 (the 0.5·I); it
ignores the MLPs, the values and their norms (how large what a head mixes in is; Kobayashi et al., EMNLP 2020)
and the layer norms, and averages the heads, so a head that matters and one that does not weigh the same. It
is not an attribution of the output to the input: it is the same for every class and was not checked against
the model's output; for its critique and a class-specific alternative see Chefer et al., "Transformer
Interpretability Beyond Attention Visualization", CVPR 2021. A token that attends to nothing (a fully masked
row) has no distribution: such a row is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from attnviz.analysis.tokens import OnTokensOf
from attnviz.capture.recorder import split_name
from attnviz.capture.records import TokenAttentionRecord

__all__ = ["MAX_TOKENS", "token_layers", "mean_row", "mean_rows", "rollout", "rollout_map", "Rollout", "with_rollout"]

MAX_TOKENS = 1024  # a full token x token matrix above this is refused (1024² float64 = 8 MiB a layer)

Layer = Sequence[TokenAttentionRecord]


def _layer_name(key: str) -> tuple[str, str, int]:
    """(layer name, part, call) of a record key: "blocks.0.attn:head2" -> ("blocks.0.attn", "head2", 0),
    "x:head0#1" -> ("x#1", "head0", 1), "x#1" -> ("x#1", "", 1)."""
    path, part, call = split_name(key)
    return path + (f"#{call}" if call else ""), part, call


def token_layers(records: Mapping, model: nn.Module | None = None) -> dict[str, tuple[TokenAttentionRecord, ...]]:
    """The token attention records of a capture (a name -> record mapping: a `Recorder`, `Analysis.records`)
    grouped into layers, one per SDPA call, each layer's heads in head order (module docstring). Layers are in
    the mapping's order, or in `model`'s module order when it is given (a path outside `model` is an error).
    Other records are left out. Each layer holds every head of its call (else ValueError)."""
    groups: dict[str, list[TokenAttentionRecord]] = {}
    where: dict[str, tuple[str, int]] = {}
    for key, record in records.items():
        if isinstance(record, TokenAttentionRecord):
            name, _, call = _layer_name(key)
            groups.setdefault(name, []).append(record)
            where[name] = (split_name(key)[0], call)
    if model is not None:
        order = {}
        for path, module in model.named_modules():
            order.setdefault(path or type(module).__name__, len(order))
        outside = [name for name in groups if where[name][0] not in order]
        if outside:
            raise ValueError(f"layers {outside} are not modules of the model given")
        groups = dict(sorted(groups.items(), key=lambda item: (order[where[item[0]][0]], where[item[0]][1])))
    layers = {}
    for name, heads in groups.items():
        layers[name] = tuple(sorted(heads, key=lambda r: -1 if r.head is None else r.head))
        _check_layer(layers[name], name)
    return layers


def _check_layer(layer: Layer, name: str = "the layer") -> None:
    """Every head of one call, once, with one token layout; else ValueError."""
    if not layer or not all(isinstance(r, TokenAttentionRecord) for r in layer):
        raise ValueError(f"{name}: a layer is a non-empty sequence of TokenAttentionRecords")
    first = layer[0]
    heads = [r.head for r in layer]
    expected = [None] if first.heads == 1 else list(range(first.heads))
    if sorted(heads, key=lambda h: -1 if h is None else h) != expected or any(r.heads != first.heads for r in layer):
        raise ValueError(f"{name}: heads {heads} are not every head of one call ({first.heads} heads)")
    layout = [
        (r.prefix_queries, r.prefix_keys, r.height, r.width, r.key_grid, r.query.shape[0], r.prefix_names)
        for r in layer
    ]
    if any(shape != layout[0] for shape in layout):
        raise ValueError(f"{name}: its heads place their tokens differently: {layout}")


def _tokens(record: TokenAttentionRecord) -> tuple[int, int]:
    """(query tokens, key tokens) of a record, prefix tokens included."""
    return record.prefix_queries + record.num_pixels, record.prefix_keys + record.num_keys


def mean_rows(
    layer: Layer, tokens: Iterable[int] | torch.Tensor | None = None, batch: int = 0, max_tokens: int = MAX_TOKENS
) -> torch.Tensor:
    """The heads' mean rows A[tokens, :] of one layer (every head of one SDPA call), (R, all key tokens) in
    float64: query tokens `tokens` (indices over all query tokens, prefix first; None: all of them) over all key
    tokens, prefix first. Each row sums to 1. Refuses (MemoryError) a result of more than `max_tokens`² entries."""
    _check_layer(layer)
    queries, keys = _tokens(layer[0])
    tokens = torch.arange(queries) if tokens is None else torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    if tokens.numel() and not (0 <= int(tokens.min()) and int(tokens.max()) < queries):
        raise IndexError(f"query tokens outside 0..{queries - 1}")
    if tokens.numel() * keys > max_tokens**2:
        raise MemoryError(
            f"the heads' mean rows would be {tokens.numel()} x {keys}; ask for fewer rows or raise max_tokens "
            f"(now {max_tokens}: at most {max_tokens}² entries)"
        )
    total = torch.zeros(tokens.numel(), keys, dtype=torch.float64)
    for record in layer:
        total += record.token_rows(tokens, batch).double()
    mean = total / len(layer)
    if not torch.isfinite(mean).all():
        raise ValueError("a query token attends to no key (a fully masked row): it has no distribution")
    return mean


def mean_row(layer: Layer, token: int, batch: int = 0) -> torch.Tensor:
    """The heads' mean row A[token, :] of one layer over all key tokens (prefix first), (all key tokens,) in
    float64; sums to 1. `token` indexes all query tokens, prefix first (0 is CLS in a ViT)."""
    return mean_rows(layer, [token], batch)[0]


def _as_layers(layers: Mapping | Iterable[Layer]) -> list[Layer]:
    layers = list(layers.values()) if isinstance(layers, Mapping) else [tuple(layer) for layer in layers]
    if not layers:
        raise ValueError("rollout needs at least one layer")
    return layers


def rollout(layers: Mapping | Iterable[Layer], batch: int = 0, max_tokens: int = MAX_TOKENS) -> torch.Tensor:
    """Attention rollout R = Ã_L ··· Ã_1, Ã_l = 0.5·A_l + 0.5·I with rows renormalised (Abnar & Zuidema, ACL
    2020; module docstring for what it assumes), (N, N) in float64 over all tokens, prefix first; rows sum to 1.
    `layers`: `token_layers`' result, or a sequence of layers (each every head of one call), first layer first.
    Every layer must attend over the same N tokens it queries (else ValueError); N > `max_tokens` is refused
    (MemoryError)."""
    layers = _as_layers(layers)
    for index, layer in enumerate(layers):
        _check_layer(layer, f"layer {index}")
    layout = {
        (*_tokens(r), r.prefix_queries, r.prefix_keys, (r.height, r.width), r.key_grid)
        for r in (layer[0] for layer in layers)
    }
    queries, keys, prefix_queries, prefix_keys, grid, key_grid = next(iter(layout))
    if len(layout) > 1 or (queries, prefix_queries, grid) != (keys, prefix_keys, key_grid):
        raise ValueError(
            "rollout needs self-attention over the same tokens (prefix tokens, then the patch grid) in every "
            f"layer; found (queries, keys, prefix queries, prefix keys, grid, key grid) {sorted(layout)}"
        )
    if queries > max_tokens:
        raise MemoryError(f"rollout needs {queries} x {queries} per layer; raise max_tokens (now {max_tokens})")
    identity = torch.eye(queries, dtype=torch.float64)
    result = identity
    for layer in layers:
        mixed = 0.5 * mean_rows(layer, None, batch, max_tokens) + 0.5 * identity
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed @ result
    return result


def rollout_map(
    layers: Mapping | Iterable[Layer], token: int = 0, batch: int = 0, max_tokens: int = MAX_TOKENS
) -> torch.Tensor:
    """Row `token` of the rollout (0: CLS in a ViT; indices over all tokens, prefix first) over the patch keys,
    (key_height, key_width) in float64: sums to 1 minus what the row gives the prefix tokens."""
    layers = _as_layers(layers)
    result = rollout(layers, batch, max_tokens)
    if not 0 <= token < result.shape[0]:
        raise IndexError(f"token {token} outside 0..{result.shape[0] - 1}")
    record = layers[-1][0]
    return result[token, record.prefix_keys :].reshape(*record.key_grid)


class Rollout(OnTokensOf):
    """Attention rollout as a map the Position page draws like a layer's (the `SpatialMap` reading of
    attnviz.capture.records): `row(i)` is patch i's row of R = Ã_L ··· Ã_1 over the patches (how much of its
    last layer's output is traced back to each input patch), `prefix_share(i)` what the row traces to the prefix
    tokens, `column(j)` how much of every patch traces to patch j, `prefix_row(0)` the row of CLS (the map
    usually shown as "the rollout"). R is computed from the layers' records when first read (`rollout`), then
    kept (N x N float64 per photo of the batch: 0.3 MB at N = 197). It is a product of means of softmax rows,
    not one softmax: no energies, no formula; the page draws it on click."""

    normalisation = "rollout"  # not one softmax: no energies, no formula (the page reads this)
    shared_by_all_queries = False
    columns_use_recorded_normalisers = False
    family = ""
    max_error = None

    def __init__(self, layers: Mapping | Iterable[Layer]):
        self.layers = _as_layers(layers)
        if not self.layers:
            raise ValueError("rollout needs at least one layer")
        self._kept: dict[int, torch.Tensor] = {}
        last = self.layers[-1][0]
        self.prefix_names, self.kind, self.found_by = last.prefix_names, last.kind, last.found_by
        self.last = last  # its layout is the map's: patch grid, prefix tokens

    _tokens = property(lambda self: self.last)

    def matrix(self, batch: int = 0) -> torch.Tensor:
        """R over all tokens, prefix first (N, N) in float64: rows sum to 1."""
        if batch not in self._kept:
            self._kept[batch] = rollout(self.layers, batch)
        return self._kept[batch]

    def _patch(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_pixels:
            raise IndexError(f"pixel index {index} outside 0..{self.num_pixels - 1}")
        return self.prefix_keys + index

    def row(self, index: int, batch: int = 0) -> torch.Tensor:
        """Patch i's row of R over the patches (height, width), float32: sums to 1 minus its prefix share."""
        return self.matrix(batch)[self._patch(index), self.prefix_keys :].float().view(*self.key_grid)

    def rows(self, indices, batch: int = 0) -> torch.Tensor:
        return torch.stack([self.row(i, batch) for i in torch.as_tensor(indices).reshape(-1).tolist()])

    def column(self, index: int, batch: int = 0) -> torch.Tensor:
        """R[:, patch j] over the patch queries (height, width): how much of each patch traces back to patch j."""
        key = self._patch(index)
        return self.matrix(batch)[self.prefix_keys :, key].float().view(self.height, self.width)

    def prefix_share(self, index: int, batch: int = 0) -> torch.Tensor:
        """(P,): what patch i's row of R traces back to each prefix token."""
        return self.matrix(batch)[self._patch(index), : self.prefix_keys].float()

    def prefix_row(self, prefix: int = 0, batch: int = 0) -> torch.Tensor:
        """Prefix token `prefix`'s row of R over the patches (0: CLS), (height, width) in float64."""
        if not 0 <= prefix < self.prefix_keys:
            raise IndexError(f"prefix token {prefix} outside 0..{self.prefix_keys - 1}")
        return self.matrix(batch)[prefix, self.prefix_keys :].reshape(*self.key_grid)


def with_rollout(records: dict) -> dict:
    """`records` with a `Rollout` of their self-attention layers last, under "rollout", where one can be made:
    more than one layer, each over the same tokens it queries (prefix, then the patch grid), at most MAX_TOKENS
    of them (as `rollout` requires; checked here without computing R). Layers where fewer tokens query (class
    attention at the end of CaiT and XCiT, attention pooling) are left out of the product."""
    try:
        layers = token_layers(records)
    except ValueError:  # a layer without all its heads: no rollout
        return records
    layers = {name: layer for name, layer in layers.items() if _tokens(layer[0])[0] == _tokens(layer[0])[1]}
    if len(layers) < 2:
        return records
    first = next(iter(layers.values()))[0]
    shapes = {
        (*_tokens(r), r.prefix_keys, r.prefix_queries, r.key_grid, (r.height, r.width))
        for r in (layer[0] for layer in layers.values())
    }
    queries, keys = _tokens(first)
    same = len(shapes) == 1 and queries == keys and first.key_grid == (first.height, first.width)
    if not same or queries > MAX_TOKENS or first.prefix_keys != first.prefix_queries:
        return records
    return {**records, "rollout": Rollout(layers)}
