"""attnviz.capture.families: user modules recognised by structure, read through hooks, verified by reconstruction."""

import math
import threading

import pytest
import torch
import torch.nn.functional as F
from fixtures_attention import (
    Blob,
    ChannelThing,
    ColumnSoftmaxBlob,
    Context,
    Coord,
    Cross,
    EcaLike,
    FancyAttention,
    GanSelfAttention,
    HalfPam,
    InvertedSqueeze,
    Nonlocal2d,
    NonlocalGaussian,
    NoResidualBlob,
    Recurrent,
    Squeeze,
    UserNet,
    randomise,
)
from tolerances import softmax_row_sum_tolerance
from torch import nn

from attnviz.capture import capture, families
from attnviz.capture.families.bench import UserPam, bench_family_capture, kept_bytes
from attnviz.capture.records import (
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    CrissCrossAttentionRecord,
    GlobalContextRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
)

EXPECTED = {  # path in UserNet -> (family, record type)
    "se": ("se", ChannelAttentionRecord),
    "eca": ("eca", ChannelAttentionRecord),
    "cbam.ChannelGate": ("cbam-channel", ChannelAttentionRecord),
    "cbam.SpatialGate": ("cbam-spatial", SpatialAttentionRecord),
    "coord": ("ca", CoordinateAttentionRecord),
    "context": ("gcnet", GlobalContextRecord),
    "nl": ("non-local", PositionAttentionRecord),
    "pam": ("pam", PositionAttentionRecord),
    "cam": ("cam", ChannelMapRecord),
    "cc.cca": ("criss-cross", CrissCrossAttentionRecord),
    "sagan": ("pam", PositionAttentionRecord),
}


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _run(module, x):
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
    return rec, out


def _only(rec):
    assert len(rec) == 1, (list(rec), families.unverified(rec))
    return next(iter(rec.values()))


def _projections(*layers_and_input):
    """The module's own float32 projections, computed outside any capture, then taken to float64: the naive
    references below do all their maths in float64 from these (no recorded tensor is used)."""
    *layers, x = layers_and_input
    with torch.no_grad():
        return [layer(x).double() for layer in layers]


