"""The lecture says what the article says, in its order: part one's SE, CBAM and CA, then ECA, DANet's
空间注意力模块 (PAM) and 通道注意力模块 (CAM), then 柔性注意力 (flexible attention)."""

from attnviz.analysis.lecture import STEPS
from attnviz.i18n import LANGUAGES, translate

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
