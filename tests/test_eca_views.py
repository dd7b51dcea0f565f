"""ECA's weight of one channel unrolled into its k neighbours (attnviz.analysis.views.eca_neighbourhoods), its
figure, and ECA-Net's kernel-size derivation in numbers (kernel_derivation), against independent references:
a loop over the channels with explicit zero padding, torch's Conv1d, and the weights an ECA layer recorded."""

import math

import numpy as np
import pytest
import torch
from tolerances import UNIT_ROUNDOFF_32, gamma

from attnviz.analysis.views import eca_neighbourhoods, kernel_derivation
from attnviz.capture import capture
from attnviz.modules.eca import ECA, eca_kernel_size, kernel_t
from attnviz.viz.figures import eca_neighbourhood_figure


def naive_terms(kernel: list[float], pooled: list[float], channel: int) -> list[tuple[int, float, float]]:
    """(neighbour channel, its average or 0 beyond the ends, the kernel's number) for each of the k terms."""
    half = len(kernel) // 2
    terms = []
    for j in range(len(kernel)):
        source = channel - half + j
        terms.append((source, pooled[source] if 0 <= source < len(pooled) else 0.0, kernel[j]))
    return terms


@pytest.mark.parametrize("k,channels", [(1, 4), (3, 16), (5, 9), (7, 40)])
def test_every_channels_neighbourhood_is_the_naive_convolutions(k, channels):
    generator = np.random.default_rng(k * 100 + channels)
    kernel, pooled, bias = generator.normal(size=k), generator.normal(size=channels), 0.25
    unrolled = eca_neighbourhoods(kernel, pooled, bias)
    for c in range(channels):
        terms = naive_terms(kernel.tolist(), pooled.tolist(), c)
        assert unrolled.sources[c].tolist() == [source for source, _, _ in terms]
        assert unrolled.values[c].tolist() == [value for _, value, _ in terms]  # exact: copies, or the zeros
        assert unrolled.padded[c].tolist() == [not 0 <= source < channels for source, _, _ in terms]
        total = math.fsum(value * weight for _, value, weight in terms) + bias
        # float64 sum of k + 1 terms against an exactly rounded one: gamma_(k+1) in double of the magnitudes
        magnitude = math.fsum(abs(value * weight) for _, value, weight in terms) + abs(bias)
        assert unrolled.sums[c] == pytest.approx(total, abs=gamma(k + 1, 2.0**-53) * magnitude + 1e-300)
        assert unrolled.weights[c] == pytest.approx(1 / (1 + math.exp(-total)), rel=1e-14)
    # torch's Conv1d (cross-correlation, zero padding (k-1)/2) in float64 gives the same sums
    conv = torch.nn.functional.conv1d(
        torch.tensor(pooled)[None, None],
        torch.tensor(kernel)[None, None],
        torch.tensor([bias], dtype=torch.float64),
        padding=k // 2,
    )[0, 0].numpy()
    np.testing.assert_allclose(unrolled.sums, conv, rtol=0, atol=1e-12)


def test_an_even_kernel_is_refused():
    with pytest.raises(ValueError):
        eca_neighbourhoods(np.ones(4), np.ones(8))


def test_sigma_of_the_sum_is_the_weight_the_layer_recorded():
    torch.manual_seed(0)
    layer = ECA(channels=256).eval()  # k = 5
    with torch.no_grad():
        layer.conv.weight.normal_(0, 0.5)
    x = torch.randn(2, 256, 6, 7) + torch.randn(2, 256, 1, 1) * 3  # channels of different averages
    with torch.no_grad(), capture(layer) as rec:
        layer(x)
    record = rec["ECA"]
    k = len(record.kernel)
    for batch in range(2):
        pooled = record.parts["pooled"][batch].numpy()
        unrolled = eca_neighbourhoods(record.kernel.numpy(), pooled, record.kernel_bias)
        recorded = record.weights[batch].double().numpy()
        # the layer's float32 sum of k products errs by at most gamma_k times their magnitudes; the sigmoid's
        # slope is at most 1/4; its float32 evaluation adds a few units in the last place of a value below 1
        magnitudes = np.abs(unrolled.products).sum(1)
        tolerance = 0.25 * gamma(k) * magnitudes + 4 * UNIT_ROUNDOFF_32
        assert np.all(np.abs(unrolled.weights - recorded) <= tolerance)
        assert np.ptp(recorded) > 0.5  # a test on weights that differ, not on a flat 0.5


def test_the_figure_shows_the_chosen_channels_terms_and_their_sum():
    generator = np.random.default_rng(3)
    kernel, pooled = generator.normal(size=5), generator.normal(size=64)
    unrolled = eca_neighbourhoods(kernel, pooled)
    for channel in (0, 1, 30, 63):  # the two ends read the padding
        fig = eca_neighbourhood_figure(unrolled, channel, "t")
        averages, kernel_bars, products, weights = fig.data
        terms = np.arange(channel - 2, channel + 3)
        assert list(kernel_bars.x) == list(products.x) == terms.tolist()
        np.testing.assert_array_equal(kernel_bars.y, kernel)
        for x, product in zip(products.x, products.y):
            expected = kernel[x - channel + 2] * (pooled[x] if 0 <= x < 64 else 0.0)
            assert product == pytest.approx(expected, rel=1e-15, abs=1e-300)
        shown = dict(zip(averages.x, averages.y))
        assert all(shown[x] == (pooled[x] if 0 <= x < 64 else 0.0) for x in terms)  # unsorted: y_c' at c'
        assert list(averages.x) == sorted(averages.x) and list(averages.x) == list(weights.x)
        weight = dict(zip(weights.x, weights.y))[channel]
        assert weight == pytest.approx(1 / (1 + math.exp(-products.y.sum())), rel=1e-12)
        assert f"{weight:.4f}" in fig.layout.annotations[3].text
        assert fig.layout.shapes[0].x0 == channel - 2.5 and fig.layout.shapes[0].x1 == channel + 2.5


@pytest.mark.parametrize("channels,gamma_,b", [(2048, 2, 1), (64, 2, 1), (512, 1.5, 0.5), (100, 3, 2)])
def test_the_kernel_derivation_inverts_the_exponential_mapping(channels, gamma_, b):
    steps = kernel_derivation(channels, gamma_, b, kernel_t, eca_kernel_size)
    assert steps.k == eca_kernel_size(channels, gamma_, b) and steps.k % 2 == 1
    assert steps.linear_channels == gamma_ * steps.k - b
    assert steps.linear_kernel * gamma_ - b == pytest.approx(channels, rel=1e-15)  # φ(k) = C, linearly
    assert steps.exponential_channels == 2.0 ** (gamma_ * steps.k - b)
    assert 2.0 ** (gamma_ * steps.t - b) == pytest.approx(channels, rel=1e-12)  # ψ before rounding inverts φ
    assert abs(steps.t - steps.k) <= 1  # |t|_odd: the nearest odd number
    assert steps.log2_channels == pytest.approx(math.log(channels) / math.log(2), rel=1e-15)
