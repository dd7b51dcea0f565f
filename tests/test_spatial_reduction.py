"""Spatial-reduction attention read by the dataflow reader (attnviz issue 32): PVT v2 (Wang et al., "PVT v2:
Improved baselines with Pyramid Vision Transformer", CVMJ 2022) and SegFormer (Xie et al., NeurIPS 2021) put their
keys on a coarse grid (a 32x40 query grid attends to 4x5 keys). Every query has a row of its own there: the
reader must give those rows, equal to the module's own softmax rows, and never one map shared by every query.

The module's own rows are the output of its softmax call, kept by an independent hook (a bare TorchFunctionMode
that only keeps softmax outputs); an independent float64 softmax(Q K^T / sqrt(d)) is built from the block's own
weights by the formula of each paper. timm's PVT v2 `Attention` calls `F.scaled_dot_product_attention` when
`fused_attn` is set, a fused kernel the reader does not see (a later part of issue 32): these tests turn it off.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from tolerances import UNIT_ROUNDOFF_32, gamma
from torch import nn
from torch.overrides import TorchFunctionMode

from attnviz.capture import capture
from attnviz.capture.records import DenseAttentionRecord, GlobalContextRecord, PositionAttentionRecord

QUERY_GRID = (32, 40)
CHANNELS = 48  # 2 heads of 24: 1 / sqrt(24) is not a power of two, so scaling before or after the product differs
FLOAT64_ATOL = 1e-5  # issue 32's bound for a row against a float64 softmax built from the op's inputs


class KeepSoftmax(TorchFunctionMode):
    """The independent hook: every softmax output of a forward, in call order."""

    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") == "softmax":
            self.outputs.append(out.detach().clone())
        return out


class SegformerEfficientSelfAttention(nn.Module):
    """SegFormer's efficient self-attention (Xie et al., 2021, sec. 3.1), written as Hugging Face transformers'
    `SegformerEfficientSelfAttention` computes it: Q from the tokens; K and V from the tokens laid back on their
    H x W grid, reduced by a convolution with kernel = stride = sr_ratio and a LayerNorm; per head,
    softmax(Q K^T / sqrt(d)) V. (transformers is not a dependency; this is a faithful copy, without dropout.)"""

    def __init__(self, hidden: int, heads: int, sr_ratio: int):
        super().__init__()
        self.heads, self.head_size = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.sr = nn.Conv2d(hidden, hidden, kernel_size=sr_ratio, stride=sr_ratio)
        self.layer_norm = nn.LayerNorm(hidden)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.heads, self.head_size).permute(0, 2, 1, 3)

    def forward(self, hidden_states: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, tokens, channels = hidden_states.shape
        query = self.split_heads(self.query(hidden_states))
        reduced = hidden_states.permute(0, 2, 1).reshape(batch, channels, height, width)
        reduced = self.layer_norm(self.sr(reduced).reshape(batch, channels, -1).permute(0, 2, 1))
        key, value = self.split_heads(self.key(reduced)), self.split_heads(self.value(reduced))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
        probs = F.softmax(scores, dim=-1)
        return torch.matmul(probs, value).permute(0, 2, 1, 3).reshape(batch, tokens, channels)


class SegformerLayer(nn.Module):
    """A SegFormer encoder block: x + attention(LN(x)) (with its output projection), then x + Mix-FFN(LN(x)),
    the Mix-FFN's 3x3 depth-wise convolution on the token grid (Xie et al., 2021, eq. 3)."""

    def __init__(self, hidden: int = CHANNELS, heads: int = 2, sr_ratio: int = 8):
        super().__init__()
        self.layer_norm_1 = nn.LayerNorm(hidden)
        self.attention = SegformerEfficientSelfAttention(hidden, heads, sr_ratio)
        self.output = nn.Linear(hidden, hidden)
        self.layer_norm_2 = nn.LayerNorm(hidden)
        self.dense1 = nn.Linear(hidden, 4 * hidden)
        self.dwconv = nn.Conv2d(4 * hidden, 4 * hidden, 3, padding=1, groups=4 * hidden)
        self.dense2 = nn.Linear(4 * hidden, hidden)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.output(self.attention(self.layer_norm_1(x), height, width))
        hidden = self.dense1(self.layer_norm_2(x))
        grid = hidden.transpose(1, 2).reshape(x.shape[0], -1, height, width)
        return x + self.dense2(F.gelu(self.dwconv(grid).flatten(2).transpose(1, 2)))


