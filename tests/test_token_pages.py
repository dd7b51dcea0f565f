"""Transformers from the ImageNet source on the pages (issue 32): each head's map over the photo on the Position
page, the token layout on the Overview, and a patch grid that covers the photo the page draws on."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from streamlit.testing.v1 import AppTest
from tolerances import gamma, softmax_entry_rtol, softmax_row_sum_tolerance

from attnviz.analysis.forward import analyse_classifier
from attnviz.analysis.tokens import class_attention_layers, class_row
from attnviz.app import resources
from attnviz.app.sources import model_source
from attnviz.capture.records import TokenAttentionRecord
from attnviz.data.samples import list_samples, load_sample
from attnviz.models import imagenet
from attnviz.models.imagenet import IMAGENET_MODELS, TOKEN_KIND, preprocess

ROOT = Path(__file__).resolve().parents[1]  # the project: app.py, pages/

TRANSFORMERS = [arch for arch, (kind, _) in IMAGENET_MODELS.items() if kind == TOKEN_KIND]


def test_a_transformer_sees_the_whole_photo():
    """The patch grid must cover the photo the page draws on: a white left quarter of a 360x480 photo is the
    left quarter of the model's input (56 of 224 columns), where timm's centre crop would keep about 30."""
    model = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
    photo = np.zeros((360, 480, 3), np.uint8)
    photo[:, :120] = 255
    mean = torch.tensor(model.pretrained_cfg["mean"])
    std = torch.tensor(model.pretrained_cfg["std"])

    def white_columns(x):
        pixels = x[0] * std[:, None, None] + mean[:, None, None]  # back to 0..1
        return int((pixels[:, 112].mean(0) > 0.5).sum())  # along the middle row

    assert preprocess(model, photo, whole_photo=True).shape == (1, 3, 224, 224)
    assert abs(white_columns(preprocess(model, photo, whole_photo=True)) - 56) <= 1  # bicubic edge: one column
    assert white_columns(preprocess(model, photo)) < 40  # timm's own evaluation crops the sides away


@pytest.mark.parametrize("arch", TRANSFORMERS)
def test_every_listed_transformer_is_read_head_by_head(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False).eval()
    analysis = analyse_classifier(model, load_sample(list_samples()[0]).image, arch)
    tokens = analysis.of_type(TokenAttentionRecord)
    blocks = [m for m in model.modules() if type(m).__name__ == "Attention"]
    heads = blocks[0].num_heads
    assert len(tokens) == len(blocks) * heads  # every head of every layer
    first = next(iter(tokens.values()))
    prefix = 2 if "distilled" in arch else 1
    assert (first.prefix_keys, first.heads) == (prefix, heads)
    assert first.key_grid == ((7, 7) if "r26_s32" in arch else (14, 14))


def _position_page(arch: str, language: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["source"] = "timm"
    at.query_params["model"] = arch
    at.query_params["lang"] = language
    at.switch_page("pages/position.py")
    return at.run()


@pytest.mark.parametrize(
    "arch,layout",
    [
        ("vit_small_patch16_224", "197 tokens: CLS + 14x14 patches; head 0 of 6"),
        ("deit_small_distilled_patch16_224", "198 tokens: CLS + DIST + 14x14 patches; head 0 of 6"),
    ],
)
def test_the_position_page_draws_a_heads_map_with_the_librarys_numbers(arch, layout, monkeypatch):
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)  # offline: random weights, said so
    at = _position_page(arch)
    assert not at.exception, at.exception[0].value
    assert any(layout in info.value for info in at.info)
    # the page's numbers are the library's for the model the app loaded (random weights: read back its copy)
    model = resources.loaded_model(model_source("timm"), arch, "cpu").model
    analysis = analyse_classifier(model, load_sample(list_samples()[0]).image, arch)
    record = analysis.spatial_attention["blocks.0.attn:head0"]
    text = "\n".join(m.value for m in at.markdown)
    index = int(re.search(r"index i = (\d+) of N = 196", text).group(1))
    total = float(re.search(r"Row i sums to \*\*([0-9.]+)\*\*", text).group(1))
    printed_6 = 5e-7  # the page prints the sum to 6 decimals; the two sums add the same 196 float32 values in
    # different orders, each within gamma(196) of the exact sum (at most 1)
    assert abs(total - float(record.row(index).sum())) <= printed_6 + 2 * gamma(record.num_keys)
    shares = record.prefix_share(index).tolist()
    printed = [float(v) for v in re.findall(r"(?:CLS|DIST) ([0-9.]+)", text)]
    assert printed == pytest.approx(shares, abs=5e-5)  # printed to 4 decimals
    whole = record.num_keys + record.prefix_keys  # the patches' share and the prefix's make the whole row
    assert abs(total + sum(shares) - 1) <= printed_6 + softmax_row_sum_tolerance(whole) + 2 * gamma(whole)


def test_the_pages_speak_of_tokens_in_chinese(monkeypatch):
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    at = _position_page("vit_small_patch16_224", "zh")
    assert not at.exception, at.exception[0].value
    assert any("197 个词元：CLS + 14x14 个图块" in info.value for info in at.info)
    at.switch_page("pages/overview.py").run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "12 个注意力层，每层 6 个头：197 个词元，CLS + 14x14 个图块" in captions


def test_the_mean_of_a_layers_heads_is_the_rollout_modules_mean_and_a_map_of_its_own(monkeypatch):
    """HeadsMean (attnviz.analysis.tokens) against attnviz.analysis.rollout.mean_rows, written apart (float64,
    from whole token rows): the patch part of the heads' mean row, and what is left for the prefix tokens."""
    from attnviz.analysis.rollout import mean_rows, token_layers
    from attnviz.analysis.tokens import HeadsMean

    torch.manual_seed(0)
    arch = "deit_small_distilled_patch16_224"
    model = timm.create_model(arch, pretrained=False).eval()
    analysis = analyse_classifier(model, load_sample(list_samples()[0]).image, arch)
    mean = analysis.spatial_attention["blocks.2.attn:mean"]
    assert (
        isinstance(mean, HeadsMean)
        and list(analysis.records).index("blocks.2.attn:mean")
        == list(analysis.records).index("blocks.2.attn:head5") + 1
    )  # after the layer's six heads
    layer = token_layers(analysis.records)["blocks.2.attn"]
    # each head's float32 entries within softmax_entry_rtol of the float64 ones (entries at most 1), then a float32
    # mean of 6 of them: its own rounding, gamma(6)
    atol = max(softmax_entry_rtol(*head._all(0)) for head in mean.heads) + gamma(len(mean.heads))
    for index in (0, 97, 195):
        expected = mean_rows(layer, [index + 2])[0]  # 2 prefix query tokens (CLS, DIST) before the patches
        row = mean.row(index).double().flatten()
        np.testing.assert_allclose(row.numpy(), expected[2:].numpy(), rtol=0, atol=atol)
        np.testing.assert_allclose(mean.prefix_share(index).double().numpy(), expected[:2].numpy(), rtol=0, atol=atol)
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update(source="timm", model="vit_small_patch16_224", module="blocks.3.attn:mean")
    at.switch_page("pages/position.py").run()
    assert not at.exception, at.exception[0].value
    assert any("The mean of a layer's 6 heads" in info.value for info in at.info)


