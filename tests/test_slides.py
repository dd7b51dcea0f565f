"""Slides out: a chart saved with its camera button is a PNG at twice its shown size or an SVG, each with the
figure's colour bar and its caption (module, model, photo, layer) in the page's language. In Chromium."""

import re
import struct
from pathlib import Path

import pytest

from attnviz.analysis.lecture import STEP_MODELS
from attnviz.browser import CHROMIUM, SCRIPT_STATE, chromium_page, settled
from attnviz.data.samples import list_samples
from attnviz.i18n import translate
from attnviz.models import list_checkpoints

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        not {STEP_MODELS["se"], "danet-eca"} <= set(list_checkpoints()),
        reason="needs the shipped fcn-se and danet-eca checkpoints",
    ),
]
TIMEOUT_MS = 180_000


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _save(page, chart, name: str | None = None) -> bytes:
    """Click the chart's camera button and return the file it saves (named `name`, when given)."""
    chart.hover()
    button = chart.locator(".modebar-btn").first  # the camera: its title is in the page's language
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        button.click()
    if name is not None:
        assert download.value.suggested_filename == name
    return Path(download.value.path()).read_bytes()


def _settle(page):
    settled(page, TIMEOUT_MS)
    assert page.evaluate(f"() => {SCRIPT_STATE}") == "notRunning"
    assert page.locator("[data-testid='stException']").count() == 0


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_lecture_figure_saves_as_png_at_twice_its_size_and_as_svg_with_its_caption(server, language):
    with chromium_page(TIMEOUT_MS) as page:
        page.goto(f"{server}/lecture?step=se&lang={language}")
        _settle(page)
        chart = page.locator("[data-testid='stPlotlyChart']").first
        chart.wait_for()
        shown = chart.locator(".js-plotly-plot").first.evaluate("el => [el._fullLayout.width, el._fullLayout.height]")
        name = f"attnviz-lecture-se-{STEP_MODELS['se']}-{list_samples()[0]}.png"  # what it is: step, model, photo
        width, height = _png_size(_save(page, chart, name))
        assert (width, height) == (2 * shown[0], 2 * shown[1])

        page.get_by_text("SVG", exact=True).click()  # the sidebar's figure format
        _settle(page)
        chart = page.locator("[data-testid='stPlotlyChart']").first
        svg = _save(page, chart).decode("utf-8")
        assert svg.lstrip().startswith("<svg")
        text = re.sub(r"<[^>]+>", "", svg)
        for part in (
            translate("lecture.se.name", language),
            translate("figures.caption_model", language, model=STEP_MODELS["se"]),
            translate("figures.caption_photo", language, photo=list_samples()[0]),
        ):
            assert part in text, part


# each Plotly chart shown in present mode: its drawing's box on the screen against its container's (a chart
# drawn larger than its box is cut off), and the container's bottom against the screen's
_CHART_BOXES_JS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
  .filter(el => el.getBoundingClientRect().height > 0)
  .map(el => {
    const box = el.getBoundingClientRect(), svg = el.querySelector('.main-svg').getBoundingClientRect();
    return {width: svg.width - box.width, height: svg.height - box.height, bottom: box.bottom - innerHeight};
  })"""


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_a_present_mode_chart_fits_its_box_and_the_screen_at_the_projectors_sizes(server, size):
    """presentation.css zooms the slide at 1920 x 1080; the chart shown is the one drawn for that screen, its
    drawing no larger than its box (Plotly under a CSS zoom drew 1.5 times too large and was cut off) and
    its box on the screen. The CBAM step: a map with a colour bar and an axis title."""
    with chromium_page(TIMEOUT_MS, size) as page:
        page.goto(f"{server}/lecture?step=cbam&present=1&lang=en")
        _settle(page)
        shown_bar = "[...document.querySelectorAll('.colorbar')].some(el => el.getBoundingClientRect().height > 0)"
        page.wait_for_function(f"() => {shown_bar}", timeout=30_000)
        (shown,) = page.evaluate(_CHART_BOXES_JS)  # one of the copies per zoom is shown
        assert shown["width"] <= 1 and shown["height"] <= 1, shown
        assert shown["bottom"] <= 0, shown


def test_the_pins_and_the_panel_beside_them_save_as_one_figure_with_one_colour_bar(server):
    with chromium_page(TIMEOUT_MS) as page:
        page.goto(f"{server}/position?model=danet-eca&pins=100x200,300x120&beside=danet-eca-affinity")
        _settle(page)
        page.get_by_text(translate("widgets.slide_toggle", "en")).click()
        _settle(page)
        chart = (
            page.locator("[data-testid='stPlotlyChart']")
            .filter(has=page.locator(".colorbar"))
            .filter(has_text="pin 2")
            .first
        )
        chart.wait_for()
        panels = chart.locator(".js-plotly-plot").first.evaluate("el => el.data.filter(t => t.type === 'image').length")
        assert panels == 4  # two pins on each of two models
        assert chart.locator(".colorbar").count() == 1
        text = chart.inner_text()
        assert "pin 1: x = 100, y = 200" in text and "danet-eca-affinity" in text
