"""The Position page's view, as a value: every number the page prints, checked against a naive S."""
import numpy as np
import pytest
import torch

from attnviz.capture import PositionAttentionRecord, capture
from attnviz.modules.danet import PositionAttention
from attnviz.analysis.views import position_view


@pytest.fixture(scope="module")
def record():
    torch.manual_seed(0)
    pam = PositionAttention(16).eval()
    with torch.no_grad():
        pam.alpha.fill_(0.5)
        with capture(pam) as rec:
            pam(torch.randn(1, 16, 6, 8))
    return next(iter(rec.of_type(PositionAttentionRecord).values()))


def naive_s(record):
    q, k = record.query[0].double(), record.key[0].double()
    return torch.softmax(q @ k.T, dim=-1).numpy()


def test_row_view_matches_a_naive_softmax_and_ranks_its_top(record):
    s = naive_s(record)
    view = position_view(record, (21, 10), (48, 64), "row")          # 8x8 cells: column 2, row 1 -> index 10
    assert view.index == 10 and view.cell == (1, 2)
    np.testing.assert_allclose(view.values.reshape(-1), s[10], atol=1e-6)
    assert view.total == pytest.approx(1.0, abs=1e-5)
    assert view.top == list(np.argsort(-s[10])[:5])
    assert [v for _, _, v in view.top_cells] == sorted((v for _, _, v in view.top_cells), reverse=True)
    query, key, energy, log_z, entry = view.formula
    assert (query, key) == (10, view.top[0]) and entry == pytest.approx(s[10, key], abs=1e-6)
    assert view.class_share is None                                    # no labels


def test_column_view_is_who_attends_to_the_pixel(record):
    s = naive_s(record)
    view = position_view(record, (63, 47), (48, 64), "column")
    assert view.index == 47
    np.testing.assert_allclose(view.values.reshape(-1), s[:, 47], atol=1e-6)
    assert view.formula[:2] == (view.top[0], 47)


def test_class_share_with_labels_and_an_unlabelled_pixel(record):
    label = np.zeros((48, 64), dtype=np.int64)
    label[:, 32:] = 3
    label[0, 0] = 11
    s = naive_s(record)
    view = position_view(record, (40, 20), (48, 64), "row", label)   # class 3, cell (2, 5) = index 21
    share = view.class_share
    assert share.class_id == 3 and share.chance == pytest.approx((48 * 32) / (48 * 64 - 1))
    on_class = s[21].reshape(6, 8)[:, 4:].sum()
    labelled = s[21].sum() - s[21, 0] / 64                             # one of cell 0's 64 pixels is unlabelled
    assert share.share == pytest.approx(on_class / labelled, rel=1e-5)
    assert np.isfinite(share.far_key_ratio)
    assert position_view(record, (0, 0), (48, 64), "row", label).class_share.class_id == 11
    assert position_view(record, (40, 20), (48, 64), "column", label).class_share is None


def test_a_bad_mode_is_refused(record):
    with pytest.raises(ValueError, match="mode"):
        position_view(record, (0, 0), (48, 64), "diagonal")


def test_a_column_of_sub_sampled_keys_is_indexed_on_the_key_grid():
    """Non-local blocks with sub-sampling: 6x8 queries, 3x4 keys. A click picks a query for a row and a key
    for a column; both must be the cell under the pixel on their own grid."""
    torch.manual_seed(1)
    query, key = torch.randn(1, 48, 4), torch.randn(1, 12, 4)
    energy = (query[0].double() @ key[0].double().T)
    record = PositionAttentionRecord("pam", query, key, torch.logsumexp(energy, -1).float()[None], 6, 8, 0.5,
                                     key_height=3, key_width=4)
    s = torch.softmax(energy, -1).numpy()                                # (48 queries, 12 keys)
    row = position_view(record, (63, 47), (48, 64), "row")              # bottom-right query 47
    assert row.index == 47 and row.values.shape == (3, 4)
    np.testing.assert_allclose(row.values.reshape(-1), s[47], atol=1e-6)
    column = position_view(record, (63, 47), (48, 64), "column")        # bottom-right key 11
    assert column.index == 11 and column.feature_hw == (3, 4) and column.cell == (2, 3)
    np.testing.assert_allclose(column.values.reshape(-1), s[:, 11], atol=1e-6)
    assert column.formula[:2] == (column.top[0], 11)
    from attnviz.analysis.geometry import pixel_cell
    assert pixel_cell(*column.pixel_centre, (48, 64), (3, 4)) == 11      # the marker sits on that key cell


