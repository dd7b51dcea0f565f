"""The lecture deck (python -m attnviz.deck): a PDF that opens, one 16:9 landscape page per step in the lecture's
order, each page's text holding its step's title and this photo's numbers as the test's own forward passes
give them (attnviz.analysis.lecture.step_numbers), in English and in Chinese with real glyphs."""

import io
import re
import string
from pathlib import Path

import numpy as np
import pytest

from attnviz.analysis.forward import analyse
from attnviz.analysis.lecture import STEP_COMPANIONS, STEP_MODELS, STEPS, step_numbers
from attnviz.analysis.views import telling_channel
from attnviz.browser import CHROMIUM
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import catalog, translate
from attnviz.models import list_checkpoints, load_checkpoint

PHOTO = "Seq05VD_f00540"
LANGUAGES = ("en", "zh")
EXAMPLE_PHOTOS = 4  # the flexible step's example channel changes across the first 4 sample photos (the page's)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        not {*STEP_MODELS.values(), *STEP_COMPANIONS.values()} <= set(list_checkpoints()),
        reason="needs every lecture step's shipped checkpoint",
    ),
]


@pytest.fixture(scope="module")
def decks():
    """Both languages' decks of one photo: the models run once, one Chromium prints both."""
    from attnviz.deck import deck_pdfs

    return deck_pdfs(PHOTO, LANGUAGES)


@pytest.fixture(scope="module")
def readers(decks):
    from pypdf import PdfReader

    return {language: PdfReader(io.BytesIO(printed.pdf)) for language, printed in decks.items()}


@pytest.fixture(scope="module")
def terms():
    """Each step's terms from forward passes of the test's own (the photo's centre pixel, its labels; for the
    flexible step the example channel of the Lecture page's rule: telling_channel over the first samples)."""
    sample = load_sample(PHOTO)
    found = {}
    for step in STEPS:
        model = load_checkpoint(STEP_MODELS[step])[0]
        analysis = analyse(model, sample.image, STEP_MODELS[step])
        numbers = step_numbers(step, analysis, label=sample.label)
        if step == "flexible":
            layer = numbers.layer
            across = np.stack(
                [
                    analyse(model, load_sample(p).image).records[layer].weights[0].double().numpy()
                    for p in list_samples()[:EXAMPLE_PHOTOS]
                ]
            )
            channel = telling_channel(analysis.records[layer].weights[0].double().numpy(), across)
            if channel is not None:
                numbers = step_numbers(step, analysis, channel=channel)
        found[step] = numbers.terms
    return found


def _flat(text: str) -> str:
    """Text without whitespace: a PDF's extracted text breaks lines (and may space words) where the page did."""
    return re.sub(r"\s+", "", text)


def _shown_numbers(step: str, terms: dict, language: str) -> set[str]:
    """The step's numbers as its notice and terms texts print them, with 3 or more decimals (a short one like
    "0.1" could match anything); values that print as 0 or 1 are left out for the same reason."""
    shown = set()
    for key in (f"lecture.{step}.notice", f"lecture.{step}.terms"):
        for _, name, spec, _ in string.Formatter().parse(catalog(language)[key]):
            match = re.fullmatch(r"\.(\d+)f", spec or "")
            if name in terms and match and int(match.group(1)) >= 3:
                text = format(terms[name], spec)
                if text.lstrip("-") not in (format(0, spec), format(1, spec)):
                    shown.add(text)
    return shown


def test_the_deck_has_one_16_by_9_landscape_page_per_step_and_every_slide_fits(decks, readers):
    for language in LANGUAGES:
        assert decks[language].pdf.startswith(b"%PDF-")
        assert len(readers[language].pages) == len(STEPS) == 7
        for page in readers[language].pages:
            width, height = float(page.mediabox.width), float(page.mediabox.height)
            assert abs(width / height - 16 / 9) < 0.01 and width > height, (width, height)
        assert decks[language].overflowing == ()  # at the smallest type every slide held its text


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_page_holds_its_steps_title_and_this_photos_numbers(readers, terms, language):
    for step, page in zip(STEPS, readers[language].pages, strict=True):
        text = _flat(page.extract_text())
        assert _flat(translate(f"lecture.{step}.name", language)) in text, (step, text[:200])
        expected = _shown_numbers(step, terms[step], language)
        assert expected, step  # every step prints numbers with decimals
        missing = {number for number in expected if number not in text}
        assert not missing, (step, missing, text)
        assert PHOTO in text  # the caption says which photo


def test_the_chinese_deck_is_set_in_a_cjk_font_not_boxes(readers):
    """The Chinese titles come back out of the PDF as text (above), and the font that draws them is a CJK
    face embedded in the file (Debian's fonts-noto-cjk), not a fallback's empty boxes."""
    fonts = set()
    for page in readers["zh"].pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()  # Chromium writes most faces as Type3: the name is in its descriptor
            descriptor = font.get("/FontDescriptor")
            fonts.add(str(font.get("/BaseFont") or (descriptor.get_object().get("/FontName") if descriptor else "")))
    assert any("CJK" in name for name in fonts), fonts
    first = readers["zh"].pages[0].extract_text()
    assert re.search(r"[\u4e00-\u9fff]{4}", first), first[:200]