def pvt_block(linear: bool) -> nn.Module:
    from timm.models.pvt_v2 import Block

    block = Block(CHANNELS, num_heads=2, sr_ratio=8, linear_attn=linear, qkv_bias=True).eval()
    block.attn.fused_attn = False  # the eager path: its softmax is a call the reader sees (module docstring)
    return block


def pvt_reference(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """PVT v2's attention rows in float64 from the block's weights (Wang et al., 2022, sec. 3: spatial-reduction
    attention; the linear variant average-pools to 7x7 and adds a GELU): (B, heads, N, keys)."""
    attn, (height, width) = block.attn, QUERY_GRID
    p = {name: value.double() for name, value in block.state_dict().items()}
    batch, tokens, channels = x.shape
    heads, depth = attn.num_heads, channels // attn.num_heads
    x = F.layer_norm(x.double(), (channels,), p["norm1.weight"], p["norm1.bias"], eps=block.norm1.eps)
    query = F.linear(x, p["attn.q.weight"], p["attn.q.bias"]).reshape(batch, tokens, heads, depth).transpose(1, 2)
    grid = x.transpose(1, 2).reshape(batch, channels, height, width)
    if attn.pool is not None:
        grid = F.adaptive_avg_pool2d(grid, 7)
    reduced = F.conv2d(grid, p["attn.sr.weight"], p["attn.sr.bias"], stride=attn.sr.stride).flatten(2).transpose(1, 2)
    reduced = F.layer_norm(reduced, (channels,), p["attn.norm.weight"], p["attn.norm.bias"], eps=attn.norm.eps)
    if attn.pool is not None:
        reduced = F.gelu(reduced)
    key = F.linear(reduced, p["attn.kv.weight"], p["attn.kv.bias"])[..., :channels]  # kv: (K | V) along C
    key = key.reshape(batch, -1, heads, depth).transpose(1, 2)
    return torch.softmax(query @ key.transpose(-1, -2) * depth**-0.5, dim=-1)


def segformer_reference(block: SegformerLayer, x: torch.Tensor) -> torch.Tensor:
    """SegFormer's attention rows in float64 from the block's weights (Xie et al., 2021, eq. 1-2)."""
    (height, width), attn = QUERY_GRID, block.attention
    p = {name: value.double() for name, value in block.state_dict().items()}
    batch, tokens, channels = x.shape
    heads, depth = attn.heads, attn.head_size
    x = F.layer_norm(x.double(), (channels,), p["layer_norm_1.weight"], p["layer_norm_1.bias"])
    query = F.linear(x, p["attention.query.weight"], p["attention.query.bias"])
    grid = x.transpose(1, 2).reshape(batch, channels, height, width)
    reduced = F.conv2d(grid, p["attention.sr.weight"], p["attention.sr.bias"], stride=attn.sr.stride)
    reduced = F.layer_norm(
        reduced.flatten(2).transpose(1, 2),
        (channels,),
        p["attention.layer_norm.weight"],
        p["attention.layer_norm.bias"],
    )
    key = F.linear(reduced, p["attention.key.weight"], p["attention.key.bias"])
    query = query.reshape(batch, tokens, heads, depth).transpose(1, 2)
    key = key.reshape(batch, -1, heads, depth).transpose(1, 2)
    return torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(depth), dim=-1)


def build(name: str) -> tuple[nn.Module, tuple[int, int], object]:
    """(block, its key grid, its float64 reference) for one spatial-reduction block."""
    torch.manual_seed(0)
    if name == "segformer":
        return SegformerLayer().eval(), (4, 5), segformer_reference
    return pvt_block(linear=name == "pvt_v2_linear"), (7, 7) if name == "pvt_v2_linear" else (4, 5), pvt_reference


