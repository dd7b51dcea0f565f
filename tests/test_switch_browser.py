"""Browser test: switching ECA off on the ECA page, in Debian's Chromium (attnviz.browser), shows the map of the
changed pixels and the numbers the library computes for that photo (attnviz.analysis.switch)."""

from pathlib import Path

import pytest

from attnviz.analysis.forward import analyse
from attnviz.analysis.switch import switch_effect, switch_groups
from attnviz.browser import CHROMIUM, SCRIPT_STATE, chromium_page, settled
from attnviz.capture.interventions import OFF, Intervention
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import translate
from attnviz.models import list_checkpoints, load_checkpoint

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif("fcn-eca" not in list_checkpoints(), reason="needs the fcn-eca checkpoint"),
]
TIMEOUT_MS = 180_000


def _settled(page) -> None:
    settled(page, TIMEOUT_MS)
    assert page.evaluate(f"() => {SCRIPT_STATE}") == "notRunning"
    assert page.locator("[data-testid='stException']").count() == 0


def test_switching_eca_off_shows_the_changed_pixels_and_the_librarys_numbers(server):
    sample = load_sample(list_samples()[0])
    model, _ = load_checkpoint("fcn-eca")
    before = analyse(model, sample.image, "fcn-eca")
    after = analyse(
        model, sample.image, "fcn-eca", intervention=Intervention(OFF, switch_groups(before.records)["eca"])
    )
    effect = switch_effect(before, after, sample.label)
    with chromium_page(TIMEOUT_MS) as page:
        page.goto(f"{server}/?model=fcn-eca")
        _settled(page)
        page.get_by_role("link", name=translate("nav.eca", "en")).first.click()
        _settled(page)
        page.get_by_text(translate("switch.title", "en")).wait_for()
        page.get_by_role("radiogroup", name=translate("switch.mode", "en")).get_by_text(
            translate("switch.modes.off", "en"), exact=True
        ).click()
        _settled(page)
        page.get_by_text(translate("switch.changed_title", "en")).wait_for(timeout=TIMEOUT_MS)
        values = {
            metric.locator("[data-testid='stMetricLabel']").inner_text().strip(): metric.locator(
                "[data-testid='stMetricValue']"
            ).inner_text()
            for metric in page.locator("[data-testid='stMetric']").all()
        }
        assert values[translate("switch.share", "en")] == f"{effect.changed_share:.2%}"
        assert values[translate("switch.miou", "en")] == f"{effect.miou_before:.1%} → {effect.miou_after:.1%}"
        # the map: the photo and the marks over it, drawn by Plotly
        chart = page.locator("[data-testid='stPlotlyChart']").filter(has_text=translate("switch.changed_title", "en"))
        assert chart.locator(".heatmaplayer, .imagelayer").count() >= 1