@pytest.fixture(scope="module")
def user_net():
    torch.manual_seed(0)
    model = randomise(UserNet(16))
    x = torch.randn(2, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    rec, out = _run(model, x)
    return model, x, rec, out


# ----------------------------------------------------------------------------- recognition


def test_every_family_recognised_without_running(user_net):
    model = user_net[0]
    found = {f.path: f for f in families.find_attention(model)}
    assert {path: f.family for path, f in found.items()} == {path: fam for path, (fam, _) in EXPECTED.items()}
    assert all(f.reader == "structure" for f in found.values())
    assert found["cc.cca"].record is CrissCrossAttentionRecord
    assert found["coord"].record is CoordinateAttentionRecord
    assert found["nl"].candidates[0] == "non-local/embedded"
    lookalikes = families.unrecognised_attention(model)
    assert [(found.path, found.class_name) for found in lookalikes] == [("odd", "FancyAttention")]


def test_a_survey_is_kept_per_structure_and_redone_when_the_model_changes(monkeypatch):
    """Each capture attaches its readers anew, and a model is surveyed once per structure: what it finds must be
    what a fresh survey finds after an attribute is set or a module replaced; and a kept survey
    must not keep the model alive."""
    import gc
    import weakref

    from attnviz.capture.families import survey

    surveys = []
    original = survey._survey_now
    monkeypatch.setattr(survey, "_survey_now", lambda *args: surveys.append(1) or original(*args))

    def found(model):
        return [(f.path, f.family) for f in families.find_attention(model)]

    model = nn.Sequential(EcaLike(16), nn.ReLU())
    assert found(model) == found(model) == [("0", "eca")]
    assert len(surveys) == 1, "the second survey of an unchanged model was not the kept one"
    model[0].avg_pool.output_size = 3  # no longer a global pooling: no ECA
    assert found(model) == []
    model[0].avg_pool.output_size = 1
    assert found(model) == [("0", "eca")]
    model[0].conv = nn.Linear(3, 3)  # a child replaced
    assert found(model) == []
    assert len(surveys) == 4  # each change surveyed anew, the restored structure too (one kept survey a model)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None, "the survey kept the model alive"


def test_recognition_ignores_class_names():
    renamed = type("TotallyUnrelatedName", (Blob,), {})(16)
    assert families.recognise(renamed).name == "pam"
    assert families.recognise(type("SELayer", (nn.Module,), {})()) is None  # a name alone is not a family


def test_near_misses_are_listed_not_recognised():
    model = nn.Sequential(HalfPam(16), FancyAttention(16))
    assert families.find_attention(model) == []
    reasons = {found.path: found.reason for found in families.unrecognised_attention(model)}
    assert "query_conv" in reasons["0"] and "key_conv" in reasons["0"]
    assert "class name" in reasons["1"]


def test_own_and_adapted_modules_are_not_recorded_twice():
    import timm  # noqa: F401 - makes the timm adapters resolvable
    from timm.layers import EcaModule

    from attnviz.modules.danet import PositionAttention
    from attnviz.modules.eca import ECA

    model = nn.Sequential(ECA(16), EcaModule(16), PositionAttention(16), randomise(Squeeze(16)))
    readers = {f.path: f.reader for f in families.find_attention(model)}
    assert readers == {"0": "own", "1": "library", "2": "own", "3": "structure"}
    rec, _ = _run(model, torch.randn(1, 16, 6, 6))
    assert list(rec) == ["0", "1", "2", "3"]
    assert [rec[k].family for k in rec] == [None, None, None, "se"]


# ----------------------------------------------------------------------------- verification


def test_every_family_verified_to_1e_5(user_net):
    model, x, rec, _ = user_net
    assert families.unverified(rec) == {}
    assert list(rec) == [
        "se",
        "eca",
        "cbam.ChannelGate",
        "cbam.SpatialGate",
        "coord",
        "context",
        "nl",
        "pam",
        "cam",
        "cc.cca",
        "cc.cca#1",
        "sagan",
        "odd",
    ]
    # the look-alike of no family is found by what it computes (a gate on every element), not by structure
    assert rec["odd"].family is None and "per element" in rec["odd"].found_by.text()
    for name, record in rec.items():
        if name == "odd":
            continue
        family, record_type = EXPECTED[name.split("#")[0]]
        assert isinstance(record, record_type), name
        assert record.family == family and record.verified, name
        assert record.max_error <= 1e-5, (name, record.max_error)
    table = families.verification_table(rec)
    assert len(table) == 12 and all(row["verified"] for row in table)
    assert rec["cbam.ChannelGate"].kind == "flexible" and set(rec["cbam.ChannelGate"].parts) == {
        "avg_branch",
        "max_branch",
    }
    assert rec["coord"].kind == "ca" and rec["cbam.SpatialGate"].kind == "cbam-spatial"


def test_captured_forward_returns_what_the_plain_forward_returns(user_net):
    model, x, _, captured = user_net
    with torch.no_grad():
        plain = model(x)
    torch.testing.assert_close(captured, plain, rtol=0, atol=0)


def test_gate_weights_are_the_modules_own():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 7)
    se = randomise(Squeeze(16))
    rec, _ = _run(se, x)
    with torch.no_grad():
        expected = se.fc(x.mean((2, 3)))
    torch.testing.assert_close(_only(rec).weights, expected)
    eca = randomise(EcaLike(16))
    rec, _ = _run(eca, x)
    record = _only(rec)
    with torch.no_grad():
        expected = torch.sigmoid(eca.conv(x.mean((2, 3))[:, None]))[:, 0]
    torch.testing.assert_close(record.weights, expected)
    torch.testing.assert_close(record.kernel, eca.conv.weight.flatten())
    coord = randomise(Coord(16, 16))
    rec, out = _run(coord, x)
    record = _only(rec)
    torch.testing.assert_close(x * record.height_weights[..., None] * record.width_weights[:, :, None, :], out)


