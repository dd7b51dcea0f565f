"""The Position page's view, as a value: every number the page prints, checked against a naive S."""

import dataclasses

import numpy as np
import pytest
import torch

from attnviz.analysis.views import position_view
from attnviz.capture import PositionAttentionRecord, capture
from attnviz.modules.danet import PositionAttention


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
    view = position_view(record, (21, 10), (48, 64), "row")  # 8x8 cells: column 2, row 1 -> index 10
    assert view.index == 10 and view.cell == (1, 2)
    np.testing.assert_allclose(view.values.reshape(-1), s[10], atol=1e-6)
    assert view.total == pytest.approx(1.0, abs=1e-5)
    assert view.top == list(np.argsort(-s[10])[:5])
    assert [v for _, _, v in view.top_cells] == sorted((v for _, _, v in view.top_cells), reverse=True)
    query, key, energy, log_z, entry = view.formula
    assert (query, key) == (10, view.top[0]) and entry == pytest.approx(s[10, key], abs=1e-6)
    assert view.class_share is None  # no labels


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
    view = position_view(record, (40, 20), (48, 64), "row", label)  # class 3, cell (2, 5) = index 21
    share = view.class_share
    assert share.class_id == 3 and share.chance == pytest.approx((48 * 32) / (48 * 64 - 1))
    on_class = s[21].reshape(6, 8)[:, 4:].sum()
    labelled = s[21].sum() - s[21, 0] / 64  # one of cell 0's 64 pixels is unlabelled
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
    energy = query[0].double() @ key[0].double().T
    record = PositionAttentionRecord(
        "pam", query, key, torch.logsumexp(energy, -1).float()[None], 6, 8, 0.5, key_height=3, key_width=4
    )
    s = torch.softmax(energy, -1).numpy()  # (48 queries, 12 keys)
    row = position_view(record, (63, 47), (48, 64), "row")  # bottom-right query 47
    assert row.index == 47 and row.values.shape == (3, 4)
    np.testing.assert_allclose(row.values.reshape(-1), s[47], atol=1e-6)
    column = position_view(record, (63, 47), (48, 64), "column")  # bottom-right key 11
    assert column.index == 11 and column.feature_hw == (3, 4) and column.cell == (2, 3)
    np.testing.assert_allclose(column.values.reshape(-1), s[:, 11], atol=1e-6)
    assert column.formula[:2] == (column.top[0], 11)
    from attnviz.analysis.geometry import pixel_cell

    assert pixel_cell(*column.pixel_centre, (48, 64), (3, 4)) == 11  # the marker sits on that key cell


