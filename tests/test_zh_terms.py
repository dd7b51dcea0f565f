"""Chinese terms as the article uses them, one name per thing, and phrasings a native reader flagged."""

import re
from pathlib import Path

import pytest
from prose import chinese_share

from attnviz.i18n import catalog
from attnviz.models import list_checkpoints
from attnviz.viz.plotly_locale import toolbar_config

ZH = catalog("zh")


def test_pam_is_the_articles_spatial_attention_module_and_cbams_halves_are_gates():
    """空间注意力 names PAM only (空间注意力模块); CBAM's halves are 通道门控 and 空间门控. The one generic use
    left is a user model's token attention found by what it computes (dataflow.not_drawn.too_big)."""
    loose = {key for key, text in ZH.items() if re.search(r"空间注意力(?!模块)", text)}
    assert loose <= {"dataflow.not_drawn.too_big"}, loose
    assert ZH["lecture.pam.name"].count("空间注意力模块") == 1 and "CBAM" not in ZH["lecture.pam.name"]
    assert "空间门控" in ZH["lecture.cbam.notice"] and "通道门控" in ZH["lecture.cbam.notice"]


def test_the_sidebar_group_and_danets_x_have_different_names():
    group, x_page, pam_page = ZH["nav.channel"], ZH["nav.channel_map"], ZH["nav.position"]
    assert "通道注意力" not in group
    assert x_page.startswith("通道注意力模块") and pam_page.startswith("空间注意力模块")
    assert len({group, x_page, pam_page}) == 3


def test_the_app_name_of_pam_appears_once_beside_the_articles_on_its_pages():
    for key in ("position.title", "lecture.pam.intuition"):
        assert ZH[key].count("空间注意力模块") == 1 and ZH[key].count("位置注意力") == 1, ZH[key]


def test_phrasings_a_native_reader_changed_are_gone():
    flagged = ("注意什么", "超出噪声", "加回的很少", "exp(x − x)", "使用的是 {")
    found = {key: word for key, text in ZH.items() for word in flagged if word in text}
    assert not found, found
    for key in ("lecture.notice_title", "flexible.notice_title", "channel_map.notice_title"):
        assert ZH[key] == "观察要点：", key  # the full-width colon, as everywhere else


def test_the_tab_title_and_the_upload_credit_are_in_both_catalogs():
    assert re.search(r"[\u4e00-\u9fff]", ZH["nav.tab_title"])
    assert chinese_share(ZH["nav.tab_title"]) >= 0.9, ZH["nav.tab_title"]  # the page measure's bound
    for language in ("en", "zh"):
        texts = catalog(language)
        assert "{name}" in texts["sidebar.attribution_upload"]  # credited to its own file, not to CamVid
        assert texts["sidebar.attribution_upload"] != texts["sidebar.attribution"]


# ---- Plotly's toolbar


def _plotly_bundle() -> str:
    """The Plotly build Streamlit ships (its PlotlyChart chunk)."""
    import streamlit

    (bundle,) = (Path(streamlit.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js")
    return bundle.read_text(encoding="utf-8")


def test_plotlys_toolbar_texts_are_plotlys_own_and_chinese_in_chinese():
    """The buttons a Streamlit chart shows are titled through Plotly's lookup (`_(gd, "...")` in the modebar
    module of the shipped build) and all in the dictionary; every key is a text of that build (so Plotly asks
    for it); in zh the texts are Chinese and English has no dictionary (Plotly's own texts)."""
    bundle = _plotly_bundle()
    start = bundle.index('"src/components/modebar/buttons.js"')
    looked_up = set(re.findall(r"\b\w\(\w+,`([^`]+)`\)", bundle[start : start + 30_000]))
    shown = {"Download plot as a PNG", "Download plot", "Zoom", "Pan", "Zoom in", "Zoom out", "Autoscale", "Reset axes"}
    assert shown <= looked_up, shown - looked_up
    dictionary = toolbar_config("zh")["locales"]["zh-CN"]["dictionary"]
    assert shown <= set(dictionary)
    assert all(f"`{text}`" in bundle for text in dictionary), [t for t in dictionary if f"`{t}`" not in bundle]
    assert toolbar_config("en") == {}
    assert chinese_share(" ".join(dictionary.values())) >= 0.9


@pytest.mark.skipif("fcn-cbam" not in list_checkpoints(), reason="needs the shipped fcn-cbam (the lecture's CBAM step)")
def test_a_chart_on_a_chinese_page_carries_the_toolbar_dictionary():
    """The app's charts (attnviz.app.widgets.chart) pass toolbar_config to Plotly: in zh a lecture chart's
    config names the zh-CN locale with its dictionary; in English it names none."""
    import json

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/lecture.py")
    for language, expected in (("zh", toolbar_config("zh")), ("en", {})):
        at.session_state["language"] = language
        at.session_state["lecture_step"] = "cbam"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        config = json.loads(at.get("plotly_chart")[0].proto.config)
        assert {k: config[k] for k in ("locale", "locales") if k in config} == expected