# ----------------------------------------------------------------------------- rows of S against naive references


def _naive_rows(query, key, softmax=True):
    energy = query.flatten(2).transpose(1, 2) @ key.flatten(2)  # (B, N, Nk) float64
    return torch.softmax(energy, -1) if softmax else energy / energy.shape[-1]


@pytest.mark.parametrize("cls", [Blob, GanSelfAttention])
def test_position_rows_equal_naive_softmax(cls):
    torch.manual_seed(0)
    module = randomise(cls(32))
    x = torch.randn(2, 32, 6, 9)
    rec, _ = _run(module, x)
    record = _only(rec)
    s = _naive_rows(*_projections(module.query_conv, module.key_conv, x))
    for batch in range(2):
        for i in (0, 17, 53):
            torch.testing.assert_close(record.row(i, batch).double().flatten(), s[batch, i], rtol=0, atol=1e-6)
        torch.testing.assert_close(record.column(11, batch).double().flatten(), s[batch, :, 11], rtol=0, atol=1e-6)
        torch.testing.assert_close(
            record.rows(torch.arange(54), batch).double().flatten(1), s[batch], rtol=0, atol=1e-6
        )
    assert record.alpha == pytest.approx(0.7)


def test_sagan_tuple_output_passes_through():
    torch.manual_seed(0)
    module = randomise(GanSelfAttention(16))
    x = torch.randn(1, 16, 4, 5)
    rec, (out, attention) = _run(module, x)
    assert _only(rec).verified and attention.shape == (1, 20, 20)
    with torch.no_grad():
        plain_out, plain_attention = module(x)
    torch.testing.assert_close(out, plain_out, rtol=0, atol=0)
    torch.testing.assert_close(attention, plain_attention, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["embedded", "dot"])
@pytest.mark.parametrize("sub_sample", [False, True])
def test_non_local_rows_equal_naive(mode, sub_sample):
    torch.manual_seed(0)
    module = randomise(Nonlocal2d(16, sub_sample=sub_sample, mode=mode))
    x = torch.randn(2, 16, 6, 8)
    rec, _ = _run(module, x)
    record = _only(rec)
    assert record.family == "non-local" and record.max_error <= 1e-5
    assert record.normalisation == ("softmax" if mode == "embedded" else "dot")
    grid = (3, 4) if sub_sample else (6, 8)
    assert record.key_grid == grid and record.num_keys == grid[0] * grid[1]
    s = _naive_rows(*_projections(module.theta, module.phi, x), softmax=mode == "embedded")
    for i in (0, 13, 47):
        row = record.row(i, 1)
        assert row.shape == grid
        torch.testing.assert_close(row.double().flatten(), s[1, i], rtol=0, atol=1e-6)
    torch.testing.assert_close(record.column(5, 1).double().flatten(), s[1, :, 5], rtol=0, atol=1e-6)
    energy, _, value = record.entry(13, 5, 1)
    assert value == pytest.approx(float(s[1, 13, 5]), abs=1e-6)
    if mode == "embedded":
        assert abs(float(record.row(13).sum()) - 1) <= softmax_row_sum_tolerance(record.num_keys)


def test_non_local_gaussian_form():
    torch.manual_seed(0)
    module = randomise(NonlocalGaussian(8))
    x = torch.randn(1, 8, 6, 6)
    rec, _ = _run(module, x)
    record = _only(rec)
    assert record.max_error <= 1e-5 and record.key_grid == (3, 3)
    with torch.no_grad():
        s = _naive_rows(x.double(), F.max_pool2d(x.double(), 2))
    torch.testing.assert_close(record.row(7).double().flatten(), s[0, 7], rtol=0, atol=1e-6)


