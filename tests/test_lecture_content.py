"""The lecture says what the article says, in its order: part one's SE, CBAM and CA, then ECA, DANet's
空间注意力模块 (PAM) and 通道注意力模块 (CAM), then 柔性注意力 (flexible attention)."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from attnviz.analysis.forward import analyse
from attnviz.analysis.lecture import STEP_COMPANIONS, STEP_MODELS, STEPS, far_key_median, step_numbers
from attnviz.analysis.views import telling_channel
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import LANGUAGES, translate
from attnviz.models import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# the article's sections, in the order it gives them (part one first), each with how the zh intro names it
ARTICLE_ORDER = (
    ("se", "SE"),
    ("cbam", "CBAM"),
    ("ca", "坐标注意力"),
    ("eca", "ECA"),
    ("pam", "空间注意力模块"),
    ("cam", "通道注意力模块"),
    ("flexible", "柔性注意力"),
)


def test_the_lecture_follows_the_articles_order():
    assert STEPS == tuple(step for step, _ in ARTICLE_ORDER)


def test_the_introduction_names_the_steps_in_the_order_they_come():
    intro = translate("lecture.intro", "zh")
    places = [intro.index(name) for _, name in ARTICLE_ORDER]
    assert places == sorted(places), places
    for language in LANGUAGES:
        text = translate("lecture.intro", language)
        assert text.count("flexible" if language == "en" else "柔性注意力") == 1
        assert text.index("flexible" if language == "en" else "柔性注意力") > text.index("CAM")


needs_danets = pytest.mark.skipif(
    not {STEP_MODELS["pam"], STEP_COMPANIONS["pam"]} <= set(list_checkpoints()),
    reason="needs the shipped danet-eca and danet-eca-affinity checkpoints",
)


def test_the_pam_steps_companion_is_the_plain_danet_its_model_was_fine_tuned_from():
    assert STEP_COMPANIONS["pam"] == "danet-eca" and STEP_MODELS["pam"] == "danet-eca-affinity"


@needs_danets
def test_the_pam_step_draws_plain_danet_and_the_affinity_danet_on_the_same_pixel(monkeypatch):
    """The canvas gets two panels, plain DANet first, each titled with which it is; the page says what the
    affinity loss is and gives both models' test-split medians from their cards."""
    drawn = []
    monkeypatch.setattr("attnviz.app.lecture.attention_canvas", lambda **kwargs: drawn.append(kwargs))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/lecture.py")
    for language in LANGUAGES:
        drawn.clear()
        at.session_state["language"] = language
        at.session_state["lecture_step"] = "pam"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        (canvas,) = drawn
        plain, affinity = STEP_COMPANIONS["pam"], STEP_MODELS["pam"]
        titles = [panel["title"] for panel in canvas["panels"]]
        assert titles == [
            translate("lecture.pam.panel_plain", language, model=plain),
            translate("lecture.pam.panel_affinity", language, model=affinity),
        ]
        assert [panel["id"].split("|")[1] for panel in canvas["panels"]] == [plain, affinity]
        text = " ".join(m.value for m in at.main.markdown)
        assert translate("lecture.pam.which", language, plain=plain, affinity=affinity) in text
        medians = [far_key_median(load_checkpoint(name)[1]) for name in (plain, affinity)]
        assert medians[0] < 1 < medians[1]  # plain DANet's far keys: below chance on the test split
        assert translate("lecture.pam.medians", language, plain=medians[0], affinity=medians[1]) in text
        sidebar, photo = at.session_state["model"], list_samples()[0]
        assert sidebar != affinity  # the step's model is its own, and its caption says so
        captions = [c.value for c in at.main.caption]
        own = translate("lecture.model_note_own", language, model=affinity, sidebar=sidebar, photo=photo)
        assert own in captions, captions
        (deck,) = at.main.get("download_button")  # the lecture as PDF slides (attnviz.deck), made on press
        assert deck.proto.label == translate("lecture.deck_download", language)
        assert deck.proto.deferred_file_id or not deck.proto.url  # a callable: nothing made before the press


# ---- the flexible example: a channel whose weight shows the gate at work


def _brute_force_telling(weights, across, low=0.05, high=0.95, varies=0.05):
    """The rule written out channel by channel (the reference for views.telling_channel)."""
    best, best_span = None, -1.0
    for c in range(len(weights)):
        span = max(row[c] for row in across) - min(row[c] for row in across)
        if low <= weights[c] <= high and span >= varies and span > best_span:
            best, best_span = c, span
    return best


