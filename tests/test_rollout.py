"""The heads' mean and attention rollout (attnviz.analysis.rollout; Abnar & Zuidema, ACL 2020) against references
built here in float64 from the inputs of every `F.scaled_dot_product_attention` call, kept by a wrapper around it.

A tiny timm ViT (random weights, its q / k projections drawn wider so that rows are far from uniform; a CLS token,
with and without registers, on a non-square photo) and a one-module model whose attention is the identity or
uniform by construction (hand values).

Tolerances. The records' rows are float32 softmaxes of q · scale · kᵀ; the reference is the float64 softmax of
the same float32 inputs. With M = max |q · scale| · |k| (elementwise absolute values, as
`tolerances.energy_error_bound`) an energy is off by at most δ = γ_(d+1) M (the product of length d, and q · scale
rounded once), so an entry is off by at most a relative exp(2δ) − 1 + γ_N + 4u (`tolerances.softmax_entry_rtol`'s
form), and so is a mean of such entries (all positive). In the rollout each Ã_l = 0.5 A_l + 0.5 I, renormalised,
is off by at most twice that, relatively, entry by entry (the row sum moves by at most half of it), and a product of
non-negative matrices whose entries are each off by a relative η_l is off by at most Π(1 + η_l) − 1, relatively;
float64's own roundings add γ_(N+2) (u = 2^-53) a layer, on both sides.
"""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from sdpa_calls import KeptSdpa
from tolerances import UNIT_ROUNDOFF_32, gamma, softmax_row_sum_tolerance
from torch import nn

from attnviz.analysis.rollout import mean_row, mean_rows, rollout, rollout_map, token_layers
from attnviz.capture import capture

ISSUE_ATOL = 1e-6  # the task's bound for the heads' mean against the float64 reference
UNIT_ROUNDOFF_64 = 2.0**-53
PHOTO = (32, 48)  # a 4x6 grid of 8-pixel patches: not square, so a transposed grid would show


def given(call) -> dict:
    args, kwargs, _ = call
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
    return {**dict(zip(names, args)), **kwargs}


def reference_mean(call) -> torch.Tensor:
    """(B, N, N): the mean over heads of softmax(q kᵀ · scale + mask) in float64, from one call's own inputs."""
    values = given(call)
    query, key = values["query"].double(), values["key"].double()
    scale = values.get("scale") or 1 / math.sqrt(query.shape[-1])
    energy = query @ key.transpose(-1, -2) * scale
    mask = values.get("attn_mask")
    if mask is not None:
        energy = energy.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else energy + mask.double()
    return torch.softmax(energy, dim=-1).mean(dim=1)


def entry_rtol(call) -> float:
    """The relative bound on a float32 row entry (and on a mean of them) against the float64 one (module docstring)."""
    values = given(call)
    query, key = values["query"].double(), values["key"].double()
    scale = values.get("scale") or 1 / math.sqrt(query.shape[-1])
    magnitude = float(((query * scale).abs() @ key.abs().transpose(-1, -2)).max())
    delta = gamma(query.shape[-1] + 1) * magnitude
    return math.expm1(2 * delta) + gamma(key.shape[-2]) + 4 * UNIT_ROUNDOFF_32


def naive_rollout(means: list[torch.Tensor]) -> torch.Tensor:
    """R = Ã_L ··· Ã_1 with Ã = 0.5 A + 0.5 I, written out for (N, N) float64 matrices, first layer first."""
    result = torch.eye(means[0].shape[0], dtype=torch.float64)
    for mean in means:
        result = (0.5 * mean + 0.5 * torch.eye(mean.shape[0], dtype=torch.float64)) @ result
    return result


def vit(reg_tokens: int, depth: int = 3) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=PHOTO, patch_size=8, embed_dim=32, depth=depth, num_heads=4, num_classes=5, reg_tokens=reg_tokens
    ).eval()
    with torch.no_grad():  # wider q / k projections than timm's init: rows far from uniform
        for block in model.blocks:
            block.attn.qkv.weight[:64].normal_(0, 0.25)
    return model


