"""Every page in both languages, on a desktop (1400 x 1000) and a phone (390 x 844): nothing is cut off (no
formula wider than its box, no table or chart past the page, no sideways scrolling, no table that scrolls on
the desktop), no character drawn as an empty box, and no page raises. In Chromium, via python -m
attnviz.screenshots's own measure."""

from pathlib import Path

import pytest

from attnviz.browser import CHROMIUM, chromium_page
from attnviz.models import list_checkpoints
from attnviz.screenshots import MISSING_GLYPHS_JS, PAGES, SIZES, shoot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        not {m for _, m in PAGES.values() if m} <= set(list_checkpoints()),
        reason="needs every shipped checkpoint the pages are shown with",
    ),
]


@pytest.mark.parametrize("size", list(SIZES))
def test_no_page_in_either_language_is_cut_off(server, tmp_path, size):
    shots = shoot(server, tmp_path, sizes=(size,))
    assert len(shots) == 2 * len(PAGES)
    problems = {(s.page, s.language): s.overflowing for s in shots if s.overflowing}
    assert not problems, problems
    assert not [s for s in shots if s.errors]
    assert not {(s.page, s.language): s.missing_glyphs for s in shots if s.missing_glyphs}
    assert all(Path(s.path).stat().st_size > 10_000 for s in shots)


def test_the_glyph_measure_tells_a_drawn_character_from_an_empty_box():
    """Chinese text is drawn with real glyphs (Debian's fonts-noto-cjk, installed by make test and .ci/run),
    and a private-use character, which no font draws, is reported as a box."""
    with chromium_page() as page:
        page.set_content("<div data-testid='stMain'><p>注意力 attention 通道\ue000</p></div>")
        assert page.evaluate(MISSING_GLYPHS_JS) == ["\ue000"]