def test_non_local_form_found_without_a_hint():
    torch.manual_seed(0)
    module = randomise(Nonlocal2d(16, mode="plain"))  # computes the dot form; its `mode` does not say "dot"
    rec, _ = _run(module, torch.randn(1, 16, 6, 6))
    assert _only(rec).normalisation == "dot"
    rec, _ = _run(module, torch.randn(1, 16, 6, 6))  # the second capture starts with the form that verified
    assert _only(rec).normalisation == "dot"


def _naive_cross_row(q, k, index):
    """float64 softmax over pixel `index`'s cross: its column without itself, then its row."""
    _, _, height, width = q.shape
    h, w = divmod(index, width)
    qi = q[0, :, h, w]
    column = [(g, w) for g in range(height) if g != h]
    row = [(h, v) for v in range(width)]
    energies = torch.stack([qi @ k[0, :, a, b] for a, b in column + row])
    weights = torch.softmax(energies, 0)
    out = torch.zeros(height, width, dtype=torch.float64)
    for (a, b), value in zip(column + row, weights):
        out[a, b] = value
    return out


def test_criss_cross_row_equals_naive_per_query():
    torch.manual_seed(0)
    module = randomise(Recurrent(16))
    x = torch.randn(1, 16, 5, 7)
    rec, _ = _run(module, x)
    assert list(rec) == ["cca", "cca#1"]  # the recurrence: one record per pass
    record = rec["cca"]
    assert record.verified and record.max_error <= 1e-5
    q, k = _projections(module.cca.query_conv, module.cca.key_conv, x)
    full = torch.stack([_naive_cross_row(q, k, i).flatten() for i in range(35)])
    for i in (0, 9, 34):
        row = record.row(i)
        torch.testing.assert_close(row.double(), _naive_cross_row(q, k, i), rtol=0, atol=1e-6)
        assert abs(float(row.sum()) - 1) <= softmax_row_sum_tolerance(record.baseline)
        assert int((row != 0).sum()) == 5 + 7 - 1
    torch.testing.assert_close(record.column(9).double().flatten(), full[:, 9], rtol=0, atol=1e-6)
    assert record.entry(0, 34)[2] == 0.0
    assert record.entry(9, 9)[2] == pytest.approx(float(full[9, 9]), abs=1e-6)