def captured_vit(reg_tokens: int, monkeypatch):
    model = vit(reg_tokens)
    torch.manual_seed(1)
    x = torch.randn(2, 3, *PHOTO)
    hook = KeptSdpa(monkeypatch)
    with torch.no_grad(), capture(model) as rec:
        model(x)
    assert rec.skipped == [] and len(hook.calls) == 3
    return model, rec.records(), hook.calls


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_the_heads_mean_equals_the_mean_of_float64_softmax_rows_of_the_ops_inputs(reg_tokens, monkeypatch):
    model, records, calls = captured_vit(reg_tokens, monkeypatch)
    layers = token_layers(records, model)
    assert list(layers) == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    prefix, tokens = 1 + reg_tokens, 1 + reg_tokens + 24
    for layer, call in zip(layers.values(), calls):
        assert [r.head for r in layer] == [0, 1, 2, 3] and layer[0].prefix_keys == prefix
        exact, rtol = reference_mean(call), entry_rtol(call)
        for batch in range(2):
            mine = mean_rows(layer, batch=batch)
            assert mine.dtype == torch.float64 and mine.shape == (tokens, tokens)
            diff = (mine - exact[batch]).abs()
            assert bool((diff <= rtol * exact[batch]).all()), float((diff / exact[batch]).max())
            assert float(diff.max()) <= ISSUE_ATOL
            assert float((mine.sum(dim=1) - 1).abs().max()) <= softmax_row_sum_tolerance(tokens)
            # a row on its own (a matrix-vector product: another summation order), each within rtol of the reference
            for token in (0, prefix, tokens - 1):  # CLS, the first patch, the last patch
                assert bool(
                    ((mean_row(layer, token, batch) - exact[batch, token]).abs() <= rtol * exact[batch, token]).all()
                )
            some = mean_rows(layer, [prefix + 5, 0], batch)
            assert bool(((some - exact[batch, [prefix + 5, 0]]).abs() <= rtol * exact[batch, [prefix + 5, 0]]).all())
    assert float(exact.max(dim=-1).values.mean()) > 3 / tokens, "rows too close to uniform to test much"


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_rollout_equals_a_float64_product_of_half_attention_plus_half_identity(reg_tokens, monkeypatch):
    model, records, calls = captured_vit(reg_tokens, monkeypatch)
    layers = token_layers(records, model)
    prefix, tokens = 1 + reg_tokens, 1 + reg_tokens + 24
    per_layer = [2 * entry_rtol(call) + 2 * gamma(tokens + 2, UNIT_ROUNDOFF_64) for call in calls]
    rtol = math.prod(1 + eta for eta in per_layer) - 1
    for batch in range(2):
        exact = naive_rollout([reference_mean(call)[batch] for call in calls])
        mine = rollout(layers, batch=batch)
        diff = (mine - exact).abs()
        assert bool((diff <= rtol * exact).all()), float((diff / exact).max())
        assert float(diff.max()) <= ISSUE_ATOL
        sums = (mine.sum(dim=1) - 1).abs().max()
        assert float(sums) <= (2 * len(calls) + 1) * gamma(tokens + 1, UNIT_ROUNDOFF_64), float(sums)
        assert torch.equal(rollout(list(layers.values()), batch=batch), mine)  # a sequence of layers, too
        for token in (0, prefix + 7):  # the CLS map, and a patch's
            drawn = rollout_map(layers, token, batch)
            assert drawn.shape == (4, 6) and torch.equal(drawn, mine[token, prefix:].reshape(4, 6))
        # the first layer alone is Ã_1 itself
        alone = rollout([layers["blocks.0.attn"]], batch=batch)
        assert float((alone - naive_rollout([reference_mean(calls[0])[batch]])).abs().max()) <= ISSUE_ATOL


def test_layers_follow_the_models_module_order_and_refuse_incomplete_calls(monkeypatch):
    model, records, _ = captured_vit(0, monkeypatch)
    shuffled = dict(reversed(list(records.items())))
    assert list(token_layers(shuffled)) == ["blocks.2.attn", "blocks.1.attn", "blocks.0.attn"]  # as given
    by_model = token_layers(shuffled, model)
    assert list(by_model) == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    assert all(r is records[f"{name}:head{r.head}"] for name, layer in by_model.items() for r in layer)
    with pytest.raises(ValueError, match="not modules of the model"):
        token_layers(records, nn.Linear(1, 1))
    with pytest.raises(ValueError, match="not every head"):
        token_layers({k: v for k, v in records.items() if k != "blocks.1.attn:head2"})
    with pytest.raises(ValueError, match="not every head"):
        mean_row(token_layers(records)["blocks.0.attn"][:3], 0)


def test_above_the_cap_the_full_matrices_are_refused(monkeypatch):
    _, records, _ = captured_vit(0, monkeypatch)
    layers = token_layers(records)
    with pytest.raises(MemoryError, match="25 x 25 per layer; raise max_tokens"):
        rollout(layers, max_tokens=24)
    layer = layers["blocks.0.attn"]
    with pytest.raises(MemoryError, match="25 x 25; ask for fewer rows"):
        mean_rows(layer, max_tokens=24)
    assert mean_rows(layer, range(20), max_tokens=24).shape == (20, 25)  # 500 entries: under 24²
    with pytest.raises(IndexError):
        mean_row(layer, 25)
    # keys that are not the queries (the CLS key dropped): a row of the heads' mean still is one, a rollout is not
    cross = tuple(dataclasses.replace(record, prefix_key=None, prefix_names=()) for record in layer)
    assert mean_row(cross, 0).shape == (24,)
    with pytest.raises(ValueError, match="self-attention over the same tokens"):
        rollout([layers["blocks.1.attn"], cross])


