"""Swin's window attention read from `F.scaled_dot_product_attention` (attnviz issue 32, "Swin windows").

Swin (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021, sec. 3.2)
cuts each stage's grid into windows and, in every other block, rolls the grid by half a window first; timm's
`WindowAttention` calls SDPA with the windows of the whole batch in its first axis, the relative position bias
and, in a shifted block, the mask of the rolled regions as `attn_mask`. The dataflow reader must place each query's
row on the stage's grid with the roll undone (its window only, zero elsewhere).

The reference here is independent of the reader: a float64 softmax(q kᵀ · scale + attn_mask) from each call's own
inputs (kept by a counting wrapper around `F.scaled_dot_product_attention`, which also shows that the fused call
ran while capturing), placed on the grid by timm's own `window_partition` applied to a map of pixel numbers rolled
as the block rolls its tokens; one window is also written out by hand. timm calls SDPA in Swin only in its
"experimental" fused mode (TIMM_FUSED_ATTN=2); these tests switch `fused_attn` on per module instead.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from sdpa_calls import KeptSdpa
from torch import nn

from attnviz.analysis.hover import hover_payload
from attnviz.analysis.views import position_view, sum_reading
from attnviz.capture import capture
from attnviz.capture.records import WindowAttentionRecord

FLOAT64_ATOL = 1e-5  # issue 32's bound for a row against a float64 softmax built from the op's inputs


def swin(img_size) -> nn.Module:
    """A tiny timm Swin with random weights: patch 4, windows of 4x4, two stages of two blocks (the second of each
    shifted by 2), fused attention on."""
    from timm.models.swin_transformer import SwinTransformer, WindowAttention

    torch.manual_seed(0)
    model = SwinTransformer(
        img_size=img_size, patch_size=4, window_size=4, depths=(2, 2), num_heads=(2, 4), embed_dim=16, num_classes=5
    ).eval()
    for module in model.modules():
        if isinstance(module, WindowAttention):
            module.fused_attn = True
    return model


def blocks(model: nn.Module) -> list:
    from timm.models.swin_transformer import SwinTransformerBlock

    return [m for m in model.modules() if isinstance(m, SwinTransformerBlock)]


def reference(call) -> torch.Tensor:
    """softmax(q kᵀ · scale + attn_mask) in float64 from one call's own inputs: (B · windows, heads, N, N)."""
    args, kwargs, _ = call
    query, key = args[0].double(), args[1].double()
    energy = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    return torch.softmax(energy + kwargs["attn_mask"].double(), dim=-1)


def pixel_windows(block, grid: tuple[int, int]) -> torch.Tensor:
    """(windows, N): the grid pixel of each window token, -1 on the padding, by timm's own code: a map of pixel
    numbers rolled as `SwinTransformerBlock._attn` rolls the tokens, padded with -1 and cut by `window_partition`."""
    from timm.models.swin_transformer import window_partition

    height, width = grid
    (wh, ww), (sh, sw) = block.window_size, block.shift_size
    numbers = torch.arange(height * width).reshape(1, height, width, 1)
    numbers = torch.roll(numbers, shifts=(-sh, -sw), dims=(1, 2))
    numbers = F.pad(numbers, (0, 0, 0, -width % ww, 0, -height % wh), value=-1)
    return window_partition(numbers, (wh, ww)).reshape(-1, wh * ww)


