"""A family is one declaration (attnviz.capture.families.family.Family): every declared family is complete and
every one of its variants verifies on a module that computes it, the families are found in their files and tried
in a fixed order, the readers, families and kinds speak one vocabulary, and a family declared here, in this file
alone, is recognised, verified and surveyed once it is added."""

import importlib

import pytest
import torch
import torch.nn.functional as F
from fixtures_attention import (
    Blob,
    ChanGate,
    ChannelThing,
    Context,
    Coord,
    Cross,
    EcaLike,
    ExternalChannelAttention,
    ExternalSpatialAttention,
    Nonlocal2d,
    NonlocalGaussian,
    SpatGate,
    Squeeze,
    UserNet,
    randomise,
)
from torch import nn

from attnviz.capture import capture, families
from attnviz.capture.families import catalogue
from attnviz.capture.families.structure import child_of
from attnviz.capture.families.verify import Call, Outcome, check_input_shape, for_checks, gate_error
from attnviz.capture.readers import READERS
from attnviz.capture.records import CoordinateAttentionRecord, Provenance, SpatialAttentionRecord
from attnviz.kinds import AttentionKind

# ----------------------------------------------------------------------------- every declaration is complete


def test_every_family_and_variant_is_complete():
    labels = [variant.label for family in families.FAMILIES for variant in family.variants]
    assert len(set(labels)) == len(labels), labels  # no (family, form) claimed twice
    assert len({family.name for family in families.FAMILIES}) == len(families.FAMILIES)
    for family in families.FAMILIES:
        assert families.problems(family) == [], family.name
        assert family.variants[0].family == family.name
        for variant in family.variants:
            assert issubclass(variant.record, Provenance) and callable(variant.build), variant.label
    # tells give a near miss away; only a family recognised under any names has none
    assert [family.name for family in families.FAMILIES if not family.tells] == ["eca"]


# every (family, form) and a fixture module that computes exactly that form (tests/fixtures_attention.py)
FIXTURES = {
    "pam/softmax": lambda: Blob(16),
    "criss-cross/softmax": lambda: Cross(16),
    "cam/official": lambda: ChannelThing(),
    "cam/paper": lambda: ChannelThing(paper=True),
    "non-local/embedded": lambda: Nonlocal2d(16),
    "non-local/dot": lambda: Nonlocal2d(16, mode="dot"),
    "non-local/gaussian": lambda: NonlocalGaussian(16),
    "gcnet/att": lambda: Context(16, fusion_types=("channel_add", "channel_mul")),
    "eca": lambda: EcaLike(16),
    "se": lambda: Squeeze(16),
    "cbam-channel": lambda: ChanGate(16),
    "cbam-channel/weights": lambda: ExternalChannelAttention(16),
    "cbam-spatial": lambda: SpatGate(),
    "cbam-spatial/weights": lambda: ExternalSpatialAttention(),
    "ca": lambda: Coord(16, 16),
}
DECLARED = [(family, variant) for family in families.FAMILIES for variant in family.variants]


def test_every_declared_variant_has_a_fixture_and_no_fixture_is_left_over():
    assert sorted(FIXTURES) == sorted(variant.label for _, variant in DECLARED)


@pytest.mark.parametrize("family, variant", DECLARED, ids=[variant.label for _, variant in DECLARED])
def test_every_variant_verifies_on_its_fixture_as_its_form_and_record(family, variant):
    """Each (family, form) is recognised as its family on a module that computes that form, and verifies as that
    form and as the record class it declares: the second form of a family is checked as much as the first."""
    module = randomise(FIXTURES[variant.label]())
    assert families.recognise(module) is family
    x = 0.5 * torch.randn(2, 16, 6, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), capture(module) as rec:
        module(x)
    assert families.unverified(rec) == {}
    (record,) = families.family_records(rec).values()
    assert (record.family, record.verified_form, type(record)) == (variant.family, variant.form, variant.record)
    assert record.verified and record.max_error <= families.TOLERANCE


def test_recognition_tries_the_families_in_the_declared_order():
    """The order matters where structures could overlap: TRIED_FIRST's modules, in that order (cbam.py's two
    gates in the order it exports them); a module it does not name would come after them."""
    assert catalogue.TRIED_FIRST == ("pam", "cam", "non_local", "gcnet", "eca", "se", "cbam", "ca")
    assert [family.name for family in families.FAMILIES] == [
        "pam",
        "cam",
        "non-local",
        "gcnet",
        "eca",
        "se",
        "cbam-channel",
        "cbam-spatial",
        "ca",
    ]


def _declaring(name: str) -> str:
    return (
        "from attnviz.capture.families import Family, Variant\n"
        "from attnviz.capture.records import SpatialAttentionRecord\n"
        f"VARIANT = Variant({name!r}, '', print, SpatialAttentionRecord)\n"
        f"FAMILY = Family({name!r}, 'a title', bool, list, (VARIANT,), 'what it keeps', ())\n"
    )


def test_a_file_in_the_package_is_a_family_listed_after_those_named_first(tmp_path, monkeypatch):
    package = tmp_path / "more_families"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("zeta", "alpha", "beta"):
        (package / f"{name}.py").write_text(_declaring(name))
    monkeypatch.syspath_prepend(tmp_path)
    found = catalogue.declared_families(importlib.import_module("more_families"), ("beta",))
    assert [family.name for family in found] == ["beta", "alpha", "zeta"]
    with pytest.raises(LookupError, match="gamma"):
        catalogue.declared_families(importlib.import_module("more_families"), ("gamma",))
    (package / "helpers.py").write_text("TOLERANCE = 1e-4\n")
    with pytest.raises(TypeError, match="more_families.helpers exports no FAMILY"):
        catalogue.declared_families(importlib.import_module("more_families"))