def test_swin_on_the_position_page_its_windows_numbers_and_both_languages(monkeypatch):
    """timm's Swin-T on its default path (explicit softmax in each window): the Position page names its windows,
    prints the library's energy, log Z and entry for the pair it shows (which lies in the chosen patch's window),
    and says what to notice about windows; the Overview lists the stages; the same in Chinese."""
    from attnviz.capture.records import WindowEnergiesRecord

    arch = "swin_tiny_patch4_window7_224"
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    at = _position_page(arch)
    assert not at.exception, at.exception[0].value
    info = " ".join(i.value for i in at.info)
    assert "a 56x56 grid of patches cut into windows of 7x7, not shifted; head 0 of 3" in info
    assert "softmaxes within windows" in info  # drawn on click, and why
    text = "\n".join(m.value for m in at.markdown)
    assert "only inside the pointed patch's window" in text
    model = resources.loaded_model(model_source("timm"), arch, "cpu").model
    record = analyse_classifier(model, load_sample(list_samples()[0]).image, arch).spatial_attention[
        "layers.0.blocks.0.attn:head0"
    ]
    assert isinstance(record, WindowEnergiesRecord)
    i = int(re.search(r"index i = (\d+) of N = 3136", text).group(1))
    j = int(re.search(r"and j = (\d+) is the pixel its row weights most", text).group(1))
    assert int(j) in record.window_pixels(i).tolist()
    energy, log_z, entry = record.entry(i, j)
    printed = re.search(
        r"energy \$q_i\^\\top k_j / \\sqrt\{d\} \+ B_\{ij\}\$ is (-?[0-9.]+) and the row's "
        r"\$\\log Z_i\$ is (-?[0-9.]+), so patch i takes the share ([0-9.]+)",
        text,
    )
    assert [float(v) for v in printed.groups()] == pytest.approx([energy, log_z, entry], abs=5e-4)  # printed rounded
    at.switch_page("pages/overview.py").run()
    captions = " ".join(c.value for c in at.caption)
    assert (
        "12 window-attention layers, windows of 7x7 patches" in captions and "7x7 grid, 24 heads (2 layers)" in captions
    )

    at = _position_page(arch, "zh")
    assert not at.exception, at.exception[0].value
    assert any("56x56 的图块网格，按 7x7 切成窗口，未平移" in i.value for i in at.info)
    assert "只在所选图块的窗口内发亮" in "\n".join(m.value for m in at.markdown)
    at.switch_page("pages/overview.py").run()
    assert "56x56 的网格，3 个头（2 层）；28x28" in " ".join(c.value for c in at.caption)