def test_the_telling_channel_is_unsaturated_here_and_varies_most_across_photos():
    weights = np.array([0.999, 0.5, 0.3, 0.02, 0.7])
    across = np.array([[0.999, 0.5, 0.3, 0.01, 0.7], [1.0, 0.52, 0.9, 0.9, 0.71], [0.998, 0.49, 0.1, 0.5, 0.69]])
    assert telling_channel(weights, across) == 2  # 3 varies more but is switched off here; 0 is saturated
    assert telling_channel(weights, across, varies=0.9) is None  # no channel here spans 0.9 across the photos
    flat = np.tile(weights, (4, 1))  # the same weights on every photo: nothing changes with the photo
    assert telling_channel(weights, flat) is None
    assert telling_channel(np.array([0.001, 0.9999]), np.array([[0.0, 1.0], [0.5, 0.2]])) is None  # all saturated
    rng = np.random.default_rng(0)
    for _ in range(200):
        channels = int(rng.integers(1, 12))
        weights = rng.beta(0.3, 0.3, channels)  # many near 0 and 1
        across = rng.beta(0.3, 0.3, (4, channels)) * rng.choice([0.0, 1.0], channels) + weights * 0.5
        assert telling_channel(weights, across) == _brute_force_telling(weights, across.tolist())


@pytest.mark.skipif(STEP_MODELS["flexible"] not in list_checkpoints(), reason="needs the shipped fcn-flexible")
def test_the_flexible_steps_example_channel_is_unsaturated_here_and_changes_across_the_photos():
    """On the first sample photo the lecture's flexible step works out a channel whose weight is in
    [0.05, 0.95] and spans at least 0.05 over the 4 sample photos (each photo analysed here), and says so;
    or, where no channel of the layer is, says that instead."""
    name = STEP_MODELS["flexible"]
    network, _ = load_checkpoint(name)
    photos = list_samples()[:4]
    analyses = [analyse(network, load_sample(photo).image, name) for photo in photos]
    layer = step_numbers("flexible", analyses[0]).layer
    table = np.stack([a.records[layer].weights[0].double().numpy() for a in analyses])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/lecture.py")
    for language in LANGUAGES:
        at.session_state["language"] = language
        at.session_state["lecture_step"] = "flexible"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        text = " ".join(m.value for m in at.main.markdown)
        qualifies = [c for c in range(table.shape[1]) if 0.05 <= table[0, c] <= 0.95 and np.ptp(table[:, c]) >= 0.05]
        if not qualifies:
            assert translate("lecture.flexible.no_example", language, layer=layer, photos=len(photos)) in text
            continue
        channel = max(qualifies, key=lambda c: np.ptp(table[:, c]))
        sentence = translate(
            "lecture.flexible.example",
            language,
            channel=channel,
            weight=table[0, channel],
            photo_lowest=table[:, channel].min(),
            photo_highest=table[:, channel].max(),
            photos=len(photos),
        )
        assert sentence in text
        numbers = step_numbers("flexible", analyses[0], channel=channel)
        assert numbers.terms["channel"] == channel and 0.05 <= numbers.terms["weight"] <= 0.95
        assert translate("lecture.flexible.terms", language, layer=layer, **numbers.terms) in text
        saved = [json.loads(c.proto.config)["toImageButtonOptions"]["filename"] for c in at.main.get("plotly_chart")]
        assert f"attnviz-lecture-flexible-{name}-{photos[0]}" in saved  # the step's figure: step, model, photo


@pytest.mark.skipif(STEP_MODELS["flexible"] not in list_checkpoints(), reason="needs the shipped fcn-flexible")
def test_the_flexible_pages_worked_example_and_channel_view_start_at_the_telling_channel():
    name = STEP_MODELS["flexible"]
    network, _ = load_checkpoint(name)
    analyses = [analyse(network, load_sample(photo).image, name) for photo in list_samples()[:4]]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/flexible.py").run()
    at.selectbox(key="model").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    layer = at.session_state["flex_layer"]
    table = np.stack([a.records[layer].weights[0].double().numpy() for a in analyses])
    channel = telling_channel(table[0], table)
    assert channel is not None and 0.05 <= table[0, channel] <= 0.95 and np.ptp(table[:, channel]) >= 0.05
    assert at.number_input(key="flex_focus_channel").value == channel
    text = " ".join(m.value for m in at.main.markdown)
    record = analyses[0].records[layer]
    avg, mx = (float(record.parts[part][0, channel]) for part in ("avg_branch", "max_branch"))
    assert translate("flexible.numbers_flexible_telling", "en", channel=channel, avg=avg, max=mx, photos=4) in text


# ---- S and X in the article's notation, with the code's convention beside them


