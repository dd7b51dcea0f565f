"""The dataflow reader (attnviz.capture.dataflow): attention found by what it computes, checked against an independent
hook (a bare TorchFunctionMode in this file that only keeps every softmax and sigmoid output) and, where the
inputs are known, a naive float64 softmax."""

import fixtures_dataflow as ea
import pytest
import torch
from fixtures_attention import ExternalEca, randomise
from tolerances import softmax_entry_rtol, softmax_row_sum_tolerance
from torch import nn
from torch.overrides import TorchFunctionMode

from attnviz.capture import capture, dataflow
from attnviz.capture.records import (
    BranchWeightRecord,
    ChannelAttentionRecord,
    DenseAttentionRecord,
    GateRecord,
    GlobalContextRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
)


class KeepOutputs(TorchFunctionMode):
    """The independent hook: every softmax / sigmoid / hard-sigmoid output of a forward, in call order."""

    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in ("softmax", "sigmoid", "sigmoid_", "hardsigmoid"):
            self.outputs.append(out.detach().clone())
        return out


def run(module: nn.Module, x: torch.Tensor):
    """(records, skipped, the independent hook's outputs) of one captured forward; the output must not change."""
    module = module.eval()
    with torch.no_grad():
        plain = module(x)
        with KeepOutputs() as hook:
            module(x)
        with capture(module) as rec:
            captured = module(x)
    assert torch.equal(plain, captured), "capture changed the output"
    return rec.records(), rec.skipped, hook.outputs


def values(record) -> torch.Tensor:
    """The op output a record holds (for the multiset comparison with the hook's outputs)."""
    if isinstance(record, DenseAttentionRecord):
        return record.maps
    if isinstance(record, (BranchWeightRecord, ChannelAttentionRecord)):
        return record.weights
    if isinstance(record, GateRecord):
        return record.gate
    if isinstance(record, SpatialAttentionRecord):
        return record.groups if record.groups is not None else record.map
    if isinstance(record, GlobalContextRecord):
        return record.maps if record.maps is not None else record.map
    raise TypeError(type(record))


def held_exactly(record, outputs) -> bool:
    """The record's values are one hook output's values, exactly: the same multiset when the record holds the
    whole output, else every value one of that output's (a head of several)."""
    mine = values(record).flatten()
    for o in outputs:
        if o.numel() == mine.numel() and torch.equal(o.flatten().sort().values, mine.sort().values):
            return True
        if o.numel() > mine.numel() and torch.isin(mine, o.flatten()).all():
            return True
    return False


def timm_layers():
    from timm.layers.bottleneck_attn import BottleneckAttn
    from timm.layers.gather_excite import GatherExcite
    from timm.layers.global_context import GlobalContext
    from timm.layers.lambda_layer import LambdaLayer
    from timm.layers.non_local_attn import NonLocalAttn
    from timm.layers.selective_kernel import SelectiveKernel
    from timm.layers.split_attn import SplitAttn

    return {
        "BottleneckAttn": (lambda: BottleneckAttn(32, 32, feat_size=(8, 8), num_heads=4), DenseAttentionRecord, 5),
        "LambdaLayer": (lambda: LambdaLayer(32, 32, dim_head=8, num_heads=4), GlobalContextRecord, 1),
        "NonLocalAttn": (lambda: NonLocalAttn(32), PositionAttentionRecord, 1),
        "SelectiveKernel": (lambda: SelectiveKernel(32, 32), BranchWeightRecord, 1),
        "SplitAttn": (lambda: SplitAttn(32, 32, radix=2), BranchWeightRecord, 1),
        "GatherExcite": (lambda: GatherExcite(32, extent=2, use_mlp=False), GateRecord, 1),
        "GlobalContext": (
            lambda: GlobalContext(32, fuse_scale=True, fuse_add=True),
            (GlobalContextRecord, ChannelAttentionRecord),
            2,
        ),
    }