def test_the_rollout_on_the_position_page_with_its_limits_and_cls_row(monkeypatch):
    """Attention rollout is offered after the layers ("rollout"): its definition on the page, what it assumes and
    ignores in the researchers' layer, CLS's row of R drawn there, equal to the library's; both languages."""
    from attnviz.analysis.rollout import Rollout, rollout_map, token_layers

    arch = "vit_small_patch16_224"
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    for language, words in (
        ("en", ("Attention rollout", "What rollout assumes")),
        ("zh", ("注意力展开", "注意力展开的假设")),
    ):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.query_params.update(source="timm", model=arch, module="rollout", lang=language)
        at.switch_page("pages/position.py").run()
        assert not at.exception, at.exception[0].value
        assert any(words[0] in i.value and "R = \\tilde A_L \\cdots \\tilde A_1" in i.value for i in at.info)
        assert any(words[1] in m.value and "Chefer" in m.value for m in at.markdown)
    model = resources.loaded_model(model_source("timm"), arch, "cpu").model
    analysis = analyse_classifier(model, load_sample(list_samples()[0]).image, arch)
    rolled = analysis.spatial_attention["rollout"]
    assert isinstance(rolled, Rollout) and len(rolled.layers) == 12
    (chart,) = at.get("plotly_chart")
    drawn = plotted(json.loads(chart.proto.spec)["data"][0]["z"], (14, 14))
    expected = rollout_map(token_layers(analysis.records), 0).numpy()
    assert drawn.shape == (14, 14) and np.allclose(drawn, expected, rtol=0, atol=1e-12)  # the same float64 values


def plotted(z, shape) -> np.ndarray:
    """A heatmap's values as Plotly keeps them: a typed array (base64 of little-endian float32 or float64) or a list."""
    if not isinstance(z, dict):
        return np.array(z, dtype=float).reshape(shape)
    dtype = {"f4": "<f4", "f8": "<f8"}[z.get("dtype", "f8")]
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=dtype).reshape(shape).astype(float)