def run(block: nn.Module, x: torch.Tensor):
    """(records, skipped, the module's own softmax output) of one captured forward; the output must not change."""
    with torch.no_grad():
        plain = block(x, *QUERY_GRID) if isinstance(block, SegformerLayer) else block(x, list(QUERY_GRID))
        with KeepSoftmax() as hook:
            block(x, *QUERY_GRID) if isinstance(block, SegformerLayer) else block(x, list(QUERY_GRID))
        with capture(block) as rec:
            captured = block(x, *QUERY_GRID) if isinstance(block, SegformerLayer) else block(x, list(QUERY_GRID))
    assert torch.equal(plain, captured), "capture changed the output"
    (own,) = hook.outputs
    return rec.records(), rec.skipped, own


def reorder_rtol(record: PositionAttentionRecord, batch: int) -> float:
    """How far (relative) a row the record rebuilds may be from the op's own: the same softmax of energies summed
    in another order and scaled at another step, each energy off by (gamma_d + 2u) |q| . |k| (tests/tolerances.py,
    plus the scale's rounding), an entry by exp(2 delta) - 1, plus the exps' and the sum's roundings."""
    query, key, u = record.query[batch].double(), record.key[batch].double(), UNIT_ROUNDOFF_32
    delta = (gamma(query.shape[-1]) + 2 * u) * float((query.abs() @ key.abs().T).max())
    return math.expm1(2 * delta) + gamma(key.shape[0]) + 4 * u


@pytest.mark.parametrize("name", ["pvt_v2", "pvt_v2_linear", "segformer"])
def test_spatial_reduction_rows_are_per_query_and_the_modules_own(name):
    block, key_grid, reference = build(name)
    x = torch.randn(2, QUERY_GRID[0] * QUERY_GRID[1], CHANNELS)
    records, skipped, own = run(block, x)
    heads = own.shape[1]
    assert skipped == [] and len(records) == heads, (list(records), skipped)
    assert not any(getattr(r, "shared_by_all_queries", False) for r in records.values())
    assert not any(isinstance(r, GlobalContextRecord) for r in records.values())
    exact = reference(block, x)
    queries = torch.arange(own.shape[2])
    for head, record in enumerate(records.values()):
        assert isinstance(record, PositionAttentionRecord), type(record)
        assert (record.height, record.width, record.key_grid) == (*QUERY_GRID, key_grid)
        for batch in (0, 1):
            rows = record.rows(queries, batch=batch).flatten(1).double()
            mine = own[batch, head].double()
            rtol = reorder_rtol(record, batch)
            assert torch.allclose(rows, mine, rtol=rtol, atol=0), float((rows - mine).abs().max())
            assert torch.allclose(record.row(617, batch=batch).flatten().double(), mine[617], rtol=rtol, atol=0)
            assert (rows - exact[batch, head]).abs().max() <= FLOAT64_ATOL
            # rows differ per query: far more than the tolerance, and no row is the mean a shared map would give
            spread = (rows - rows.mean(0)).abs().max(1).values
            assert float(spread.min()) > 100 * rtol * float(rows.max()), float(spread.min())