@pytest.mark.parametrize("name", list(timm_layers()))
def test_timm_attention_layers_found_by_what_they_compute(name):
    build, kind, count = timm_layers()[name]
    torch.manual_seed(0)
    net = randomise(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), build()))
    records, skipped, outputs = run(net, torch.randn(2, 3, 8, 8))
    assert len(records) == count and skipped == []
    for key, record in records.items():
        assert isinstance(record, kind) and record.found_by, key
        if isinstance(record, PositionAttentionRecord):  # factored: S rebuilt from the op's own factors
            assert any(o.shape[-2:] == (64, 64) and torch.allclose(record.matrix(1), o[1], atol=1e-6) for o in outputs)
        elif not (isinstance(record, DenseAttentionRecord) and record.head is None and record.heads > 1):
            assert held_exactly(record, outputs), key


def test_bottleneck_heads_are_kept_apart_and_their_mean_is_the_mean():
    from timm.layers.bottleneck_attn import BottleneckAttn

    torch.manual_seed(0)
    records, _, outputs = run(
        randomise(nn.Sequential(nn.Conv2d(3, 32, 1), BottleneckAttn(32, 32, feat_size=(8, 8), num_heads=4))),
        torch.randn(2, 3, 8, 8),
    )
    softmax = outputs[-1].view(2, 4, 64, 64)  # (B * heads, N, N) as timm computes it, batch-major
    for head in range(4):
        assert torch.equal(records[f"1:head{head}"].maps, softmax[:, head])
        assert torch.equal(records[f"1:head{head}"].row(10, batch=1), softmax[1, head, 10].view(8, 8))
    assert torch.allclose(records["1:mean"].maps, softmax.mean(1))
    assert torch.allclose(records["1:head2"].maps.sum(-1), torch.ones(2, 64))


def test_halo_local_windows_are_listed_not_drawn():
    from timm.layers.halo_attn import HaloAttn

    records, skipped, _ = run(
        nn.Sequential(nn.Conv2d(3, 32, 1), HaloAttn(32, 32, block_size=4, halo_size=1)), torch.randn(1, 3, 8, 8)
    )
    assert records == {} and len(skipped) == 1 and "local attention" in skipped[0].what.text()


def test_non_local_rows_equal_a_naive_float64_softmax():
    from timm.layers.non_local_attn import NonLocalAttn

    torch.manual_seed(1)
    block = randomise(NonLocalAttn(16)).eval()
    x = torch.randn(1, 16, 6, 7)
    records, _, _ = run(block, x)
    record = records[next(iter(records))]
    with torch.no_grad():
        theta = nn.functional.conv2d(x.double(), block.t.weight.double(), block.t.bias.double()).flatten(2)[0].T
        phi = nn.functional.conv2d(x.double(), block.p.weight.double(), block.p.bias.double()).flatten(2)[0]
    energy = theta @ phi * block.scale
    naive = torch.exp(energy - energy.max(1, keepdim=True).values)
    naive = naive / naive.sum(1, keepdim=True)
    for i in (0, 17, 41):
        assert torch.allclose(record.row(i).double().flatten(), naive[i], atol=1e-6)
        assert (record.height, record.width, record.key_grid) == (6, 7, (6, 7))


LONG_TAIL = {  # module -> (builder, {record type: how many})
    "SimAM": (lambda: ea.SimAM(), {GateRecord: 1}),
    "SKAttention": (lambda: ea.SKAttention(32), {BranchWeightRecord: 1}),
    "ShuffleAttention": (lambda: ea.ShuffleAttention(32, G=4), {ChannelAttentionRecord: 1, GateRecord: 1}),
    # each AttentionGate owns its gate: a spatial gate on its own (permuted) input, (C, W), (H, C), (H, W)
    "TripletAttention": (
        lambda: ea.TripletAttention(),
        {SpatialAttentionRecord: 1, GateRecord: 2},
    ),  # H x W; C x W, H x C
    "PSA": (lambda: ea.PSA(32), {BranchWeightRecord: 1}),
    "ParallelPolarizedSelfAttention": (
        lambda: ea.ParallelPolarizedSelfAttention(32),
        {GlobalContextRecord: 1, ChannelAttentionRecord: 2, SpatialAttentionRecord: 1},
    ),
    "SpatialGroupEnhance": (lambda: ea.SpatialGroupEnhance(4), {SpatialAttentionRecord: 1}),
    "DoubleAttention": (lambda: ea.DoubleAttention(32), {GateRecord: 2}),
    "CoTAttention": (lambda: ea.CoTAttention(32), {GlobalContextRecord: 1}),
    "ParNetAttention": (lambda: ea.ParNetAttention(32), {ChannelAttentionRecord: 1}),
    "BAMBlock": (lambda: ea.BAMBlock(32), {GateRecord: 1}),
    "PositionAttentionModule": (lambda: ea.PositionAttentionModule(32), {PositionAttentionRecord: 1}),
    "S2Attention": (lambda: ea.S2Attention(32), {BranchWeightRecord: 1}),
}


