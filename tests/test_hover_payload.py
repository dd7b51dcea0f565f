"""attnviz.analysis.hover: what the page gets is the record's own numbers, and the geometry is
attnviz.analysis.geometry's."""

import base64

import numpy as np
import pytest
import torch

from attnviz.analysis import geometry
from attnviz.analysis.hover import channel_payload, grid_tables, hover_payload
from attnviz.capture.records import (
    ChannelMapRecord,
    CrissCrossAttentionRecord,
    GlobalContextRecord,
    PositionAttentionRecord,
)


def _floats(text, dtype=np.float32):
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<"))


def _pam(n_h=5, n_w=7, channels=3, keys=None, normalisation="softmax"):
    generator = torch.Generator().manual_seed(1)
    key_h, key_w = keys or (n_h, n_w)
    query = torch.randn(1, n_h * n_w, channels, generator=generator)
    key = torch.randn(1, key_h * key_w, channels, generator=generator)
    lse = torch.logsumexp(query[0] @ key[0].T, 1)[None]
    return PositionAttentionRecord(
        "pam",
        query,
        key,
        lse,
        n_h,
        n_w,
        0.1,
        key_height=keys and key_h,
        key_width=keys and key_w,
        normalisation=normalisation,
    )


def test_a_row_rebuilt_from_the_payload_is_the_records_row():
    record = _pam(keys=(3, 4))
    data = hover_payload(record, (37, 50)).data
    q = _floats(data["query"]).reshape(-1, data["channels"])
    k = _floats(data["key"]).reshape(-1, data["channels"])
    lse = _floats(data["lse"])
    i = 17
    row = np.exp(k.astype(np.float64) @ q[i] - lse[i])  # what the page's script computes
    np.testing.assert_allclose(row.reshape(3, 4), record.row(i).numpy(), rtol=1e-5)
    assert data["form"] == "softmax" and data["baseline"] == 12
    assert (data["key_grid"]["rows"], data["key_grid"]["cols"]) == (3, 4)


def test_the_grid_tables_are_the_geometry_of_the_library():
    tables = grid_tables((37, 50), (5, 7))
    for y in range(37):
        for x in range(50):
            assert (tables["row_of_y"][y], tables["col_of_x"][x]) == geometry.cell_of_pixel(x, y, (37, 50), (5, 7))
    for index in range(35):
        row, col = divmod(index, 7)
        assert (tables["centre_x"][col], tables["centre_y"][row]) == geometry.cell_centre(index, (37, 50), (5, 7))


def test_forms_and_baselines_of_every_spatial_record():
    cross = CrissCrossAttentionRecord("cc", torch.zeros(1, 12, 2), torch.zeros(1, 12, 2), torch.zeros(1, 12), 3, 4, 0.0)
    shared = GlobalContextRecord("gc", torch.softmax(torch.randn(1, 12), 1).view(1, 3, 4))
    assert hover_payload(cross, (30, 40)).data["form"] == "cross" and cross.baseline == 3 + 4 - 1
    data = hover_payload(shared, (30, 40)).data
    assert data["form"] == "shared" and shared.baseline == 12
    np.testing.assert_array_equal(_floats(data["map"]), shared.map[0].flatten().numpy())
    assert hover_payload(_pam(normalisation="dot"), (30, 40)).data["form"] == "dot"


def test_too_big_a_record_is_not_sent_and_says_why():
    record = _pam()
    payload = hover_payload(record, (30, 40), max_bytes=100)
    assert payload.data is None and payload.num_bytes == 4 * (35 * 3 * 2 + 35)
    assert "over the" in payload.reason.text() and "超过" in payload.reason.text("zh")


@pytest.mark.parametrize("form", ["official", "paper"])
def test_the_channel_payload_writes_x_as_exp_of_its_argument_minus_the_row_normaliser(form):
    features = torch.randn(1, 6, 4, 5, generator=torch.Generator().manual_seed(2))
    flat = features[0].flatten(1).double()
    energy = flat @ flat.T
    argument = energy.max(1, keepdim=True).values - energy if form == "official" else energy
    attention = torch.softmax(argument, 1).float()[None]
    record = ChannelMapRecord("cam", attention, form, 0.1, features=features)
    data = channel_payload(record)
    a = _floats(data["argument"], np.float64).reshape(6, 6)
    lse = _floats(data["lse"], np.float64)
    np.testing.assert_allclose(np.exp(a - lse[:, None]), attention[0].numpy(), rtol=1e-6)
    for c in range(6):
        assert (data["most_similar"][c], data["least_similar"][c]) == record.similar_channels(c)


def test_every_spatial_record_answers_the_one_interface():
    """PositionAttentionRecord (softmax and dot, sub-sampled), the cross and GCNet's shared map: the same
    questions, each answered by the record (the baseline is the keys a uniform row spreads over)."""
    from attnviz.capture.records import SpatialMap

    sub_sampled = _pam(3, 4, keys=(2, 3))
    cross = CrissCrossAttentionRecord("cc", torch.randn(1, 12, 2), torch.randn(1, 12, 2), torch.zeros(1, 12), 3, 4, 0.0)
    shared = GlobalContextRecord("gc", torch.softmax(torch.randn(1, 12), 1).view(1, 3, 4))
    for record, keys, baseline, normalisation, alpha in (
        (_pam(3, 4), 12, 12, "softmax", True),
        (sub_sampled, 6, 6, "softmax", True),
        (_pam(3, 4, normalisation="dot"), 12, 12, "dot", True),
        (cross, 12, 3 + 4 - 1, "softmax", True),
        (shared, 12, 12, "softmax", False),
    ):
        assert isinstance(record, SpatialMap)
        assert record.num_keys == keys and record.baseline == baseline and record.normalisation == normalisation
        assert (record.alpha is not None) == alpha
        assert record.row(5).numel() == record.key_grid[0] * record.key_grid[1] == keys
    assert shared.shared_by_all_queries and not cross.shared_by_all_queries and not sub_sampled.shared_by_all_queries
