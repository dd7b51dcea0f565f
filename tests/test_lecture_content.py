"""The lecture says what the article says, in its order: part one's SE, CBAM and CA, then ECA, DANet's
空间注意力模块 (PAM) and 通道注意力模块 (CAM), then 柔性注意力 (flexible attention)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from attnviz.analysis.lecture import STEP_COMPANIONS, STEP_MODELS, STEPS, far_key_median
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