class TokensOntoAFeatureMap(nn.Module):
    """Queries from tokens whose grid the module never shows; keys from a 4x5 feature map it is handed:
    softmax(Q K^T) has a row per query, but the reader cannot place the queries."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.query = nn.Linear(channels, channels)
        self.key = nn.Conv2d(channels, channels, 1)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        key = self.key(context).flatten(2)  # (B, C, 20)
        weights = torch.softmax(self.query(tokens) @ key / 4.0, dim=-1)  # (B, N, 20)
        return weights @ key.transpose(1, 2)


def test_a_query_axis_on_no_grid_seen_is_listed_not_drawn_as_a_shared_map():
    from prose import latin_words

    torch.manual_seed(0)
    module = TokensOntoAFeatureMap().eval()
    with torch.no_grad(), capture(module) as rec:
        module(torch.randn(1, 1280, 16), torch.randn(1, 16, 4, 5))
    assert rec.records() == {}
    (skipped,) = rec.skipped
    assert skipped.what.text("en") == (
        "a softmax over 4x5 keys with a row of its own for each of 1280 queries (shape 1x1280x20): the queries' grid "
        "is not known here, so it is not drawn (one map shared by every query would be no row the module computed)"
    )
    assert skipped.what.text("zh").startswith("对 4x5 个键的 softmax，1280 个查询各有自己的一行")
    assert set(latin_words(skipped.what.text("zh"))) <= {"softmax"}


def test_gcnet_context_has_no_query_axis_and_stays_one_shared_map():
    """GCNet (Cao et al., ICCVW 2019): softmax over H*W of a 1-channel convolution, one map for every query."""
    from timm.layers.global_context import GlobalContext

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 32, 1), GlobalContext(32, fuse_scale=True, fuse_add=True)).eval()
    x = torch.randn(2, 3, 6, 7)
    with torch.no_grad():
        with KeepSoftmax() as hook:
            module(x)
        with capture(module) as rec:
            module(x)
    (shared,) = [r for r in rec.records().values() if isinstance(r, (GlobalContextRecord, DenseAttentionRecord))]
    assert isinstance(shared, GlobalContextRecord) and shared.shared_by_all_queries
    (own,) = hook.outputs
    assert torch.equal(shared.row(0, batch=1).flatten(), own[1].flatten())
    assert torch.equal(shared.row(41, batch=1), shared.row(0, batch=1))


def test_the_position_page_shows_the_clicked_querys_own_row_on_the_reduced_grid():
    """A click at photo pixel (x, y) = (100, 50) on a 256x320 photo is query cell (50 // 8, 100 // 8) of the 32x40
    grid (8 photo pixels a cell); the page's row is that query's own softmax row, on the 4x5 key grid."""
    from attnviz.analysis.views import position_view

    block, _, _ = build("pvt_v2")
    records, _, own = run(block, torch.randn(2, QUERY_GRID[0] * QUERY_GRID[1], CHANNELS))
    record = records["attn:head1"]
    view = position_view(record, (100, 50), (256, 320), "row")
    assert view.index == 6 * 40 + 12 and view.values_hw == (4, 5)
    mine = own[0, 1, view.index].double()
    assert torch.allclose(torch.from_numpy(view.values).flatten().double(), mine, rtol=reorder_rtol(record, 0), atol=0)


def test_a_whole_pvt_v2_places_every_stages_queries_on_its_own_grid():
    """timm's pvt_v2_b0 (random weights) on a 128x160 photo: stages at strides 4, 8, 16 attend from 32x40, 16x20
    and 8x10 queries onto 4x5 keys (sr ratios 8, 4, 2; 1, 2 and 5 heads). Its stages hand their blocks channels-last
    (B, H, W, C) features; at stride 4, with 32 channels, W x C = 40 x 32 has as many entries as the 32x40 grid and
    must not be taken for it. The last stage (no reduction, no grid seen in it) is listed, not drawn."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("pvt_v2_b0", pretrained=False).eval()
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        with KeepSoftmax() as hook:
            model(x)
        with capture(model) as rec:
            model(x)
    records = rec.records()
    owners = [name for name, module in model.named_modules() if name.endswith(".attn")]  # in call order
    grids = {"stages.0": (32, 40), "stages.1": (16, 20), "stages.2": (8, 10)}
    assert len(records) == 2 * (1 + 2 + 5)  # 2 blocks a stage, one record a head
    for key, record in records.items():
        owner, _, head = key.partition(":head")
        own = hook.outputs[owners.index(owner)][0, int(head or 0)].double()
        assert isinstance(record, PositionAttentionRecord) and not record.shared_by_all_queries
        assert (record.height, record.width, record.key_grid) == (*grids[owner[:8]], (4, 5)), key
        rows = record.rows(torch.arange(record.num_pixels)).flatten(1).double()
        assert torch.allclose(rows, own, rtol=reorder_rtol(record, 0), atol=0), key
    assert {s.module for s in rec.skipped} == {"stages.3.blocks.0.attn", "stages.3.blocks.1.attn"}