@pytest.mark.parametrize("name", list(LONG_TAIL))
def test_long_tail_modules_found_by_what_they_compute(name):
    build, expected = LONG_TAIL[name]
    torch.manual_seed(0)
    net = randomise(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), build()))
    records, skipped, outputs = run(net, torch.randn(2, 3, 8, 8))
    counts = {}
    for record in records.values():
        counts[type(record)] = counts.get(type(record), 0) + 1
    assert counts == expected, (records.keys(), skipped)
    for key, record in records.items():
        assert record.found_by, key
        if isinstance(record, PositionAttentionRecord):  # energies in the hundreds here: tolerances from float32
            rtol, tiny = softmax_entry_rtol(record.query[0], record.key[0]), torch.finfo(torch.float32).tiny
            assert any(
                o.shape[-2:] == (64, 64)
                and torch.allclose(record.matrix(0), o.reshape(2, 64, 64)[0], rtol=rtol, atol=tiny)
                for o in outputs
            )
            for i in range(record.num_pixels):
                assert abs(float(record.row(i).sum()) - 1) <= softmax_row_sum_tolerance(record.num_keys), i
        else:
            assert held_exactly(record, outputs), key


def test_a_factored_map_at_energies_of_tens_of_thousands_is_kept_and_its_rows_are_distributions():
    """The reader's check of the factors against the op's output allows what float32 allows at these energies
    (bounds.softmax_rtol), so a trained model's PAM with large energies is not lost; its rows still sum to 1."""
    torch.manual_seed(0)
    net = randomise(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), ea.PositionAttentionModule(32)))
    records, skipped, _ = run(net, torch.randn(2, 3, 8, 8) * 6)
    (record,) = records.values()
    assert isinstance(record, PositionAttentionRecord) and not skipped
    assert float((record.query[0] @ record.key[0].T).abs().max()) > 1e4
    for i in range(record.num_pixels):
        assert abs(float(record.row(i).sum()) - 1) <= softmax_row_sum_tolerance(record.num_keys), i


def test_triplet_gates_on_permuted_features_are_planes_named_by_the_block_input():
    """TripletAttention gates the features permuted (C moved to a spatial axis): its first two gates are over
    the C x W and H x C planes of the block's input, never drawn as a photo's H x W; the third is spatial."""
    torch.manual_seed(0)
    net = randomise(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), ea.TripletAttention()))
    records, _, outputs = run(net, torch.randn(2, 3, 6, 10))
    planes = {key: r.axes for key, r in records.items() if isinstance(r, GateRecord)}
    assert sorted(planes.values()) == [("C", "W"), ("H", "C")], planes
    assert [r.map.shape[-2:] for r in records.values() if isinstance(r, SpatialAttentionRecord)] == [(6, 10)]
    assert all(held_exactly(r, outputs) for r in records.values())


def test_simam_gate_is_the_sigmoid_of_its_energy():
    torch.manual_seed(2)
    x = torch.randn(1, 32, 6, 8)
    records, _, _ = run(nn.Sequential(nn.Identity(), ea.SimAM()), x)
    gate = records["1"].gate
    d = (x - x.mean((2, 3), keepdim=True)).pow(2)
    expected = torch.sigmoid(d / (4 * (d.sum((2, 3), keepdim=True) / 47 + 1e-4)) + 0.5)
    assert records["1"].axes == ("C", "H", "W") and torch.allclose(gate, expected, atol=1e-7)


