"""Catalogs: the same keys and placeholders in every language; the lecture in both, with the library's numbers."""

import math
import re

import pytest
import torch
from prose import chinese_share, latin_words
from streamlit.testing.v1 import AppTest

from attnviz.analysis.forward import analyse
from attnviz.analysis.lecture import FORMULAS, STEP_MODELS, STEPS, step_numbers
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import LANGUAGES, Phrase, catalog, placeholders, translate
from attnviz.models import list_checkpoints, load_checkpoint
from attnviz.modules.eca import eca_formula_terms

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_a_phrase_prints_as_its_english_text_its_parts_included():
    maps = Phrase.of("dataflow.found.pooling_maps", count=2)
    phrase = Phrase.of("dataflow.found.pooling", height=4, width=6, maps=maps)
    assert str(phrase) == f"{phrase}" == "its softmax over 4x6 positions (2 maps; their mean is shown)"
    assert chinese_share(phrase.text("zh")) > 0.5  # another language is asked for by name


def test_every_language_has_the_same_keys_and_placeholders():
    english = catalog("en")
    for language in LANGUAGES:
        texts = catalog(language)
        assert set(texts) == set(english), (language, set(texts) ^ set(english))
        for key, text in english.items():
            assert placeholders(texts[key]) == placeholders(text), (language, key)
            assert texts[key].strip(), (language, key)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_texts_bold_and_italics_render(language):
    """CommonMark (Streamlit's Markdown) closes ** only where it is 'right-flanking': "**注意什么：**先" stays
    literal asterisks (a full-width colon before, a letter after). Each text is rendered as the page would,
    formulas and placeholders filled with a plain word."""
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("commonmark")
    word = "字" if language == "zh" else "word"
    broken = {}
    for key, text in catalog(language).items():
        filled = re.sub(r"\{[^{}]*\}", word, re.sub(r"\$[^$]*\$", "X", text))
        html = markdown.render(filled)
        if "**" in html or re.search(r"(?<![\w*])\*(?=\w)", re.sub(r"<[^>]+>", "", html)):
            broken[key] = text[:80]
    assert not broken, broken


def test_a_missing_key_is_an_error_not_an_english_fallback():
    with pytest.raises(KeyError):
        translate("lecture.no_such_text", "zh")
    with pytest.raises(ValueError):
        catalog("fr")


def test_placeholders_are_filled_with_their_formats():
    assert translate("lecture.step_of", "en", number=2, total=7, name="CBAM") == "Step 2 of 7: CBAM"
    assert translate("lecture.step_of", "zh", number=2, total=7, name="CBAM") == "第 2 步，共 7 步：CBAM"


def test_every_step_has_a_formula_and_a_model():
    assert set(FORMULAS) == set(STEPS) == set(STEP_MODELS)  # the order itself: tests/test_lecture_content.py


needs_models = pytest.mark.skipif(
    not set(STEP_MODELS.values()) <= set(list_checkpoints()),
    reason="needs the shipped checkpoints of every lecture step",
)


@pytest.fixture(scope="module")
def analyses():
    image = load_sample(list_samples()[0]).image
    return {step: analyse(load_checkpoint(name)[0], image, name) for step, name in STEP_MODELS.items()}