@pytest.mark.parametrize(
    "broken, complaint",
    [
        (dict(tells=("gate_conv",)), "two or more attribute names"),
        (dict(variants=()), "no variant"),
        (dict(name="other"), "first variant"),
    ],
)
def test_an_incomplete_declaration_is_refused(broken, complaint):
    declaration = {**vars(TOY), **broken}
    with pytest.raises(ValueError, match=complaint):
        families.add_family(families.Family(**declaration))


def test_a_record_named_by_a_string_or_a_family_twice_is_refused():
    by_name = families.Variant("toy-gate", "", build_toy, "SpatialAttentionRecord")
    assert any(
        "not a record class" in p for p in families.problems(families.Family(**{**vars(TOY), "variants": (by_name,)}))
    )
    with pytest.raises(ValueError, match="already"):
        families.add_family(families.FAMILIES[0])


# ----------------------------------------------------------------------------- one vocabulary


def test_findings_name_their_reader_as_the_readers_do():
    import timm  # noqa: F401 - makes the timm adapters resolvable
    from timm.layers import EcaModule

    from attnviz.modules.eca import ECA

    model = nn.Sequential(ECA(16), EcaModule(16), randomise(UserNet(16)))
    readers = {finding.reader for finding in families.find_attention(model)}
    assert readers == {"own", "library", "structure"} <= {reader.name for reader in READERS}


def test_a_family_that_names_a_kind_records_that_kind():
    model = randomise(UserNet(16))
    with torch.no_grad(), capture(model) as rec:
        model(torch.randn(1, 3, 8, 12))
    kinds = {str(kind) for kind in AttentionKind}
    named = {name: r for name, r in families.family_records(rec).items() if r.family in kinds}
    assert {r.family for r in named.values()} >= {"ca", "se", "eca", "pam", "cam", "cbam-spatial"}
    assert all(r.kind == r.family for r in named.values()), {n: (r.family, r.kind) for n, r in named.items()}
    assert rec["coord"].family == AttentionKind.CA


# ----------------------------------------------------------------------------- a toy family, declared here alone


class ToyGate(nn.Module):
    """y = x * sigmoid(gate_conv(x)): one spatial map from a 1x1 convolution to one channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate_conv = nn.Conv2d(channels, 1, 1)
        self.squash = nn.Sigmoid()

    def forward(self, x):
        return x * self.squash(self.gate_conv(x))


def match_toy(module: nn.Module) -> bool:
    conv = child_of(module, "gate_conv", nn.Conv2d)
    return conv is not None and conv.out_channels == 1 and child_of(module, "squash", nn.Sigmoid) is not None


def build_toy(call: Call, form: str) -> Outcome:
    logits = call.output("logits")
    check_input_shape(call, logits)
    weights = torch.sigmoid(for_checks(logits.detach()))  # (B, 1, H, W)
    return Outcome(SpatialAttentionRecord("toy-gate", weights[:, 0]), gate_error(call, weights))


TOY = families.Family(
    "toy-gate",
    "a toy spatial gate",
    match_toy,
    lambda m: [families.Tap("logits", m.gate_conv, copy=True)],
    (families.Variant("toy-gate", "", build_toy, SpatialAttentionRecord),),
    "the spatial map (B, H, W)",
    tells=("gate_conv", "squash"),
)


@pytest.fixture
def toy_family():
    families.add_family(TOY)
    yield TOY
    families.FAMILIES.remove(TOY)


def test_a_toy_family_is_recognised_verified_and_surveyed(toy_family):
    torch.manual_seed(0)
    gate = ToyGate(4)
    near_miss = ToyGate(4)
    near_miss.gate_conv = nn.Conv2d(4, 2, 1)  # its tells, not its structure
    model = nn.Sequential(gate, near_miss)

    found = families.find_attention(model)
    assert [(f.path, f.family, f.reader, f.record) for f in found] == [
        ("0", "toy-gate", "structure", SpatialAttentionRecord)
    ]
    lookalikes = families.unrecognised_attention(model)
    assert [item.path for item in lookalikes] == ["1"] and "gate_conv, squash" in lookalikes[0].reason

    x = torch.randn(2, 4, 5, 6)
    with torch.no_grad(), capture(model) as rec:
        out = gate(x)
    record = rec["0"]
    assert record.family == "toy-gate" and record.verified and record.reader == "structure"
    # float32, the same ops as the module: the map and the rebuilt output agree to a few ulps of values <= ~5
    assert record.max_error <= 1e-6
    reference = torch.sigmoid(F.conv2d(x, gate.gate_conv.weight, gate.gate_conv.bias))[:, 0]  # independent
    torch.testing.assert_close(record.map, reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, x * reference[:, None], rtol=0, atol=1e-6)


def test_without_its_declaration_the_toy_is_no_family():
    assert families.recognise(ToyGate(4)) is None


def test_a_builder_whose_record_is_not_the_declared_class_is_not_verified():
    wrong = families.Family(
        **{
            **vars(TOY),
            "name": "toy-wrong",
            "variants": (families.Variant("toy-wrong", "", build_toy, CoordinateAttentionRecord),),
        }
    )
    families.add_family(wrong)
    try:
        gate = ToyGate(4)
        with torch.no_grad(), capture(gate) as rec:
            gate(torch.randn(1, 4, 3, 3))
    finally:
        families.FAMILIES.remove(wrong)
    assert len(rec) == 0
    (item,) = families.unverified(rec).values()
    assert "declared CoordinateAttentionRecord" in item.reason.text()