def _article_s(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The article's s_ji = exp(B_i·C_j) / Σ_i exp(B_i·C_j), written out entry by entry ([j, i])."""
    n = len(b)
    s = np.empty((n, n))
    for j in range(n):
        column = [np.exp(b[i] @ c[j]) for i in range(n)]
        for i in range(n):
            s[j, i] = column[i] / sum(column)
    return s


def test_the_pam_slide_writes_s_ji_normalised_over_i_and_the_codes_s_is_it_with_b_and_c_swapped():
    """FORMULAS["pam"] is the article's s_ji (sum over i); the convention sentence's claim holds: the code's
    S = softmax_j(B_i·C_j) (attnviz.modules.danet.PositionAttention) equals the article's s with B and C named
    the other way round, and each E_j = α Σ_i s_ji D_i + A_j is the module's output."""
    import torch

    from attnviz.analysis.lecture import FORMULAS, convention_key
    from attnviz.modules.danet import PositionAttention, position_attention_reference

    assert r"s_{ji} = \frac{\exp(B_i\cdot C_j)}{\sum_{i=1}^{N}" in FORMULAS["pam"]
    assert r"E_j = \alpha \sum_{i=1}^{N} s_{ji} D_i + A_j" in FORMULAS["pam"]
    torch.manual_seed(0)
    module = PositionAttention(16, reduction=4).double().eval()
    with torch.no_grad():
        module.alpha.fill_(0.7)
        x = torch.randn(1, 16, 3, 4, dtype=torch.float64)
        query, key, value = module.projections(x)
        _, code_s = position_attention_reference(query, key, value)
        out = module(x)
    b, c = query[0].numpy(), key[0].numpy()
    article = _article_s(c, b)  # the article's B is the code's key projection, its C the code's query
    np.testing.assert_allclose(article, code_s[0].numpy(), rtol=1e-10, atol=1e-14)
    assert np.allclose(article.sum(axis=1), 1)  # normalised over i
    d, a = value[0].numpy(), x[0].flatten(1).numpy()  # (C, N)
    e = np.stack([0.7 * sum(article[j, i] * d[:, i] for i in range(len(b))) + a[:, j] for j in range(len(b))], 1)
    # the module runs the attention product in float32 (query.float(), ... in PositionAttention.forward): each
    # entry agrees to float32's 2^-23 per term summed, relative to the entries' size
    np.testing.assert_allclose(e, out[0].flatten(1).numpy(), rtol=0, atol=len(b) * 2.0**-23 * np.abs(e).max())
    for language in LANGUAGES:
        sentence = translate(convention_key("pam", None), language)
        assert "S_ij = exp(B_i·C_j) / Σ_j exp(B_i·C_j)" in sentence


def test_the_cam_slide_shows_x_in_the_articles_and_the_official_form_and_says_which_the_model_uses():
    """Both rows of X from the formulas' lines, each against a hand-written softmax of a random A's Gram
    matrix: the article's x_ji (normalised over i) and the official X′ (softmax_j(rowmax − energy)); the
    sentence beside them names the form the shipped model's record says it uses, in both languages."""
    import torch

    from attnviz.analysis.lecture import FORMULAS, convention_key
    from attnviz.modules.danet import channel_attention_map

    assert r"x_{ji} = \frac{\exp(A_i\cdot A_j)}{\sum_{i=1}^{C}" in FORMULAS["cam"]
    assert r"X'_{cj} = \mathrm{softmax}_j\big(\max_m (AA^\top)_{cm} - (AA^\top)_{cj}\big)" in FORMULAS["cam"]
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 10)) * 0.5  # C x N
    energy = a @ a.T
    article = np.array([[np.exp(energy[i, j]) / np.exp(energy[:, j]).sum() for i in range(6)] for j in range(6)])
    official = np.exp(energy.max(1, keepdims=True) - energy)
    official /= official.sum(1, keepdims=True)
    x = torch.from_numpy(a).reshape(1, 6, 2, 5)
    np.testing.assert_allclose(channel_attention_map(x, "paper")[0].numpy(), article, rtol=1e-10)
    np.testing.assert_allclose(channel_attention_map(x, "official")[0].numpy(), official, rtol=1e-10)
    for form in ("official", "paper"):
        numbers = step_numbers.__globals__["StepNumbers"]("layer", {"form": form})
        for language in LANGUAGES:
            sentence = translate(convention_key("cam", numbers), language)
            assert "softmax(AAᵀ)" in sentence and "X′ = softmax(" in sentence
            assert ("X′（" in sentence or "X′ (" in sentence) == (form == "official"), sentence
    assert convention_key("se", None) is None


@needs_danets
def test_the_cam_step_names_the_form_of_the_shipped_model():
    network, _ = load_checkpoint(STEP_MODELS["cam"])
    analysis = analyse(network, load_sample(list_samples()[0]).image, STEP_MODELS["cam"])
    numbers = step_numbers("cam", analysis)
    forms = {m.form for m in network.modules() if hasattr(m, "form") and isinstance(m.form, str)}
    assert forms == {numbers.terms["form"]}  # the sentence shown is chosen by the form the network computes
    assert numbers.terms["symbol"] == ("X′" if numbers.terms["form"] == "official" else "x")
    text = translate("lecture.cam.terms", "en", layer=numbers.layer, **numbers.terms)
    assert f"{numbers.terms['symbol']}_cj = exp(" in text