def test_coordinate_view_is_the_records_factors_at_the_chosen_cell():
    import torch

    from attnviz.capture.records import CoordinateAttentionRecord
    from attnviz.analysis.views import coordinate_view, most_varied_channel

    generator = torch.Generator().manual_seed(0)
    a_h, a_w = torch.rand(1, 3, 4, generator=generator), torch.rand(1, 3, 6, generator=generator)
    a_w[0, 1] = torch.linspace(0, 1, 6)  # channel 1 varies most
    record = CoordinateAttentionRecord("ca", a_h, a_w)
    view = coordinate_view(record, 2, (47, 13), (40, 60))  # pixel (x 47, y 13) on a 40x60 photo: row 1, col 4
    assert view.cell == (13 * 4 // 40, 47 * 6 // 60)
    assert view.at_cell == pytest.approx((float(a_h[0, 2, 1]), float(a_w[0, 2, 4]), float(a_h[0, 2, 1] * a_w[0, 2, 4])))
    np.testing.assert_allclose(view.product, np.outer(a_h[0, 2].numpy(), a_w[0, 2].numpy()), rtol=1e-6)
    spread = [np.outer(a_h[0, c].numpy(), a_w[0, c].numpy()).std() for c in range(3)]
    assert most_varied_channel(record) == int(np.argmax(spread))


def test_channel_scaling_is_the_weight_times_the_layers_input():
    from attnviz.capture.records import ChannelAttentionRecord
    from attnviz.analysis.views import channel_scaling

    features = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(3))
    weights = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    scaling = channel_scaling(ChannelAttentionRecord("se", weights, features=features), 1)
    assert scaling.weight == pytest.approx(0.9)
    np.testing.assert_allclose(scaling.before, features[0, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(scaling.after, 0.9 * features[0, 1].numpy(), rtol=1e-6)
    with pytest.raises(ValueError):
        channel_scaling(ChannelAttentionRecord("se", weights), 1)


def test_heads_are_grouped_under_their_module_mean_first_then_in_order():
    from attnviz.analysis.views import head_of, module_heads

    names = ["net.pam", "blk.attn:head10", "blk.attn:head2", "blk.attn:mean", "blk.attn:head0", "gate:headroom"]
    assert module_heads(names) == {"net.pam": ["net.pam"],
                                   "blk.attn": ["blk.attn:mean", "blk.attn:head0", "blk.attn:head2", "blk.attn:head10"],
                                   "gate:headroom": ["gate:headroom"]}
    assert head_of("blk.attn:head2") == ("blk.attn", "head2") and head_of("net.cc.cca#1") == ("net.cc.cca#1", None)
    # a module called twice in one forward: the second call's heads are a group of their own
    assert module_heads(["a:head0", "a:head1", "a:head0#1", "a:head1#1"]) == {
        "a": ["a:head0", "a:head1"], "a#1": ["a:head0#1", "a:head1#1"]}


def test_a_record_name_splits_into_module_part_and_call_as_the_recorder_writes_it():
    from torch import nn

    from attnviz.capture.recorder import Recorder, split_name
    from attnviz.capture.records import ChannelAttentionRecord

    net = nn.Sequential(nn.Identity())
    recorder = Recorder(net)
    for part in ("head0", "head0", ""):
        recorder.add(net[0], ChannelAttentionRecord("gate", np.zeros((1, 2))), part=part)
    assert list(recorder) == ["0:head0", "0:head0#1", "0"]
    assert [split_name(name) for name in recorder] == [("0", "head0", 0), ("0", "head0", 1), ("0", "", 0)]
    assert split_name("net.cc.cca#1") == ("net.cc.cca", "", 1) and split_name("x#y") == ("x#y", "", 0)


def test_gate_planes_are_what_a_gate_record_holds():
    import torch

    from attnviz.analysis.views import branch_weights, gate_planes
    from attnviz.capture.records import BranchWeightRecord, GateRecord

    torch.manual_seed(0)
    softmax = torch.softmax(torch.randn(2, 3, 4, 5), dim=1)   # 3 descriptors at every pixel of a 4x5 grid
    planes = gate_planes(GateRecord("softmax", softmax, ("K", "H", "W")), batch=1)
    assert [p.descriptor for p in planes] == [0, 1, 2] and all(p.axes == ("H", "W") for p in planes)
    assert np.allclose(sum(p.values for p in planes), 1.0, atol=1e-6)           # the descriptors share each pixel
    elements = torch.rand(1, 6, 4, 5)
    (plane,) = gate_planes(GateRecord("elements", elements, ("C", "H", "W")))
    assert plane.mean_over == "C" and np.allclose(plane.values, elements[0].mean(0).numpy())
    (plane,) = gate_planes(GateRecord("plane", elements[:, 0, :3], ("C", "W")))   # TripletAttention's C x W gate
    assert plane.axes == ("C", "W") and np.array_equal(plane.values, elements[0, 0, :3].numpy())
    weights = torch.softmax(torch.randn(1, 3, 8), dim=1)
    assert np.allclose(branch_weights(BranchWeightRecord("branches", weights)).sum(0), 1.0, atol=1e-6)