class Tokens(nn.Module):
    """Patches cut by reshapes, one CLS token, then one attention module called once per entry of `modes`: the
    identity (a boolean mask that keeps each token's own key only) or uniform (q = 0: every energy is 0)."""

    def __init__(self, modes: tuple[str, ...], channels: int = 16, heads: int = 2, patch: int = 8):
        super().__init__()
        self.modes, self.patch = modes, patch
        self.embed = nn.Linear(3 * patch * patch, channels)
        self.cls = nn.Parameter(torch.randn(1, 1, channels))
        self.attention = Attention(channels, heads)

    def forward(self, photo: torch.Tensor) -> torch.Tensor:
        b, c, h, w, p = *photo.shape, self.patch
        patches = photo.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        tokens = torch.cat([self.cls.expand(b, -1, -1), self.embed(patches)], dim=1)
        for mode in self.modes:
            tokens = self.attention(tokens, mode)
        return tokens


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)

    def forward(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if mode == "identity":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.eye(n, dtype=torch.bool))
        else:
            out = F.scaled_dot_product_attention(torch.zeros_like(q), k, v)
        return x + out.transpose(1, 2).reshape(b, n, c)


@pytest.mark.parametrize(
    "modes, names, identity, uniform",
    [
        (("identity",), ["attention"], 1.0, 0.0),  # Ã = 0.5 I + 0.5 I = I
        (("uniform",), ["attention"], 0.5, 0.5),  # Ã = 0.5 J/N + 0.5 I
        (("uniform", "uniform"), ["attention", "attention#1"], 0.25, 0.75),  # (0.5 J/N + 0.5 I)² = 0.75 J/N + 0.25 I
    ],
)
def test_hand_values_of_identity_and_uniform_attention(modes, names, identity, uniform):
    torch.manual_seed(0)
    model = Tokens(modes).eval()
    with torch.no_grad(), capture(model) as rec:
        model(torch.randn(2, 3, 32, 56))  # 4x7 patches and a CLS: N = 29
    layers = token_layers(rec.records(), model)
    assert rec.skipped == [] and list(layers) == names
    tokens = 29
    hand = identity * torch.eye(tokens, dtype=torch.float64) + uniform / tokens
    # a uniform row is 1 / 29 rounded to float32 (one rounding, u); float64's roundings are far below
    tolerance = 2 * len(modes) * UNIT_ROUNDOFF_32
    for batch in range(2):
        mine = rollout(layers, batch=batch)
        assert float((mine - hand).abs().max()) <= tolerance
        cls_map = rollout_map(layers, 0, batch)
        assert cls_map.shape == (4, 7)
        assert float((cls_map - uniform / tokens).abs().max()) <= tolerance
        assert abs(float(cls_map.sum()) - uniform * 28 / tokens) <= 28 * tolerance  # the rest stays on CLS
        patch_map = rollout_map(layers, 1 + 9, batch).flatten()
        assert abs(float(patch_map[9]) - identity - uniform / tokens) <= tolerance


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_the_rollout_map_the_page_draws_is_the_float64_product_row_by_row(reg_tokens, monkeypatch):
    """`Rollout` (what the Position page draws, "rollout" after the layers): a patch's row and column of the naive
    float64 product, its share to the prefix tokens, CLS's row; made only from whole, alike layers."""
    from attnviz.analysis.rollout import Rollout, with_rollout

    model, records, calls = captured_vit(reg_tokens, monkeypatch)
    prefix, tokens = 1 + reg_tokens, 1 + reg_tokens + 24
    per_layer = [2 * entry_rtol(call) + 2 * gamma(tokens + 2, UNIT_ROUNDOFF_64) for call in calls]
    rtol = math.prod(1 + eta for eta in per_layer) - 1 + UNIT_ROUNDOFF_32  # and the map's float32 rounding
    drawn = with_rollout(records)
    assert list(drawn)[-1] == "rollout" and list(drawn)[:-1] == list(records)
    rolled = drawn["rollout"]
    assert isinstance(rolled, Rollout) and (rolled.height, rolled.width, rolled.baseline) == (4, 6, tokens)
    for batch in range(2):
        exact = naive_rollout([reference_mean(call)[batch] for call in calls])
        for patch in (0, 7, 23):
            row, column = rolled.row(patch, batch).double(), rolled.column(patch, batch).double()
            want_row, want_column = exact[prefix + patch, prefix:].reshape(4, 6), exact[prefix:, prefix + patch]
            assert bool(((row - want_row).abs() <= rtol * want_row).all())
            assert bool(((column.flatten() - want_column).abs() <= rtol * want_column).all())
            share = rolled.prefix_share(patch, batch).double()
            assert bool(((share - exact[prefix + patch, :prefix]).abs() <= rtol * exact[prefix + patch, :prefix]).all())
        cls = rolled.prefix_row(0, batch)
        assert bool(((cls - exact[0, prefix:].reshape(4, 6)).abs() <= rtol * exact[0, prefix:].reshape(4, 6)).all())
    # a layer missing a head is no layer: no rollout (rather than one over the layers left)
    assert "rollout" not in with_rollout({k: v for k, v in records.items() if k != "blocks.1.attn:head2"})
    one_layer = {k: v for k, v in records.items() if k.startswith("blocks.0.")}
    assert "rollout" not in with_rollout(one_layer)