@needs_models
def test_each_steps_numbers_are_the_records_own(analyses):
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    se = step_numbers("se", analyses["se"])
    record = analyses["se"].records[se.layer]
    assert se.terms["channel"] == int(record.weights[0].argmax())
    assert sigmoid(se.terms["logit"]) == pytest.approx(se.terms["weight"], rel=1e-9)
    weights = record.weights[0].double()
    assert se.terms["saturated"] == pytest.approx(float(((weights < 0.05) | (weights > 0.95)).double().mean()))
    assert se.terms["pooled"] == pytest.approx(
        float(record.features[0, se.terms["channel"]].mean()), rel=1e-4, abs=1e-6
    )

    flexible = step_numbers("flexible", analyses["flexible"])
    assert sigmoid(flexible.terms["sum"]) == pytest.approx(flexible.terms["weight"], rel=1e-5)

    eca = step_numbers("eca", analyses["eca"])
    record = analyses["eca"].records[eca.layer]
    pooled = record.features[0].mean((1, 2))  # the layer's input, averaged: y of the formula, independently
    _, total = eca_formula_terms(record.kernel, pooled, eca.terms["channel"])
    assert eca.terms["sum"] == pytest.approx(total, abs=1e-4)
    assert sigmoid(eca.terms["sum"]) == pytest.approx(eca.terms["weight"], rel=1e-4)

    cbam = step_numbers("cbam", analyses["cbam"])
    gate = analyses["cbam"].records[cbam.layer].map[0]
    assert cbam.terms["gate_mean"] == pytest.approx(float(gate.double().mean()))

    ca = step_numbers("ca", analyses["ca"])
    record = analyses["ca"].records[ca.layer]
    c, row, col = ca.terms["channel"], ca.terms["row"], ca.terms["col"]
    assert ca.terms["product"] == pytest.approx(
        float(record.height_weights[0, c, row] * record.width_weights[0, c, col]), rel=1e-6
    )

    pam = step_numbers("pam", analyses["pam"])
    _, record = analyses["pam"].position
    row = record.row(pam.terms["query"]).flatten().double()
    assert pam.terms["key"] == int(row.argmax())
    assert pam.terms["entry"] == pytest.approx(float(row.max()), rel=1e-5)
    assert math.exp(pam.terms["energy"] - pam.terms["log_normaliser"]) == pytest.approx(pam.terms["entry"], rel=1e-9)

    cam = step_numbers("cam", analyses["cam"])
    record = analyses["cam"].records[cam.layer]
    flat = record.features[0].flatten(1).double()
    energy = flat @ flat.T
    argument = energy.max(1, keepdim=True).values - energy  # the official form, rebuilt from the module's input
    x_row = torch.softmax(argument[cam.terms["channel"]], 0)
    assert cam.terms["partner"] == int(x_row.argmax())
    assert cam.terms["entry"] == pytest.approx(float(x_row.max()), rel=1e-4)


# ---- the lecture page in both languages


@needs_models
@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_lecture_step_renders_and_in_chinese_its_prose_is_chinese(language):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/lecture.py")
    at.session_state["language"] = language
    for step in STEPS:
        at.session_state["lecture_step"] = step
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        page = at.main  # the page itself (the shared sidebar is not translated yet)
        shown = [m.value for m in page.markdown] + [s.value for s in page.subheader] + [c.value for c in page.caption]
        text = " ".join(shown)
        assert translate(f"lecture.{step}.intuition", language) in text
        assert any(FORMULAS[step] == x.value.strip("$\n") for x in at.latex)
        if language == "zh":
            assert chinese_share(text) >= 0.9, (step, chinese_share(text), latin_words(text))


@needs_models
def test_the_lecture_step_and_language_are_in_the_link():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"step": "cam", "lang": "zh"})
    at.run()
    at.switch_page("pages/lecture.py").run()
    assert not at.exception
    assert at.session_state["lecture_step"] == "cam" and at.session_state["language"] == "zh"
    at.button(key="lecture_previous").click().run()
    assert at.session_state["lecture_step"] == "pam"
    assert at.query_params["step"] in ("pam", ["pam"]) and at.query_params["lang"] in ("zh", ["zh"])


# ---- every page in both languages