def test_gcnet_map_equals_naive_softmax_and_is_shared():
    torch.manual_seed(0)
    module = randomise(Context(16, fusion_types=("channel_mul",)))
    x = torch.randn(2, 16, 5, 6)
    rec, _ = _run(module, x)
    record = _only(rec)
    assert record.verified and record.max_error <= 1e-5 and record.shared_by_all_queries
    (logits,) = _projections(module.conv_mask, x)
    naive = torch.softmax(logits.flatten(1), -1).view(2, 5, 6)
    torch.testing.assert_close(record.map.double(), naive, rtol=0, atol=1e-6)
    torch.testing.assert_close(record.row(0, 1), record.row(29, 1))
    assert torch.all(record.column(7, 1) == record.map[1].flatten()[7])
    torch.testing.assert_close(
        record.context.double(), torch.einsum("bchw,bhw->bc", x.double(), naive), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("paper", [False, True])
def test_cam_map_and_form(paper):
    torch.manual_seed(0)
    module = randomise(ChannelThing(paper=paper))
    x = torch.randn(2, 8, 4, 4) * 0.3
    rec, _ = _run(module, x)
    record = _only(rec)
    assert record.form == ("paper" if paper else "official") and record.max_error <= 1e-5
    flat = x.double().flatten(2)
    energy = flat @ flat.transpose(1, 2)
    naive = torch.softmax(energy if paper else energy.amax(-1, keepdim=True) - energy, -1)
    torch.testing.assert_close(record.attention.double(), naive, rtol=0, atol=1e-6)
    assert record.beta == pytest.approx(0.7)


# ----------------------------------------------------------------------------- altered modules


@pytest.mark.parametrize(
    "make", [lambda: ColumnSoftmaxBlob(16), lambda: NoResidualBlob(16), lambda: InvertedSqueeze(16)]
)
def test_altered_module_is_recognised_but_not_verified(make):
    torch.manual_seed(0)
    module = randomise(make())
    assert families.find_attention(module)  # same attribute names: recognised
    rec, _ = _run(module, torch.randn(1, 16, 5, 6))
    assert len(rec) == 0  # nothing offered for drawing
    ((name, item),) = families.unverified(rec).items()
    assert item.max_error > 1e-4 and "not verified" in item.reason.text()
    assert "未通过核验" in item.reason.text("zh")  # said in the page's language
    assert item.record is None or item.record.verified is False
    (row,) = families.verification_table(rec)
    assert row["verified"] is False and row["name"] == name


def test_zero_gamma_is_verified_through_the_softmax_that_ran():
    torch.manual_seed(0)
    for module in (randomise(Blob(16), gamma=0.0), randomise(Cross(16), gamma=0.0)):
        rec, _ = _run(module, torch.randn(1, 16, 5, 6))
        assert _only(rec).verified, families.unverified(rec)


def test_zero_gamma_without_a_softmax_module_is_inconclusive():
    class FunctionalSoftmax(Blob):
        def __init__(self, channels):
            super().__init__(channels)
            del self.softmax

        def forward(self, x):
            b, c, h, w = x.shape
            s = F.softmax(self.query_conv(x).flatten(2).transpose(1, 2) @ self.key_conv(x).flatten(2), -1)
            return self.gamma * (self.value_conv(x).flatten(2) @ s.transpose(1, 2)).view(b, c, h, w) + x

    module = randomise(FunctionalSoftmax(16), gamma=0.0)
    rec, _ = _run(module, torch.randn(1, 16, 4, 4))
    assert len(rec) == 0
    assert "inconclusive" in families.unverified(rec)["FunctionalSoftmax"].reason.text()
    with torch.no_grad():
        module.gamma.fill_(0.3)
    rec, _ = _run(module, torch.randn(1, 16, 4, 4))
    assert _only(rec).verified


# ----------------------------------------------------------------------------- hooks and memory


def test_hooks_live_only_while_capturing(user_net):
    model, x = user_net[0], user_net[1]
    assert _hooks(model) == 0
    with capture(model):
        with capture(model):
            assert _hooks(model) > 0
        assert _hooks(model) > 0  # the outer capture still holds them
    assert _hooks(model) == 0
    with torch.no_grad():
        model(x)  # outside a capture: no recorder, no state


def test_capture_with_autograd_and_threads():
    torch.manual_seed(0)
    model = randomise(nn.Sequential(Blob(16), Squeeze(16)))
    x = torch.randn(1, 16, 4, 5, requires_grad=True)
    with capture(model) as rec:
        model(x).sum().backward()
    assert x.grad is not None and len(rec) == 2 and all(r.verified for r in rec.values())
    images = [torch.randn(1, 16, 4, 5, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    results, errors = {}, []

    def work(i):
        try:
            with torch.no_grad(), capture(model) as r:
                model(images[i])
            results[i] = r["0"].row(3)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        rec, _ = _run(model, images[i])
        torch.testing.assert_close(results[i], rec["0"].row(3))


def test_nothing_n_by_n_is_kept():
    torch.manual_seed(0)
    module = randomise(Blob(32))
    height, width = 32, 48
    num = height * width
    with torch.no_grad(), capture(module) as rec:
        module(torch.randn(1, 32, height, width))
    record = _only(rec)
    assert rec.scratch == {}  # every part dropped when the module returned
    tensors = [v for v in vars(record).values() if isinstance(v, torch.Tensor)]
    assert all(t.numel() < num * num / 100 for t in tensors)
    assert kept_bytes(record) == 4 * num * (4 + 4 + 1)  # Q, K (C' = 4) and the log-normaliser
    rec_nl, _ = _run(randomise(Nonlocal2d(16)), torch.randn(1, 16, 16, 16))
    assert kept_bytes(_only(rec_nl)) == 4 * (256 * 8 + 64 * 8 + 256)
    rec_cc, _ = _run(randomise(Cross(16)), torch.randn(1, 16, 16, 16))
    assert kept_bytes(_only(rec_cc)) == 4 * 256 * (2 + 2 + 1)


def test_float64_and_larger_case():
    torch.manual_seed(0)
    module = randomise(Blob(16)).double()
    rec, _ = _run(module, torch.randn(1, 16, 4, 4, dtype=torch.float64))
    assert _only(rec).max_error <= 1e-12
    report = bench_family_capture(sizes=((16, 32),), channels=32, repeats=1)
    (row,) = report["rows"]
    assert row["verified"] and row["max_error"] <= 1e-5
    assert row["kept_bytes"] == 4 * 512 * (4 + 4 + 1) and row["kept_bytes"] < row["s_matrix_bytes"] / 50
    assert isinstance(UserPam(16), nn.Module) and math.isfinite(row["ratio"])


def test_in_place_changes_inside_the_module():
    class InPlaceCoord(Coord):  # the same maths, with in-place sigmoids on the taps' outputs
        def forward(self, x):
            _, _, h, w = x.shape
            y = self.act(self.bn1(self.conv1(torch.cat([self.pool_h(x), self.pool_w(x).permute(0, 1, 3, 2)], 2))))
            x_h, x_w = torch.split(y, [h, w], dim=2)
            return x * self.conv_w(x_w.permute(0, 1, 3, 2)).sigmoid_() * self.conv_h(x_h).sigmoid_()

    class InPlaceQuery(Blob):  # scales its query in place after the conv: the kept reference is stale
        def forward(self, x):
            b, c, h, w = x.shape
            q = self.query_conv(x)
            q.mul_(2.0)
            s = torch.softmax(q.flatten(2).transpose(1, 2) @ self.key_conv(x).flatten(2), -1)
            return self.gamma * (self.value_conv(x).flatten(2) @ s.transpose(1, 2)).view(b, c, h, w) + x

    torch.manual_seed(0)
    x = torch.randn(1, 16, 5, 6)
    rec, _ = _run(randomise(InPlaceCoord(16, 16)), x)
    assert _only(rec).verified  # gate taps are copied when read
    rec, _ = _run(randomise(InPlaceQuery(16)), x)
    assert len(rec) == 0 and "in place" in families.unverified(rec)["InPlaceQuery"].reason.text()


# ----------------------------------------------------------------------------- the upstream copies' own quirks


def _keep_outputs(*layers):
    """Independent forward hooks (not attnviz's): every output of each layer, detached, in call order."""
    kept = {layer: [] for layer in layers}
    handles = [layer.register_forward_hook(lambda m, i, o: kept[m].append(o.detach().clone())) for layer in layers]
    return kept, handles


def test_alexhex7_gaussian_with_one_pool_in_g_and_as_phi_is_verified_on_the_pooled_grid():
    from fixtures_attention import NonlocalGaussianSharedPool

    torch.manual_seed(0)
    module = randomise(NonlocalGaussianSharedPool(8)).eval()
    assert module.g[1] is module.phi  # the upstream file's one MaxPool object
    x = torch.randn(2, 8, 6, 8)
    rec, out = _run(module, x)
    record = _only(rec)
    assert record.verified and record.max_error <= 1e-5 and record.key_grid == (3, 4)
    with torch.no_grad():
        s = _naive_rows(x.double(), F.max_pool2d(x.double(), 2))  # theta = x, phi = pool(x), float64 softmax
    for i in (0, 17, 47):
        torch.testing.assert_close(record.row(i, 1).double().flatten(), s[1, i], rtol=0, atol=1e-6)
    (row,) = families.verification_table(rec)
    assert (row["family"], row["form"]) == ("non-local", "gaussian")
    with torch.no_grad():
        torch.testing.assert_close(out, module(x), rtol=0, atol=0)


@pytest.mark.parametrize("mode,form", [("embedded", "embedded"), ("dot", "dot")])
def test_the_verification_table_names_the_non_local_form_that_verified(mode, form):
    module = randomise(Nonlocal2d(16, mode=mode))
    rec, _ = _run(module, torch.randn(1, 16, 6, 6))
    (row,) = families.verification_table(rec)
    assert row["verified"] and (row["family"], row["form"]) == ("non-local", form)


def test_external_attention_eca_with_a_pool_named_gap_and_a_biased_conv():
    from fixtures_attention import ExternalEca

    from attnviz.modules.eca import eca_formula_terms

    torch.manual_seed(0)
    module = randomise(ExternalEca(5)).eval()
    assert module.conv.bias is not None
    x = torch.randn(2, 12, 5, 6)
    kept, handles = _keep_outputs(module.sigmoid)
    rec, out = _run(module, x)
    for handle in handles:
        handle.remove()
    record = _only(rec)
    assert record.family == "eca" and record.verified and record.kind == "eca"
    # the weights are the module's own sigmoid output, exactly
    torch.testing.assert_close(record.weights, kept[module.sigmoid][0].reshape(2, 12), rtol=0, atol=0)
    assert record.kernel_bias == pytest.approx(float(module.conv.bias.detach()))
    terms, total = eca_formula_terms(record.kernel, x[1].double().mean((1, 2)), 4, record.kernel_bias)
    assert 1 / (1 + math.exp(-total)) == pytest.approx(float(record.weights[1, 4]), rel=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(out, module(x), rtol=0, atol=0)


def test_external_attention_cbam_gates_that_return_weights_are_read_where_the_block_multiplies():
    from fixtures_attention import ExternalCbamBlock

    torch.manual_seed(0)
    block = randomise(ExternalCbamBlock(16, reduction=4, kernel_size=7)).eval()
    x = torch.randn(2, 16, 6, 7)
    kept, handles = _keep_outputs(block.ca, block.sa)
    with torch.no_grad(), capture(block, keep_features=True) as rec:
        out = block(x)
    for handle in handles:
        handle.remove()
    assert families.unverified(rec) == {}
    assert set(rec) == {"ca", "sa"}
    channel, spatial = rec["ca"], rec["sa"]
    assert isinstance(channel, ChannelAttentionRecord) and channel.kind == "flexible"
    assert isinstance(spatial, SpatialAttentionRecord) and spatial.kind == "cbam-spatial"
    torch.testing.assert_close(channel.weights, kept[block.ca][0].reshape(2, 16), rtol=0, atol=0)
    torch.testing.assert_close(spatial.map, kept[block.sa][0][:, 0], rtol=0, atol=0)
    torch.testing.assert_close(channel.features, x, rtol=0, atol=0)  # what the block multiplies
    with torch.no_grad():  # the branches: the MLP on each pool, independently
        avg = block.ca.se(F.adaptive_avg_pool2d(x, 1)).reshape(2, 16)
        mx = block.ca.se(F.adaptive_max_pool2d(x, 1)).reshape(2, 16)
    torch.testing.assert_close(channel.parts["avg_branch"], avg, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(channel.parts["max_branch"], mx, rtol=1e-6, atol=1e-6)
    table = {row["name"]: row for row in families.verification_table(rec)}
    assert table["ca"]["form"] == "weights" and table["sa"]["form"] == "weights"
    with torch.no_grad():
        torch.testing.assert_close(out, block(x), rtol=0, atol=0)
