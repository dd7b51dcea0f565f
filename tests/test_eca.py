import math

import pytest
import torch
from timm.layers import EcaModule

from attnviz.capture import capture
from attnviz.modules.eca import (
    ECA,
    OFFICIAL_RELEASED_KERNELS,
    eca_formula_terms,
    eca_kernel_size,
    eca_kernel_size_nearest_odd,
    eca_kernel_size_ties_down,
    eca_kernel_size_timm,
)


def test_official_rounding_on_published_channel_counts():
    # values stated in the issue / computed by hand from t = int((log2 C + 1) / 2), odd-up
    assert [eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)] == [3, 5, 5, 5, 5, 7]


def test_nearest_odd_by_hand():
    # t = (log2 C + 1) / 2: C=8 -> 2.0 -> 3 (tie up), C=16 -> 2.5 -> 3, C=64 -> 3.5 -> 3, C=4096 -> 6.5 -> 7
    assert eca_kernel_size_nearest_odd(8) == 3
    assert eca_kernel_size_nearest_odd(16) == 3
    assert eca_kernel_size_nearest_odd(64) == 3
    assert eca_kernel_size_nearest_odd(4096) == 7
    # gamma=1, b=0: t = log2 C; C = 2^6 -> t = 6 -> 7 ; C = 2^5 -> 5
    assert eca_kernel_size_nearest_odd(64, gamma=1, b=0) == 7
    assert eca_kernel_size_nearest_odd(32, gamma=1, b=0) == 5


def test_the_code_rule_is_the_nearest_odd_with_ties_up_everywhere():
    # truncate-and-bump vs 2*floor(t/2)+1, for C = 1..4096 over a grid of gamma and b
    mismatches = [
        (c, gamma, b)
        for gamma in (0.5, 1, 1.5, 2, 2.5, 3, 4)
        for b in (0, 0.5, 1, 2, 3)
        for c in range(1, 4097)
        if eca_kernel_size(c, gamma, b) != eca_kernel_size_nearest_odd(c, gamma, b)
    ]
    assert mismatches == []


def test_ties_down_differs_only_at_even_integer_t():
    # gamma = 2, b = 1: t = (log2 C + 1) / 2 = 4 at C = 128 -> 3 down, 5 up; t = 2 at C = 8 -> 1 down, 3 up
    assert (eca_kernel_size_ties_down(128), eca_kernel_size(128)) == (3, 5)
    assert (eca_kernel_size_ties_down(8), eca_kernel_size(8)) == (1, 3)
    differ = [c for c in range(1, 4097) if eca_kernel_size_ties_down(c) != eca_kernel_size(c)]
    assert differ == [8, 128, 2048]  # t = 2, 4, 6: the only even integers t takes for C <= 4096
    with pytest.raises(ValueError):
        eca_kernel_size_nearest_odd(64, ties="sideways")


@pytest.mark.parametrize("channels", [1, 2, 3, 8, 16, 24, 64, 100, 512, 4096])
def test_rules_always_odd_and_timm_clamps(channels):
    for rule in (eca_kernel_size, eca_kernel_size_nearest_odd, eca_kernel_size_ties_down, eca_kernel_size_timm):
        assert rule(channels) % 2 == 1
    assert eca_kernel_size_timm(channels) == max(3, eca_kernel_size(channels))


@pytest.mark.parametrize("channels", [8, 16, 64, 256, 1000])
def test_timm_rule_matches_timm_itself(channels):
    assert EcaModule(channels).conv.kernel_size[0] == eca_kernel_size_timm(channels)


def test_official_released_lists_differ_from_formula_somewhere():
    # the released R50 checkpoint uses k=3 at C=256 and k=7 at C=2048; the formula gives 5 at 256
    r50 = dict(OFFICIAL_RELEASED_KERNELS["ECA-ResNet50"])
    assert r50 == {256: 3, 512: 5, 1024: 5, 2048: 7}
    assert eca_kernel_size(256) == 5 != r50[256]


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        eca_kernel_size(0)
    with pytest.raises(ValueError):
        ECA(kernel_size=4)
    with pytest.raises(ValueError):
        ECA()


@pytest.mark.parametrize("channels", [16, 64, 128, 2048])
def test_eca_adds_exactly_k_parameters(channels):
    layer = ECA(channels)
    assert sum(p.numel() for p in layer.parameters()) == eca_kernel_size(channels)


def test_eca_equals_explicit_formula(rng):
    x = torch.randn(2, 20, 5, 6, generator=rng)
    layer = ECA(kernel_size=5)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.randn(1, 1, 5, generator=rng))
    kernel = layer.conv.weight.detach().flatten()
    pooled = x.mean((2, 3))
    weights = torch.empty_like(pooled)
    for b in range(2):
        for c in range(20):
            acc = 0.0
            for j in range(5):  # cross-correlation with zero padding 2
                src = c + j - 2
                if 0 <= src < 20:
                    acc += kernel[j] * pooled[b, src]
            weights[b, c] = 1 / (1 + math.exp(-float(acc)))
    with torch.no_grad(), capture(layer) as rec:
        out = layer(x)
    torch.testing.assert_close(rec["ECA"].weights, weights)
    torch.testing.assert_close(out, x * weights[:, :, None, None])
    torch.testing.assert_close(rec["ECA"].kernel, kernel.detach())


def test_eca_matches_timm_with_same_kernel(rng):
    x = torch.randn(2, 64, 7, 7, generator=rng)
    ours, theirs = ECA(64), EcaModule(64)
    assert ours.kernel_size == theirs.conv.kernel_size[0] == 3
    theirs.conv.weight.data.copy_(ours.conv.weight.data)
    torch.testing.assert_close(ours(x), theirs(x))


def test_formula_terms_give_the_recorded_weight():
    torch.manual_seed(0)
    layer = ECA(kernel_size=5)
    x = torch.randn(1, 12, 4, 4)
    with torch.no_grad(), capture(layer) as rec:
        layer(x)
    record = rec["ECA"]
    for channel in (0, 1, 6, 11):  # both ends use the zero padding
        terms, total = eca_formula_terms(record.kernel, record.parts["pooled"][0], channel)
        assert len(terms) == 5
        assert torch.sigmoid(torch.tensor(total)) == pytest.approx(float(record.weights[0, channel]), abs=1e-6)
    assert [value for _, value in eca_formula_terms(record.kernel, record.parts["pooled"][0], 0)[0][:2]] == [0.0, 0.0]