def page_text(at: AppTest, where) -> str:
    """The visible prose of `where` (at.main or at.sidebar): headings, text, messages, expander and widget
    labels, options of select boxes and radios."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [element.value for element in getattr(where, kind)]
    parts += [expander.label for expander in where.expander]
    for kind in (
        "button",
        "checkbox",
        "toggle",
        "number_input",
        "slider",
        "select_slider",
        "selectbox",
        "radio",
        "text_input",
        "multiselect",
    ):
        for widget in getattr(where, kind):
            if getattr(widget, "key", None) == "language":
                continue  # the language switch is in both languages on purpose ("Language / 语言")
            parts.append(widget.label)
            if kind in ("selectbox", "radio"):
                parts += [str(option) for option in widget.options]
    return "\n".join(str(part) for part in parts)


PAGES = [  # (page, a shipped model that has what the page shows)
    ("pages/overview.py", "danet-eca"),
    ("pages/eca.py", "danet-eca"),
    ("pages/eca_kernel.py", "fcn-eca"),
    ("pages/flexible.py", "fcn-flexible"),
    ("pages/flexible.py", "fcn-se"),
    ("pages/flexible.py", "fcn-cbam"),
    ("pages/coord.py", "fcn-ca"),
    ("pages/position.py", "danet-eca-affinity"),
    ("pages/channel_map.py", "danet-eca"),
    ("pages/attribution.py", "danet-eca"),
    ("pages/compare.py", "fcn-none"),
]


@pytest.mark.parametrize("page,model", PAGES, ids=[f"{p.split('/')[1][:-3]}-{m}" for p, m in PAGES])
def test_every_page_renders_in_both_languages_and_in_chinese_its_prose_is_chinese(page, model):
    if model not in list_checkpoints():
        pytest.skip(f"{model} is not shipped")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page(page).run()
    at.selectbox(key="model").set_value(model).run()
    assert not at.exception, [e.value for e in at.exception]
    english = page_text(at, at.main)
    at.session_state["language"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for where in (at.main, at.sidebar):
        text = page_text(at, where)
        assert chinese_share(text) >= 0.9, (page, model, round(chinese_share(text), 3), latin_words(text))
    assert english != page_text(at, at.main)


# ---- a user's model whose modules are found by what they compute

DATAFLOW_MODEL = '''
from torch import nn
from timm.layers import EcaModule
from fixtures_attention import Squeeze, randomise
from fixtures_dataflow import ScaledDotProductAttention, SKAttention, TripletAttention


class Tokens(nn.Module):
    """A 4-head token attention over the flattened feature map (found by its softmax over positions)."""

    def __init__(self):
        super().__init__()
        self.pa = ScaledDotProductAttention(32, h=4)

    def forward(self, x):
        b, c, h, w = x.shape
        y = x.flatten(2).transpose(1, 2)
        return x + self.pa(y, y, y).transpose(1, 2).reshape(b, c, h, w)


def build():   # numbered modules, as an nn.Sequential names them: SE by structure, ECA from timm, the rest by dataflow
    return randomise(nn.Sequential(nn.Conv2d(3, 32, 16, stride=16), Squeeze(32), EcaModule(32), SKAttention(32),
                                   TripletAttention(), Tokens(), nn.Conv2d(32, 11, 1)))
'''


def test_a_user_models_overview_with_modules_found_by_what_they_compute_is_chinese_in_chinese(monkeypatch, tmp_path):
    """The Overview of a user's model whose attention the dataflow reader found (branch weights, gate planes, a
    spatial gate, token attention heads) beside one verified by structure and one read from timm: in zh its prose
    and its findings table (who found each module, the check, drawn or not) are Chinese; module names, families
    and map sizes are names."""
    (tmp_path / "dataflow_zoo.py").write_text(DATAFLOW_MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["app.py", "--model", "dataflow_zoo:build"])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/overview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    english = at.dataframe[0].value
    assert set(english["reader"]) == {"structure (verified)", "library (timm / torchvision)", "what it computes"}
    at.session_state["language"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["module"]) == list(english["module"]) and (table["drawn"] == "是").all(), table.to_string()
    cells = "\n".join(table[column].str.cat(sep="\n") for column in ("reader", "map", "check", "drawn"))
    text = page_text(at, at.main) + "\n" + cells
    assert chinese_share(text) >= 0.9, (round(chinese_share(text), 3), latin_words(text))
    for row in table.itertuples():
        assert chinese_share(row.check) >= 0.7, row  # each check in Chinese, beside its op's name ("sigmoid_")
