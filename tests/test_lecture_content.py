"""The lecture says what the article says, in its order: part one's SE, CBAM and CA, then ECA, DANet's
空间注意力模块 (PAM) and 通道注意力模块 (CAM), then 柔性注意力 (flexible attention)."""

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
