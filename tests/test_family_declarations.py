"""A family is one declaration (attnviz.capture.families.family.Family): every declared family is complete, the
readers, families and kinds speak one vocabulary, and a family declared here, in this file alone, is
recognised, verified and surveyed once it is added."""

import pytest
import torch
import torch.nn.functional as F
from fixtures_attention import UserNet, randomise
from torch import nn

from attnviz.capture import capture, families
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


def test_every_family_verifies_on_its_fixture_as_the_record_it_declares():
    """UserNet holds one copy of each family (tests/fixtures_attention.py): each verifies, and as the record
    class its variant names."""
    model = randomise(UserNet(16))
    with torch.no_grad(), capture(model) as rec:
        model(torch.randn(1, 3, 8, 12, generator=torch.Generator().manual_seed(1)))
    declared = {variant.family: variant.record for family in families.FAMILIES for variant in family.variants}
    verified = {record.family: type(record) for record in families.family_records(rec).values()}
    assert verified == declared


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
    assert "declared CoordinateAttentionRecord" in item.reason
