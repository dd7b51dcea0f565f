"""XCiT's cross-covariance attention read as a d x d channel map per head (attnviz issue 32).

XCiT (El-Nouby et al., "XCiT: Cross-Covariance Image Transformers", NeurIPS 2021) attends over channels: per head,
X = softmax(τ q̂ k̂ᵀ) with q̂, k̂ (d, N) the head's queries and keys over the N tokens scaled to unit length, τ a
learned temperature per head, and out = X v. The dataflow reader records each head as a `CrossCovarianceRecord`
(a `ChannelMapRecord`, drawn as DANet's X), from timm's explicit path (softmax of the product times τ) and from its
fused one (`F.scaled_dot_product_attention` on q̂ · τ, k̂, v with scale 1). These tests rebuild q and k from the
module's own qkv weights and its input (kept by a forward pre-hook) in float64, check every recorded map against
softmax(τ q̂ k̂ᵀ) built from them, the rows' sums, the head and temperature, and that the logits do not change.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from tolerances import UNIT_ROUNDOFF_32, softmax_row_sum_tolerance
from torch import nn

from attnviz.analysis.forward import record_type
from attnviz.analysis.hover import channel_payload
from attnviz.capture import capture
from attnviz.capture.records import ChannelMapRecord, CrossCovarianceRecord, TokenAttentionRecord
from attnviz.i18n import translate

FLOAT64_ATOL = 1e-5  # issue 32's bound for a recorded entry against a float64 softmax built from the module's q, k
PHOTO = (48, 64)  # a 3x4 patch grid at stride 16: N = 12 tokens, d = 32 channels per head (N != d)
TEMPERATURES = (0.5, 1.0, 3.0, 8.0)  # one per head, set so that the heads differ and some rows are peaked


def xcit(fused: bool) -> nn.Module:
    """A tiny random XCiT (2 XCA blocks, 1 class-attention block, 4 heads of 32 channels), its XCA modules on
    timm's explicit or fused path, with a different temperature per head; the class attention on its fused path
    (timm's default, whatever TIMM_FUSED_ATTN says here: its explicit softmax is listed, not drawn)."""
    import timm
    from timm.models.cait import ClassAttn
    from timm.models.xcit import XCA

    torch.manual_seed(0)
    model = timm.create_model(
        "xcit_nano_12_p16_224", pretrained=False, img_size=64, depth=2, cls_attn_layers=1, num_classes=10
    ).eval()
    for module in model.modules():
        if isinstance(module, XCA):
            module.fused_attn = fused
            with torch.no_grad():
                module.temperature.copy_(torch.tensor(TEMPERATURES).view(-1, 1, 1))
        elif isinstance(module, ClassAttn):
            module.fused_attn = True
    return model


@torch.no_grad()
def reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """softmax(τ q̂ k̂ᵀ) in float64 from the XCA module's own qkv weights and its input x (B, N, C):
    (B, heads, d, d), rows query channels, columns key channels."""
    b, n, c = x.shape
    heads = module.num_heads
    bias = None if module.qkv.bias is None else module.qkv.bias.double()
    qkv = F.linear(x.double(), module.qkv.weight.double(), bias).reshape(b, n, 3, heads, c // heads)
    q, k, _ = qkv.permute(2, 0, 3, 4, 1)  # (B, heads, d, N) each
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    temperature = module.temperature.detach().double()  # (heads, 1, 1)
    return torch.softmax(temperature * (q @ k.transpose(-1, -2)), dim=-1)


def run(model: nn.Module, x: torch.Tensor, monkeypatch):
    """(plain logits, logits with capture, records, skipped, each XCA module's input, SDPA calls seen)."""
    from timm.models.xcit import XCA

    inputs = {}
    hooks = [
        m.register_forward_pre_hook(lambda m, args, name=name: inputs.__setitem__(name, args[0].detach().clone()))
        for name, m in model.named_modules()
        if isinstance(m, XCA)
    ]
    calls = []
    original = F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counted)
    with torch.no_grad():
        plain = model(x)
        with capture(model) as rec:
            logits = model(x)
    for hook in hooks:
        hook.remove()
    return plain, logits, rec.records(), rec.skipped, inputs, calls


@pytest.mark.parametrize("fused", [False, True], ids=["explicit", "fused"])
def test_every_channel_map_equals_a_float64_softmax_of_the_modules_q_k_and_the_logits_do_not_change(fused, monkeypatch):
    model = xcit(fused)
    torch.manual_seed(1)
    x = torch.randn(2, 3, *PHOTO)
    plain, logits, records, skipped, inputs, calls = run(model, x, monkeypatch)
    assert torch.equal(logits, plain), "capture changed the logits"
    assert skipped == [], skipped
    # the class-attention block's SDPA always; the two XCA blocks' too on the fused path (it ran while capturing)
    assert len(calls) == 2 * (1 + 2 * fused)
    maps = {key: r for key, r in records.items() if isinstance(r, CrossCovarianceRecord)}
    heads, size = len(TEMPERATURES), 32
    assert list(maps) == [f"blocks.{block}.attn:head{head}" for block in range(2) for head in range(heads)]
    tokens = (PHOTO[0] // 16) * (PHOTO[1] // 16)
    for key, record in maps.items():
        module_name, head = key.split(":head")[0], int(key.split(":head")[1])
        exact = reference(model.get_submodule(module_name), inputs[module_name])[:, head]
        assert isinstance(record, ChannelMapRecord) and record.attention.shape == (2, size, size)
        assert (record.head, record.heads, record.normalised, record.form) == (head, heads, True, "paper")
        assert record.reader == "dataflow" and record.features is None and math.isnan(record.beta)
        assert record.max_error is not None  # the reader's own check passed (X, or X V), within its derived bound
        # τ: the product's scale on the explicit path (exact); the length of q̂ · τ's rows on the fused path
        # (normalising and measuring a row of N entries again: within (2N + 2) u, and the product by τ: 2u more)
        rtol = (2 * tokens + 4) * UNIT_ROUNDOFF_32 if fused else 0
        assert record.temperature == pytest.approx(TEMPERATURES[head], rel=rtol)
        diff = float((record.attention.double() - exact).abs().max())
        assert diff <= FLOAT64_ATOL, (key, diff)
        sums = record.attention.sum(-1)
        assert float((sums - 1).abs().max()) <= softmax_row_sum_tolerance(size)
        # the energy read by the page's worked formula: τ q̂_c · k̂_j, its softmax the recorded row
        for channel in (0, size // 2, size - 1):
            argument = record.softmax_argument(channel)
            assert torch.allclose(torch.softmax(argument, 0), record.row(channel).double(), atol=FLOAT64_ATOL)
            cosine = record.similarity(channel)
            # a cosine: |q̂_c| |k̂_j| <= 1 + (4N + 4) u, the dot product's rounding gamma_N, τ in and out 2u
            assert float(cosine.abs().max()) <= 1 + (5 * tokens + 8) * UNIT_ROUNDOFF_32
            most, least = record.similar_channels(channel)
            assert channel not in (most, least) and cosine[most] >= cosine[least]
        text = record.found_by.text("en")
        assert f"over {size} channels" in text and f"over {tokens} tokens" in text and "temperature" in text


def test_the_class_attention_blocks_are_read_as_token_attention_and_the_channel_page_can_show_a_head(monkeypatch):
    """The CLS token attending over the patches (CaiT's class attention, timm's SDPA call) is token attention:
    one query, CLS itself (not a 1x1 "patch" grid), onto the CLS key and the 3x4 patch keys, as the model states
    them; CLS's row equals a float64 softmax of the module's own q and k. A map with no patch query is no map of
    the Position page. A head's channel map is what the Channel page's canvas reads."""
    from timm.models.cait import ClassAttn

    from attnviz.analysis.forward import Analysis
    from attnviz.analysis.tokens import class_attention_layers, class_row

    model = xcit(False)
    inputs = {}
    (attention,) = [m for m in model.modules() if isinstance(m, ClassAttn)]
    hook = attention.register_forward_pre_hook(lambda m, args: inputs.__setitem__("x", args[0].detach().clone()))
    torch.manual_seed(1)
    _, _, records, _, _, _ = run(model, torch.randn(1, 3, *PHOTO), monkeypatch)
    hook.remove()
    tokens = [r for key, r in records.items() if key.startswith("cls_attn_blocks.0.attn:")]
    assert len(tokens) == len(TEMPERATURES) and all(isinstance(r, TokenAttentionRecord) for r in tokens)
    assert all(r.key_grid == (3, 4) and r.baseline == 1 + 12 for r in tokens)
    assert all((r.prefix_queries, r.num_pixels, r.prefix_names) == (1, 0, ("cls",)) for r in tokens)
    assert "1 token(s) that are no patch, over every token (CLS in class attention" in tokens[0].found_by.text("en")
    x = inputs["x"].double()  # (B, 1 + 12, C): CLS, then the patches
    b, n, c = x.shape
    heads = attention.num_heads
    q = F.linear(x[:, :1], attention.q.weight.detach().double(), attention.q.bias.detach().double()).reshape(
        b, 1, heads, -1
    )
    k = F.linear(x, attention.k.weight.detach().double(), attention.k.bias.detach().double()).reshape(b, n, heads, -1)
    q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, heads, tokens, d)
    exact = torch.softmax(q @ k.transpose(-1, -2) * attention.scale, dim=-1)  # (B, heads, 1, 13)
    for head, record in enumerate(tokens):
        mine = record.token_rows(torch.tensor([0]))[0].double()
        assert float((mine - exact[0, head, 0]).abs().max()) <= FLOAT64_ATOL
        assert float((record.prefix_row(0).double().flatten() - exact[0, head, 0, 1:]).abs().max()) <= FLOAT64_ATOL
    (layer,) = [heads for name, heads in class_attention_layers(records).items() if name == "cls_attn_blocks.0.attn"]
    mean = class_row(layer).double().flatten()  # what the Channel page draws: the heads' mean of CLS's row
    assert float((mean - exact[0, :, 0, 1:].mean(0)).abs().max()) <= FLOAT64_ATOL
    shown = Analysis("xcit", "cpu", None, None, records, 0.0, None).spatial_attention
    assert not any(key.startswith("cls_attn") for key in shown)
    record = records["blocks.1.attn:head2"]
    payload = channel_payload(record)
    assert payload["channels"] == 32 and payload["form"] == "paper" and "argument" not in payload
    assert record_type(CrossCovarianceRecord) == "cross_covariance"
    assert "XCiT" in translate("overview.records.cross_covariance", "en")


class ChannelMap(nn.Module):
    """softmax(A Aᵀ · scale) over the C channels of a feature map A (B, C, H·W), then X A added to A: the paper's
    form of DANet's channel attention with no residual weight, a plain dot product (A not normalised). `per_photo`
    multiplies the energies by a number that differs between the photos of the batch."""

    def __init__(self, per_photo: bool = False):
        super().__init__()
        self.per_photo = per_photo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.flatten(2)
        energy = a @ a.transpose(1, 2)
        energy = energy * torch.arange(1, x.shape[0] + 1.0).view(-1, 1, 1) if self.per_photo else energy / 8.0
        return (torch.softmax(energy, dim=-1) @ a).view_as(x) + x


def test_a_plain_channel_map_of_a_feature_map_is_read_with_its_scale_and_a_scale_per_photo_is_listed():
    torch.manual_seed(3)
    x = torch.randn(2, 6, 4, 5)
    with torch.no_grad(), capture(model := ChannelMap()) as rec:
        out = model(x)
    (record,) = rec.records().values()
    assert torch.equal(out, ChannelMap()(x))
    assert isinstance(record, CrossCovarianceRecord) and not record.normalised and record.temperature == 1 / 8
    a = x.double().flatten(2)
    exact = torch.softmax(a @ a.transpose(1, 2) / 8, dim=-1)
    assert float((record.attention.double() - exact).abs().max()) <= FLOAT64_ATOL
    assert "as they are" in record.found_by.text("en")
    with torch.no_grad(), capture(model := ChannelMap(per_photo=True)) as rec:
        model(x)
    assert rec.records() == {}
    assert [item.what.key for item in rec.skipped] == ["dataflow.not_drawn.channel_mismatch"]