def on_grid(exact: torch.Tensor, pixels: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """The reference as (B, heads, H·W, H·W): S of every pixel over every pixel, zero outside its window."""
    windows, tokens = pixels.shape
    batch = exact.shape[0] // windows
    exact = exact.reshape(batch, windows, *exact.shape[1:])
    full = torch.zeros(batch, exact.shape[2], num_pixels, num_pixels, dtype=torch.float64)
    for window in range(windows):
        for query in range(tokens):
            for key in range(tokens):
                i, j = int(pixels[window, query]), int(pixels[window, key])
                if i >= 0 and j >= 0:
                    full[:, :, i, j] = exact[:, window, :, query, key]
    return full


def stage_grids(photo: tuple[int, int]) -> list[tuple[int, int]]:
    """The grid of each of `swin`'s four blocks on `photo`: patches of 4, then merged 2x2 (rounded up)."""
    return [(photo[0] // 4, photo[1] // 4)] * 2 + [(-(-photo[0] // 8), -(-photo[1] // 8))] * 2


def assert_rows_and_columns(record, exact: torch.Tensor, batch: int) -> None:
    """Every row and every column of `record` within FLOAT64_ATOL of `exact` (N x N, float64) on the grid."""
    everyone = torch.arange(record.num_pixels)
    rows = record.rows(everyone, batch=batch).flatten(1).double()
    columns = torch.stack([record.column(j, batch=batch).flatten() for j in everyone]).double()
    assert float((rows - exact).abs().max()) <= FLOAT64_ATOL
    assert float((columns - exact.T).abs().max()) <= FLOAT64_ATOL


def captured(model, x, monkeypatch):
    with torch.no_grad():
        plain = model(x)
        count = KeptSdpa(monkeypatch)
        with capture(model) as rec:
            logits = model(x)
    return plain, logits, rec, count.calls


@pytest.mark.parametrize("photo", [(64, 64), (40, 56)], ids=["16x16 grid", "10x14 grid, padded windows"])
def test_every_row_and_column_equals_a_float64_softmax_of_the_ops_inputs_on_the_grid(photo, monkeypatch):
    model = swin(photo)
    torch.manual_seed(1)
    x = torch.randn(2, 3, *photo)
    plain, logits, rec, calls = captured(model, x, monkeypatch)
    assert torch.equal(logits, plain), "capture changed the logits"
    assert len(calls) == 4, "the fused call ran while capturing, once a block"
    assert rec.skipped == [], rec.skipped
    records = list(rec.records().items())
    grids = stage_grids(photo)
    shifts = [block.shift_size for block in blocks(model)]
    assert shifts == [(0, 0), (2, 2), (0, 0), (2, 2)]
    start = 0
    for block, call, grid in zip(blocks(model), calls, grids):
        heads = call[0][0].shape[1]
        pixels = pixel_windows(block, grid)
        exact = on_grid(reference(call), pixels, grid[0] * grid[1])
        for head in range(heads):
            key, record = records[start + head]
            assert key.endswith(f":head{head}") and isinstance(record, WindowAttentionRecord)
            assert (record.height, record.width, record.window, record.shift) == (*grid, (4, 4), block.shift_size)
            assert record.baseline == 16 and record.num_pixels == record.num_keys == grid[0] * grid[1]
            assert record.max_error is not None and record.max_error < 1e-5
            everyone = torch.arange(record.num_pixels)
            for batch in range(2):
                s = exact[batch, head]
                assert_rows_and_columns(record, s, batch)
                assert float((record.row(7, batch=batch).double() - s[7].view(*grid)).abs().max()) <= FLOAT64_ATOL
                # a row sums to 1 but for its share on the padding keys (keys that are no pixel; up to 3/4 of a
                # row in the 5x7 stage, padded to 8x8). The share is a float64 softmax of the recorded float32
                # q · scale: that rounding moves it by far less than the rows' bound (measured ~6e-11 here)
                share = torch.tensor([record.padding_share(i, batch) for i in everyone], dtype=torch.float64)
                assert float((s.sum(1) + share - 1).abs().max()) <= FLOAT64_ATOL
                assert (share == 0).all() == (photo == (64, 64))
                for i, j in ((0, 1), (5, grid[1] + 5), (grid[1] * 3 + 2, 0)):
                    energy, log_normaliser, entry = record.entry(i, j, batch=batch)
                    assert abs(entry - float(s[i, j])) <= FLOAT64_ATOL
                    assert (energy == -math.inf) == (float(s[i, j]) == 0.0 and j not in record.window_pixels(i))
        start += heads
    assert start == len(records)
    shifted = records[2][1]
    assert "shifted by 2 rows and 2 columns" in shifted.found_by.text("en")
    assert "平移了 2 行、2 列" in shifted.found_by.text("zh")


def test_a_query_at_a_shifted_windows_edge_attends_to_its_window_only_with_the_roll_undone(monkeypatch):
    """The bottom-right pixel of the 16x16 grid, in the shifted block: the roll by -2 takes it to the last window,
    which holds rows 14, 15, 0, 1 and columns 14, 15, 0, 1 of the grid; the mask keeps its own corner region
    (rows and columns 14, 15) apart from the three regions the roll wrapped round (e^-100: about 1e-44, not
    always zero in float32), and nothing outside the window is attended."""
    model = swin((64, 64))
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    _, _, rec, calls = captured(model, x, monkeypatch)
    record = rec.records()["layers.0.blocks.1.attn:head1"]
    exact = on_grid(reference(calls[1]), pixel_windows(blocks(model)[1], (16, 16)), 256)[:, 1]
    query = 15 * 16 + 15
    window = {r * 16 + c for r in (14, 15, 0, 1) for c in (14, 15, 0, 1)}  # by hand
    assert set(record.window_pixels(query).tolist()) == window
    own_region = {r * 16 + c for r in (14, 15) for c in (14, 15)}
    for batch in range(2):
        row = record.row(query, batch=batch).flatten()
        assert float((row.double() - exact[batch, query]).abs().max()) <= FLOAT64_ATOL
        support = set(torch.nonzero(row).flatten().tolist())
        assert own_region <= support <= window, support
        assert set(torch.nonzero(exact[batch, query]).flatten().tolist()) <= window
        assert float(row[sorted(window - own_region)].max()) < 1e-40  # the mask's -100
        assert abs(float(row[sorted(own_region)].sum()) - 1) <= 1e-6
        # who attends to that pixel: only its window's pixels, the same ones
        column = record.column(query, batch=batch).flatten()
        assert set(torch.nonzero(column).flatten().tolist()) <= window
        assert float((column.double() - exact[batch, :, query]).abs().max()) <= FLOAT64_ATOL
    # the pages read it as any spatial map: the clicked photo pixel's row, its top key inside the window, the
    # formula of that entry, the 4 keys its mask leaves it as the even share; no hover formula (drawn on click)
    view = position_view(record, (63, 63), (64, 64))
    assert (
        view.index == query and set(view.top) <= window and sum_reading(view, record).baseline == 4
    )  # the 2x2 corner region its mask leaves
    assert abs(view.formula[-1] - float(exact[0, query, view.top[0]])) <= FLOAT64_ATOL
    assert hover_payload(record, (64, 64)).data is None


class LookAlikeBlock(nn.Module):
    """States Swin's windows (window_size, shift_size) but cuts its grid into windows column by column: the
    reader must not place its rows as Swin's."""

    window_size, shift_size = 4, 0

    def __init__(self, channels: int = 8):
        super().__init__()
        self.attn = WindowSdpa(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        windows = x.reshape(b, h // 4, 4, w // 4, 4, c).permute(0, 3, 1, 2, 4, 5).reshape(-1, 16, c)
        return self.attn(windows)


class WindowSdpa(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.qkv = nn.Linear(channels, 3 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 2, -1).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v)


def test_windows_cut_otherwise_than_the_block_states_are_listed_not_drawn():
    torch.manual_seed(0)
    block = LookAlikeBlock().eval()
    with torch.no_grad(), capture(block) as rec:
        block(torch.randn(2, 8, 12, 8))
    assert rec.records() == {}
    (skipped,) = rec.skipped
    assert "where its windows lie is not known" in skipped.what.text("en")


@pytest.mark.parametrize("photo", [(64, 64), (40, 56)], ids=["16x16 grid", "10x14 grid, padded windows"])
def test_timms_default_explicit_softmax_is_read_as_the_same_windows(photo, monkeypatch):
    """timm's default Swin path (fused_attn off: q kᵀ · scale + relative position bias + shift mask, then
    nn.Softmax) kept its energies as computed: every row and column equals the float64 reference from the fused
    path's own SDPA inputs (the same weights and photo; the two paths' block inputs differ by float32 rounding
    only), on the grid with the roll undone; capture leaves the explicit path's logits unchanged."""
    from timm.models.swin_transformer import WindowAttention

    from attnviz.capture.records import WindowEnergiesRecord

    model = swin(photo)
    torch.manual_seed(1)
    x = torch.randn(2, 3, *photo)
    _, _, _, calls = captured(model, x, monkeypatch)  # the fused path: the reference's inputs
    for module in model.modules():
        if isinstance(module, WindowAttention):
            module.fused_attn = False
    plain, logits, rec, explicit_calls = captured(model, x, monkeypatch)
    assert explicit_calls == [], "the explicit path calls no SDPA"
    assert torch.equal(logits, plain), "capture changed the logits"
    assert rec.skipped == [], rec.skipped
    records = list(rec.records().items())
    grids = stage_grids(photo)
    start = 0
    for block, call, grid in zip(blocks(model), calls, grids):
        heads = call[0][0].shape[1]
        exact = on_grid(reference(call), pixel_windows(block, grid), grid[0] * grid[1])
        for head in range(heads):
            key, record = records[start + head]
            assert key.endswith(f":head{head}") and isinstance(record, WindowEnergiesRecord)
            assert (record.height, record.width, record.window, record.shift) == (*grid, (4, 4), block.shift_size)
            assert "softmax within" in record.found_by.text("en") and record.max_error < 1e-6
            for batch in range(2):
                s = exact[batch, head]
                assert_rows_and_columns(record, s, batch)
                energy, log_normaliser, entry = record.entry(5, grid[1] + 5, batch=batch)
                assert abs(entry - float(s[5, grid[1] + 5])) <= FLOAT64_ATOL
        start += heads
    assert start == len(records) == 2 * 2 + 2 * 4


def test_a_row_of_a_shifted_window_at_the_edge_spreads_over_the_keys_its_mask_leaves(monkeypatch):
    """The even share a Swin row is compared with is 1 over the keys it can reach: all 16 of a 4x4 window, or, in a
    shifted block's window at the grid's edge, the keys timm's own `attn_mask` leaves it (0, not -100), counted
    here from that mask (found in review: the page said "5.6x the uniform 1/49" of a row over 9 keys)."""
    from timm.models.swin_transformer import WindowAttention

    from attnviz.analysis.views import position_view, row_baseline, sum_reading

    model = swin((64, 64))
    for module in model.modules():
        if isinstance(module, WindowAttention):
            module.fused_attn = False  # timm's default path (the energies kept as computed)
    torch.manual_seed(1)
    _, _, rec, _ = captured(model, torch.randn(1, 3, 64, 64), monkeypatch)
    block = blocks(model)[1]  # shifted by (2, 2) on the 16x16 grid
    record = rec.records()["layers.0.blocks.1.attn:head0"]
    counts = []
    for pixel in (0, 15, 16 * 15, 16 * 15 + 15, 16 * 7 + 7):  # the corners, and one inside
        window, token = (int(t[0]) for t in record._slots(torch.tensor([pixel])))
        expected = int((block.attn_mask[window, token] == 0).sum())  # timm's mask: 0 where allowed, -100 apart
        assert record.reachable_keys(pixel) == expected
        view = position_view(record, ((pixel % 16) * 4 + 2, (pixel // 16) * 4 + 2), (64, 64), "row")
        assert view.index == pixel and row_baseline(record, view) == expected == sum_reading(view, record).baseline
        counts.append(expected)
    assert counts[-1] == 16 and min(counts) < 16, counts  # a window inside is whole; some at the edge are cut