def test_xcit_on_the_channel_page_a_layer_and_head_picked_by_link_with_its_own_words(monkeypatch):
    """XCiT from the ImageNet source: the Channel page shows the head the link names (module=blocks.3.attn:head2),
    in XCiT's words (τ, cosines; no β, no DANet form), with the library's softmax argument and log-normaliser for
    the row it shows; the Overview says what was read; the Position page has nothing to draw and says so."""
    from attnviz.capture.records import CrossCovarianceRecord

    arch = "xcit_nano_12_p16_224"
    monkeypatch.setattr(imagenet, "hub_reachable", lambda *a, **k: False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update(source="timm", model=arch, module="blocks.3.attn:head2", channel="5")
    at.switch_page("pages/channel_map.py").run()
    assert not at.exception, at.exception[0].value
    assert at.title[0].value == "XCiT's cross-covariance attention: how channels mix"
    assert [box.value for box in at.selectbox][:2] == ["blocks.3.attn", "blocks.3.attn:head2"]
    assert at.query_params.get("module") in ("blocks.3.attn:head2", ["blocks.3.attn:head2"])  # the link keeps it
    text = "\n".join(m.value for m in at.markdown)
    assert "τ = 1.00" in text and "no β is read" in text and "official" not in text  # no DANet β, no second form
    model = resources.loaded_model(model_source("timm"), arch, "cpu").model
    record = analyse_classifier(model, load_sample(list_samples()[0]).image, arch).channel_maps["blocks.3.attn:head2"]
    assert isinstance(record, CrossCovarianceRecord) and record.head == 2
    partner = int(re.search(r"for row c = 5 and its largest entry j = (\d+)", text).group(1))
    assert partner == int(record.attention[0, 5].argmax())
    argument, log_z = record.softmax_terms(5, partner)
    printed = re.search(r"([-0-9.]+) is the softmax argument of entry j .* and ([-0-9.]+) the row's", text)
    assert [float(v) for v in printed.groups()] == pytest.approx([argument, log_z], abs=5e-4)  # printed to 3 places
    # its last two layers, class attention: CLS's row over the 14x14 patches, the heads' mean, one chart a layer
    assert "Where the class token looks (class attention)" in [h.value for h in at.subheader]
    assert "XCiT ends with 2 layers of **class attention**" in text and "1/197" in text
    layers = class_attention_layers(analyse_classifier(model, load_sample(list_samples()[0]).image, arch).records)
    assert list(layers) == ["cls_attn_blocks.0.attn", "cls_attn_blocks.1.attn"]
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    for layer, heads in layers.items():
        (spec,) = [spec for spec in charts.values() if spec["layout"]["title"]["text"].startswith(layer + " ·")]
        expected = class_row(heads).numpy()
        assert np.allclose(plotted(spec["data"][0]["z"], expected.shape), expected, rtol=0, atol=1e-7)
        title = spec["layout"]["title"]["text"]
        assert f"CLS keeps {1 - expected.sum():.1%}" in title
        assert f"largest {expected.max() * 197:.2f}x uniform" in title
    at.switch_page("pages/overview.py").run()
    assert "12 cross-covariance attention layers of 4 heads, each a 32x32 map" in " ".join(c.value for c in at.caption)
    at.switch_page("pages/position.py").run()
    assert not at.exception, at.exception[0].value
    shown = " ".join(e.value for e in [*at.info, *at.warning, *at.markdown])
    assert "has no position attention module. Switch to a CamVid model" in shown, shown[:500]

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update(source="timm", model=arch, lang="zh")
    at.switch_page("pages/channel_map.py").run()
    assert not at.exception and at.title[0].value == "XCiT 的交叉协方差注意力：通道如何混合"
    assert "类别词元在看哪里（类别注意力）" in [h.value for h in at.subheader]