def test_coordinate_view_is_the_records_factors_at_the_chosen_cell():
    import torch

    from attnviz.analysis.views import coordinate_view, most_varied_channel
    from attnviz.capture.records import CoordinateAttentionRecord

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
    from attnviz.analysis.views import channel_scaling
    from attnviz.capture.records import ChannelAttentionRecord

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
    assert module_heads(names) == {
        "net.pam": ["net.pam"],
        "blk.attn": ["blk.attn:mean", "blk.attn:head0", "blk.attn:head2", "blk.attn:head10"],
        "gate:headroom": ["gate:headroom"],
    }
    assert head_of("blk.attn:head2") == ("blk.attn", "head2") and head_of("net.cc.cca#1") == ("net.cc.cca#1", None)
    # a module called twice in one forward: the second call's heads are a group of their own
    assert module_heads(["a:head0", "a:head1", "a:head0#1", "a:head1#1"]) == {
        "a": ["a:head0", "a:head1"],
        "a#1": ["a:head0#1", "a:head1#1"],
    }


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
    softmax = torch.softmax(torch.randn(2, 3, 4, 5), dim=1)  # 3 descriptors at every pixel of a 4x5 grid
    planes = gate_planes(GateRecord("softmax", softmax, ("K", "H", "W")), batch=1)
    assert [p.descriptor for p in planes] == [0, 1, 2] and all(p.axes == ("H", "W") for p in planes)
    assert np.allclose(sum(p.values for p in planes), 1.0, atol=1e-6)  # the descriptors share each pixel
    elements = torch.rand(1, 6, 4, 5)
    (plane,) = gate_planes(GateRecord("elements", elements, ("C", "H", "W")))
    assert plane.mean_over == "C" and np.allclose(plane.values, elements[0].mean(0).numpy())
    (plane,) = gate_planes(GateRecord("plane", elements[:, 0, :3], ("C", "W")))  # TripletAttention's C x W gate
    assert plane.axes == ("C", "W") and np.array_equal(plane.values, elements[0, 0, :3].numpy())
    weights = torch.softmax(torch.randn(1, 3, 8), dim=1)
    assert np.allclose(branch_weights(BranchWeightRecord("branches", weights)).sum(0), 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- the Position page's numbers


def _sub_sampled_record():
    """6x8 queries, 3x4 keys (a non-local block with sub-sampling), and its S built naively."""
    torch.manual_seed(1)
    query, key = torch.randn(1, 48, 4), torch.randn(1, 12, 4)
    energy = query[0].double() @ key[0].double().T
    record = PositionAttentionRecord(
        "pam", query, key, torch.logsumexp(energy, -1).float()[None], 6, 8, 0.5, key_height=3, key_width=4
    )
    return record, energy.numpy(), torch.softmax(energy, -1).numpy()


def test_each_panel_reads_a_pin_at_the_same_place_of_its_own_photo(record):
    from types import SimpleNamespace

    from attnviz.analysis.views import panel_views

    small = SimpleNamespace(record=record, image=np.zeros((48, 64, 3)), label=None)
    large = SimpleNamespace(record=record, image=np.zeros((96, 128, 3)), label=None)
    views = panel_views([small, large], [(21, 10), (63, 47)], (48, 64), "row")
    assert [[v.pixel for v in row] for row in views] == [[(21, 10), (63, 47)], [(42, 20), (126, 94)]]
    assert [[v.index for v in row] for row in views] == [[10, 47], [10, 47]]  # the same cells, twice the pixels


def test_a_shared_colour_range_starts_at_zero_unless_a_map_is_negative():
    from types import SimpleNamespace

    from attnviz.analysis.views import shared_colour_range

    def maps(*pairs):
        return [[SimpleNamespace(values=np.array(pair)) for pair in pairs]]

    assert shared_colour_range(maps((0.2, 0.5), (0.1, 0.9))) == (0.0, 0.9)
    assert shared_colour_range(maps((0.2, 0.5)) + maps((-0.3, 0.4))) == (-0.3, 0.5)


def test_cell_size_is_the_photo_pixels_of_one_cell_floored():
    from attnviz.analysis.views import cell_size

    assert cell_size((360, 480), (45, 60)) == (8, 8)
    assert cell_size((48, 64), (3, 4)) == (16, 16)
    assert cell_size((50, 67), (6, 8)) == (8, 8)


def test_a_rows_largest_entry_and_a_columns_sum_against_even_attention(record):
    from attnviz.analysis.views import full_map_size, sum_reading

    s = naive_s(record)
    reading = sum_reading(position_view(record, (21, 10), (48, 64), "row"), record)
    assert reading.baseline == 48 and reading.column_average == 1.0
    assert reading.total == pytest.approx(1.0, abs=1e-5)
    assert reading.largest_over_even == pytest.approx(s[10].max() * 48, rel=1e-5)
    sub_sampled, _, s = _sub_sampled_record()
    column = sum_reading(position_view(sub_sampled, (63, 47), (48, 64), "column"), sub_sampled)
    assert column.column_average == 48 / 12  # N / Nk: 48 queries over 12 keys
    assert column.total_over_average == pytest.approx(s[:, 11].sum() / 4, rel=1e-5)
    assert full_map_size(sub_sampled) == 48 * 12


def test_the_worked_formula_names_i_and_j_on_their_own_grids(record):
    import dataclasses

    from attnviz.analysis.views import formula_pair

    s = naive_s(record)
    row = formula_pair(position_view(record, (21, 10), (48, 64), "row"), record.baseline, (48, 64))
    top = int(np.argmax(s[10]))
    assert (row.query, row.key, row.query_cell, row.key_cell) == (10, top, (1, 2), divmod(top, 8))
    assert row.key_grid == (6, 8) and row.key_cell_size == (8, 8)
    assert row.entry == pytest.approx(s[10, top], abs=1e-6)
    assert row.even_ratio == pytest.approx(48 * s[10, top], rel=1e-5)
    sub_sampled, energy, s = _sub_sampled_record()
    column = formula_pair(position_view(sub_sampled, (63, 47), (48, 64), "column"), sub_sampled.baseline, (48, 64))
    top = int(np.argmax(s[:, 11]))  # the query that attends most to key 11
    assert (column.query, column.key, column.query_cell, column.key_cell) == (top, 11, divmod(top, 8), (2, 3))
    assert column.key_grid == (3, 4) and column.key_cell_size == (16, 16)
    assert column.energy == pytest.approx(energy[top, 11], abs=1e-5)
    assert column.log_z == pytest.approx(np.log(np.exp(energy[top]).sum()), abs=1e-5)
    assert column.even_ratio == pytest.approx(12 * s[top, 11], rel=1e-5)
    no_entry = dataclasses.replace(position_view(record, (0, 0), (48, 64)), formula=None)  # GCNet's shared map
    assert formula_pair(no_entry, record.baseline, (48, 64)) is None


def test_the_note_on_classes_fits_the_model_shown():
    from attnviz.analysis.views import position_notice

    assert position_notice("camvid", 1.0) == "affinity"
    assert position_notice("camvid", 0.0) == "plain"
    assert position_notice("timm") == "imagenet"
    assert position_notice("user", 1.0) == "user"  # a user's model: nothing is known of its training


# ----------------------------------------------------------------------------- the Attribution page's numbers


def test_attribution_cells_are_each_cells_share_of_the_magnitude():
    from attnviz.analysis.views import attribution_cells

    attribution = np.zeros((3, 4, 4))
    attribution[0, :2, :2] = -3.0  # |-3| over the top-left cell
    attribution[1, 2:, 2:] = 1.0  # 1 over the bottom-right cell
    np.testing.assert_allclose(attribution_cells(attribution, (2, 2)), [[0.75, 0.0], [0.0, 0.25]])
    np.testing.assert_allclose(attribution_cells(np.abs(attribution).sum(0), (2, 2)), [[0.75, 0.0], [0.0, 0.25]])


def test_agreement_is_rank_correlation_and_top_overlap_on_one_grid():
    from attnviz.analysis.views import agreement, top_overlap_chance

    row = np.array([[0.1, 0.4], [0.2, 0.3]])
    same = agreement(row, np.array([[1.0, 4.0], [2.0, 3.0]]), 2)  # the same order: top 2 cells {0.4, 0.3}
    assert same.rho == pytest.approx(1.0) and same.overlap == 1.0
    reverse = agreement(row, np.array([[4.0, 1.0], [3.0, 2.0]]), 2)
    assert reverse.rho == pytest.approx(-1.0) and reverse.overlap == 0.0
    assert agreement(row, np.array([[1.0, 4.0], [3.0, 2.0]]), 2).overlap == 0.5  # top 2 {0.4, 0.3} vs {4, 3}
    with pytest.raises(ValueError, match="grid"):
        agreement(row, np.zeros((3, 2)), 2)
    assert top_overlap_chance((10, 10), 20) == pytest.approx(0.2)  # k / cells
    assert top_overlap_chance((2, 2), 20) == 1.0  # k is at most the grid's cells


def test_the_findings_table_says_each_check_in_the_pages_language():
    """One Check per reader and outcome: the status, the reader and yes / no come from the catalog of the language
    asked for, the dataflow reader's phrase too; names, families and sizes stay as they are."""
    from prose import chinese_share

    from attnviz.analysis.forward import Check
    from attnviz.analysis.views import findings_rows
    from attnviz.i18n import Phrase

    checks = [
        Check("pam", "structure", "pam", True, max_error=3.2e-7, map="8x8", keys="4x4"),
        Check(  # its reason as attnviz.capture.families.hooks words it
            "nl",
            "structure",
            "non-local",
            False,
            form="embedded",
            max_error=0.31,
            map="8x8",
            reason=Phrase.of("families.not_verified.error", error="3.1e-01", limit="1e-05"),
        ),
        Check("eca", "library", "eca", True, map="C = 32"),
        Check(
            "attn",
            "dataflow",
            "channel_attention",
            True,
            map="C = 16",
            found_by=Phrase.of("dataflow.found.channels", size=16),
        ),
        Check("odd", "dataflow", "–", False, found_by=Phrase.of("dataflow.not_drawn.one_axis")),
    ]
    english = findings_rows(checks, "en")
    assert [row["check"] for row in english] == [
        "verified (max error 3.2e-07)",
        "recognised, not verified (max error 3.1e-01, limit 1e-05)",
        "read through hooks on its own gate",
        "its softmax over 16 channels",
        "a gate along one axis only (no matching gate along the other)",
    ]
    assert [row["drawn"] for row in english] == ["yes", "no", "yes", "yes", "no"]
    assert [row["map"] for row in english] == ["8x8 (keys 4x4)", "8x8", "C = 32", "C = 16", "–"]
    assert english[1]["family"] == "non-local (embedded)" and english[3]["reader"] == "what it computes"
    chinese = findings_rows(checks, "zh")
    assert [row["drawn"] for row in chinese] == ["是", "否", "是", "是", "否"]
    assert chinese[0]["check"] == "已核验（最大误差 3.2e-07）" and chinese[3]["check"] == "它对 16 个通道做的 softmax"
    assert chinese[1]["check"] == "已识别，未通过核验（最大误差 3.1e-01，上限 1e-05）"
    assert [row["module"] for row in chinese] == [row["module"] for row in english]
    # a family is a name; the type of a record found by what it computes is a word of the page's language
    assert [row["family"] for row in chinese] == ["pam", "non-local (embedded)", "eca", "通道权重", "–"]
    assert english[3]["family"] == "channel weights"
    for row in chinese:
        assert chinese_share(" ".join((row["check"], row["reader"], row["drawn"]))) >= 0.9, row


def test_every_record_type_the_findings_table_names_is_a_word_of_both_languages():
    """The findings table names a record found by dataflow by its type (attnviz.analysis.forward.record_type): every
    record class has that word in English and in Chinese."""
    import dataclasses

    from attnviz.analysis.forward import record_type
    from attnviz.capture import records
    from attnviz.i18n import section

    classes = [c for c in vars(records).values() if isinstance(c, type) and issubclass(c, records.Provenance)]
    keys = {record_type(c) for c in classes if c is not records.Provenance and dataclasses.is_dataclass(c)}
    assert {"branch_weight", "criss_cross_attention", "gate", "channel_attention"} <= keys  # snake case of the stem
    for language in ("en", "zh"):
        assert set(section("overview.records", language)) == keys, language


def test_a_model_cards_rows_are_its_figures_in_words_and_a_missing_field_is_left_out():
    from attnviz.analysis.views import card_rows

    card = {
        "evaluation": {"miou": 0.6123, "split": "test", "parameters": 1234567, "attention_parameters": True},
        "training": {"epochs": 30, "wall_time_s": 5400, "settings": {"crop": [360, 480], "pam_affinity": 0}},
    }
    rows = {row["field"]: row["value"] for row in card_rows(card)}
    assert rows["test mIoU"] == "61.2%" and rows["parameters"] == "1,234,567"
    assert rows["epochs"] == "30" and rows["crop"] == "360 x 480" and rows["training time"] == "90 min"
    assert "attention parameters" not in rows  # a bool is not a number
    assert "PAM affinity weight" not in rows and "trained on" not in rows  # 0 and missing
    assert card_rows({"evaluation": "hand-edited", "training": []}) == []
    zh = card_rows(card, "zh")
    assert len(zh) == len(rows) and all(set(row) == {"项目", "值"} for row in zh)


def _found(reader, record):
    return dataclasses.replace(record, reader=reader)


def test_what_the_dataflow_reader_found_is_grouped_by_how_it_is_drawn():
    from attnviz.analysis.views import computed_modules, recognised_by_structure
    from attnviz.capture.records import (
        BranchWeightRecord,
        ChannelAttentionRecord,
        CoordinateAttentionRecord,
        GateRecord,
        SpatialAttentionRecord,
    )

    weights = torch.rand(1, 4)
    records = {
        "cbam.spatial": _found("structure", SpatialAttentionRecord("spatial", torch.rand(1, 3, 3))),
        "x.gate": _found("dataflow", SpatialAttentionRecord("spatial", torch.rand(1, 3, 3))),
        "ca": _found("dataflow", CoordinateAttentionRecord("ca", torch.rand(1, 2, 3), torch.rand(1, 2, 3))),
        "se": _found("dataflow", ChannelAttentionRecord("gate", weights)),
        "soft": _found("dataflow", ChannelAttentionRecord("softmax", weights)),
        "sk": _found("dataflow", BranchWeightRecord("branches", torch.rand(1, 2, 4))),
        "tri": _found("dataflow", GateRecord("gate", torch.rand(1, 4, 5), ("C", "W"))),
    }
    found = computed_modules(records)
    assert list(found.spatial) == ["x.gate"] and list(found.coordinates) == ["ca"]
    assert list(found.channel_gates) == ["se"] and list(found.channel_softmaxes) == ["soft"]
    assert list(found.branches) == ["sk"] and list(found.planes) == ["tri"]
    assert not computed_modules({"cbam.spatial": records["cbam.spatial"]})
    spatial = {n: r for n, r in records.items() if isinstance(r, SpatialAttentionRecord)}
    assert list(recognised_by_structure(spatial)) == ["cbam.spatial"]


def test_items_in_rows_of_three():
    from attnviz.analysis.views import in_rows

    assert in_rows(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert in_rows({}.items(), 3) == []


def test_the_models_compared_first_and_the_centre_cell():
    from attnviz.analysis.views import centre_cell, default_comparison

    assert default_comparison(["danet-eca", "fcn-eca", "fcn-none", "fcn-cbam"]) == ["fcn-none", "fcn-eca", "fcn-cbam"]
    assert default_comparison(["danet-eca", "danet-none", "x"]) == ["danet-eca", "danet-none"]
    # a 360x480 photo's centre (240, 180) on a 45x60 grid: 8x8 cells, row 22, column 30
    assert centre_cell((360, 480), (45, 60)) == 22 * 60 + 30


def test_the_comparison_table_and_the_evaluation_it_comes_from():
    from attnviz.analysis.views import comparison_table, evaluation_source, photos_evaluated
    from attnviz.results import BASELINE, DASH

    difference = f"vs {BASELINE} (points)"
    rows = [
        {"model": "fcn-none", difference: DASH, "beyond test noise": DASH},
        {"model": "fcn-se", difference: "+1.2 [0.4, 2.0]", "beyond test noise": "yes"},
        {"model": "fcn-eca", difference: "-0.3 [-1.1, 0.5]", "beyond test noise": "no"},
    ]
    table = comparison_table(rows, ["fcn-se"], "是", "否")
    assert list(table.columns[:2]) == ["model", "shown"] and table["shown"].tolist() == [False, True, False]
    assert table["difference"].tolist() == [DASH, "+1.2", "-0.3"]
    assert table["beyond"].tolist() == [DASH, "是", "否"]
    results = {"models": {"fcn-se": {"images": 233}, "fcn-eca": {"images": 101}}, "meta": {"latency_threads": 1}}
    assert photos_evaluated(results, ["fcn-none", "fcn-se", "fcn-eca"]) == 233
    assert photos_evaluated({}, ["fcn-se"]) == "?"
    assert evaluation_source(results) == {
        "command": "python -m attnviz.evaluate",
        "cpu": "?",
        "threads": 1,
        "repeats": "?",
    }


def test_the_channel_maps_summary_and_one_row():
    from attnviz.analysis.views import channel_energy, channel_map_summary, channel_row

    attention = np.array([[0.995, 0.005, 0.0], [0.2, 0.5, 0.3], [0.0, 0.001, 0.999]])
    summary = channel_map_summary(attention)
    assert summary.channels == 3 and summary.one_hot == pytest.approx(2 / 3) and summary.mostly_one_hot
    assert summary.most_peaked == 2 and summary.uniform == pytest.approx(1 / 3) and summary.entries == 9
    row = channel_row(attention, 1, related=2)
    assert row.total == pytest.approx(1.0) and row.related == [1, 2] and row.partner == 1
    features = torch.tensor([[[[1.0, 2.0]], [[0.0, 3.0]]]])  # A_0 = (1, 2), A_1 = (0, 3)
    np.testing.assert_array_equal(channel_energy(features), [[5.0, 6.0], [6.0, 9.0]])


def test_channel_weights_saturation_spread_and_the_branch_sum():
    from attnviz.analysis.views import bracketed, saturated_share, spread, strongest_branch_sum

    weights = np.array([0.01, 0.5, 0.97, 0.95, 0.05], dtype=np.float32)
    assert saturated_share(weights) == pytest.approx(2 / 5)  # 0.95 and 0.05 themselves are not saturated
    s = spread(weights)
    assert (s.lowest, s.highest, s.median) == pytest.approx((0.01, 0.97, 0.5))
    assert s.mean == pytest.approx(2.48 / 5)
    total = strongest_branch_sum(np.array([0.5, -1.0, 2.0]), np.array([0.1, 3.0, -0.5]), weights[:3])
    assert (total.channel, total.avg, total.max, total.argument) == (2, 2.0, -0.5, 1.5)
    assert bracketed(-0.5) == "(-0.500)" and bracketed(0.25) == "0.250"


def test_eca_layers_kernels_and_the_kernel_table():
    from attnviz.analysis.views import (
        distinct_kernel_layers,
        kernel_rule_rows,
        plain_eca_layers,
        released_kernels_text,
        se_parameters,
        spatial_partner,
    )
    from attnviz.capture.records import ChannelAttentionRecord

    def eca(channels, k, pooled=True):
        parts = {"pooled": torch.zeros(1, channels)} if pooled else {}
        kernel = torch.zeros(k) if k else None
        return ChannelAttentionRecord("eca", torch.zeros(1, channels), parts, kernel)

    layers = {"a": eca(64, 3), "b": eca(64, 3), "c": eca(256, 5), "d": eca(64, 0), "e": eca(128, 5, pooled=False)}
    assert list(plain_eca_layers(layers)) == ["a", "b", "c"]
    marked = distinct_kernel_layers(layers)
    assert [(m.name, m.channels, m.k) for m in marked] == [("a", 64, 3), ("c", 256, 5), ("e", 128, 5)]
    assert se_parameters(256) == 2 * 256 * 16  # C x C/16 and back
    assert spatial_partner("layer4.0.cbam.channel") == "layer4.0.cbam.spatial"
    assert released_kernels_text({"R50": [(1, 3), (2, 5)], "R101": [(1, 7)]}) == "R50: 3, 5; R101: 7"
    rows = kernel_rule_rows(2.0, 1.0, {"k": lambda c, g, b: c // 64}, lambda c, g, b: (np.log2(c) + b) / g, (64, 256))
    assert rows == [{"C": 64, "t = (log2 C + b)/γ": 3.5, "k": 1}, {"C": 256, "t = (log2 C + b)/γ": 4.5, "k": 4}]


def test_a_cells_middle_and_a_steps_neighbours():
    from attnviz.analysis.views import cell_middle, neighbours

    assert cell_middle((1, 4), (40, 60), (4, 6)) == (45.0, 15.0)  # 10x10 cells: column 4 spans x 40-50
    assert neighbours("abc", "a") == (0, "a", "b")
    assert neighbours("abc", "b") == (1, "a", "c")
    assert neighbours("abc", "c") == (2, "b", "c")


def _switch_results() -> dict:
    """An interventions section by hand: fcn-eca's ECA off costs 2 points beyond noise, flat is inside noise."""
    eca = {
        "modules": ["backbone.layer1.0.attn"],
        "off": {"difference": -0.02, "low": -0.03, "high": -0.01},
        "flat": {"difference": 0.001, "low": -0.004, "high": 0.006},
    }
    pam = {"modules": ["head.pam"], "off": {"difference": 0.005, "low": 0.001, "high": 0.009}}
    return {
        "interventions": {
            "meta": {"command": "python -m attnviz.evaluate --interventions", "photos": 233, "missing": ["x"]},
            "models": {
                "fcn-eca": {"miou": 0.56, "kinds": {"eca": eca}, "stages": {"eca @ backbone.layer1": eca}},
                "danet-none": {"miou": 0.55, "kinds": {"pam": pam}, "stages": {}},
            },
        }
    }


def test_the_switch_table_says_what_each_interval_says():
    from attnviz.analysis.views import SWITCH_COLUMNS, switch_summary, switch_table
    from attnviz.results import DASH, EFFECTS, switch_figures

    words = dict(zip(EFFECTS, ("下降", "上升", "几乎不变", "测不出")))
    figures = switch_figures(_switch_results())
    table = switch_table(figures, words)
    assert list(table.columns) == list(SWITCH_COLUMNS)
    assert table.values.tolist() == [  # models by name; a mode that is missing is a dash
        ["danet-none", "pam", "+0.50 [+0.10, +0.90]", "上升", DASH, DASH],
        ["fcn-eca", "eca", "-2.00 [-3.00, -1.00]", "下降", "+0.10 [-0.40, +0.60]", "测不出"],
    ]
    summary = switch_summary(figures)
    assert summary == {
        "switches": 3,
        "unmeasurable": 1,
        "negligible": 0,
        "model": "fcn-eca",
        "module": "eca",
        "mode": "off",
        "difference": pytest.approx(-2.0),
    }
    stages = switch_table(switch_figures(_switch_results(), "stages"), words, {"eca": "ECA"})
    assert stages["module"].tolist() == ["ECA @ backbone.layer1"]  # named by its kind's word, its stage kept
    assert switch_summary([]) is None and switch_figures({}) == [] and switch_figures({"interventions": 3}) == []


def test_a_change_beyond_noise_but_under_a_tenth_of_a_point_is_next_to_nothing():
    from attnviz.results import switch_figures

    results = {
        "interventions": {
            "models": {
                "m": {
                    "miou": 0.5,
                    "kinds": {
                        "cam": {
                            "off": {"difference": 0.0003, "low": 0.0002, "high": 0.0004},
                            "flat": {"difference": -0.002, "low": -0.003, "high": -0.001},
                        }
                    },
                }
            }
        }
    }
    (row,) = switch_figures(results, "kinds")
    assert row["off"]["effect"] == "negligible" and row["flat"]["effect"] == "lower"