def test_a_family_module_and_a_long_tail_module_are_each_drawn_once():
    torch.manual_seed(0)
    net = randomise(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), ExternalEca(3), ea.SimAM(), ea.SKAttention(16)))
    records, skipped, _ = run(net, torch.randn(1, 3, 8, 8))
    assert list(records) == ["1", "2", "3"] and skipped == []
    assert records["1"].family == "eca" and not records["1"].found_by  # by structure: the dataflow reader left it
    assert records["2"].found_by and records["3"].found_by


def test_swish_and_a_final_softmax_are_not_attention():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            y = y * torch.sigmoid(y)  # swish
            return torch.softmax(y.mean((2, 3)) @ torch.ones(8, 5), dim=1)  # class probabilities

    records, skipped, _ = run(Net(), torch.randn(1, 3, 8, 8))
    assert records == {}
    assert [s.what.text() for s in skipped] == [
        "a softmax over 5 entries of a 1x5 tensor (no grid of the module has that many positions)"
    ]


def test_dense_maps_over_the_cap_are_listed_not_kept(monkeypatch):
    from timm.layers.bottleneck_attn import BottleneckAttn

    monkeypatch.setattr(dataflow, "DENSE_LIMIT_BYTES", 1000)
    records, skipped, _ = run(
        nn.Sequential(nn.Conv2d(3, 32, 1), BottleneckAttn(32, 32, feat_size=(8, 8))), torch.randn(1, 3, 8, 8)
    )
    assert records == {} and "over the" in skipped[0].what.text()


FOUND_BY = {  # module -> {record name: how the reader says it found it, in English}
    "SpatialGroupEnhance": {
        "1": "its sigmoid gate, one weight per pixel (8x8, 4 channel groups; their mean is shown); "
        "it multiplies the features"
    },
    "BAMBlock": {
        "1": "its sigmoid gate, one weight per element (32x8x8); a form of it changed by numbers "
        "(e.g. 1 + gate) multiplies the features"
    },
    "ShuffleAttention": {
        "1:channel": "its sigmoid gate, one weight per channel (16 in 4 groups); it multiplies the features",
        "1:elements": "its sigmoid gate, one weight per element (16x8x8); it multiplies the features",
    },
    "CoTAttention": {"1": "its softmax over 8x8 positions (32 maps; their mean is shown)"},
    "PositionAttentionModule": {
        "1.pa": "its softmax over 8x8 positions of a product of two factors (8x8 queries; S rebuilt from the factors)"
    },
    "SKAttention": {"1": "its softmax over 3 branches, per channel (32)"},
}


@pytest.mark.parametrize("name", list(FOUND_BY))
def test_how_a_record_was_found_is_kept_in_no_language_and_said_in_either(name):
    """found_by is a phrase (attnviz.i18n.Phrase) that a page says in its own language: in English as the reader
    always worded it, in Chinese with no English word left but the op's name and the map's symbol S."""
    from prose import latin_words

    torch.manual_seed(0)
    records, _, _ = run(
        randomise(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), LONG_TAIL[name][0]())), torch.randn(2, 3, 8, 8)
    )
    assert {key: record.found_by.text("en") for key, record in records.items()} == FOUND_BY[name]
    for record in records.values():
        assert set(latin_words(record.found_by.text("zh"))) <= {"sigmoid", "S"}, record.found_by.text("zh")


def test_what_was_seen_and_not_drawn_is_said_in_either_language():
    from timm.layers.halo_attn import HaloAttn

    _, skipped, _ = run(
        nn.Sequential(nn.Conv2d(3, 32, 1), HaloAttn(32, 32, block_size=4, halo_size=1)), torch.randn(1, 3, 8, 8)
    )
    assert [(s.module, s.what.text("en")) for s in skipped] == [
        (
            "1",
            "a softmax over windows of 36 keys for blocks of 16 queries (4 blocks: local attention, as HaloNet's): "
            "found, not drawn",
        )
    ]  # 4x4 blocks, each with a 1-pixel halo: (4 + 2)^2 keys
    assert skipped[0].what.text("zh").startswith("在 36 个键的窗口上")
