"""The lecture's present mode as slides: one screenshot per step, what of it is below the screen, and how small
its text is.

    python -m attnviz.slide_shots --out screenshots/slides              # 7 steps x 2 languages x 2 sizes
    python -m attnviz.slide_shots --steps pam cam --languages zh --sizes 1280x720

Starts the app, opens /lecture?step=...&present=1 in headless Chromium at each size (a projector's
1280 x 720 and 1920 x 1080), waits until the run is over and saves what the screen shows (not the whole page:
a slide is what the room sees). For each it measures how many pixels of the step (its title, figure, formula,
numbers and the Previous / Next buttons) lie below the screen, the smallest text size on the screen (Plotly's
tick labels and the live figures' readouts included), what is cut off sideways (attnviz.screenshots'
`overflowing`) and characters drawn as empty boxes. The report (JSON) goes to stdout and report.json; the exit
status is 1 when any step has something below the screen, cut off or missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from attnviz.analysis.lecture import STEPS
from attnviz.browser import SCRIPT_STATE, chromium, settled, streamlit_server
from attnviz.screenshots import MISSING_GLYPHS_JS, overflowing, write_report

__all__ = ["SLIDE_SIZES", "Slide", "below_the_screen", "smallest_text", "shoot_slides"]

ROOT = Path(__file__).resolve().parents[1]
SLIDE_SIZES = {"1280x720": (1280, 720), "1920x1080": (1920, 1080)}

# How far the step's last visible part reaches below the window, in px (0: it all fits), and which parts do.
# Streamlit scrolls its main block, not the document: the block's scroll height is the page's height.
_BELOW_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const limit = window.innerHeight;
  const parts = [];
  const blocks = document.querySelectorAll('[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]');
  for (const el of blocks) {
    const box = el.getBoundingClientRect();
    if (box.height === 0 || el.closest('details:not([open])')) continue;
    if (box.bottom > limit + 1) {
      const what = el.querySelector('[data-testid]')?.getAttribute('data-testid') || 'element';
      parts.push(`${what} (${(el.innerText || '').trim().slice(0, 30)}): ${Math.round(box.bottom - limit)} px`);
    }
  }
  return { below: Math.max(0, main.scrollHeight - main.clientHeight), parts };
}"""

# The smallest text on the screen inside the main block, shadow roots (the live figures) and Plotly's SVG text
# included: its size in screen px (CSS zoom counted) and what it says. Text drawn into a canvas is not seen.
_SMALLEST_JS = """() => {
  const found = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) visit(el.shadowRoot);
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.replace(/[\\s\\u200b]/g, ''));
      if (!own) continue;
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0 || box.top >= window.innerHeight || box.bottom <= 0) continue;
      if (el.closest('details:not([open])') || el.closest('[data-testid="stHeader"]')) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || style.opacity === '0') continue;
      found.push([parseFloat(style.fontSize) * (el.currentCSSZoom || 1), el.textContent.trim().slice(0, 30)]);
    }
  };
  visit(document.querySelector('[data-testid="stMain"]') || document.body);
  found.sort((a, b) => a[0] - b[0]);
  return found[0] || [0, ''];
}"""


@dataclass
class Slide:
    step: str
    language: str
    size: str
    path: str
    below: int  # px of the step below the screen
    below_parts: list[str]  # which parts, and how far
    smallest_px: float  # the smallest text on the screen
    smallest_text: str
    overflowing: list[str]
    errors: int
    missing_glyphs: list[str]


def below_the_screen(page) -> dict:
    """{'below': px, 'parts': [...]}: how far the open page reaches below the window, and which parts do."""
    return page.evaluate(_BELOW_JS)


def smallest_text(page) -> tuple[float, str]:
    """The smallest text size on the screen (px) and the text set in it."""
    size, text = page.evaluate(_SMALLEST_JS)
    return float(size), text


def shoot_slides(
    url: str, out: Path, steps=STEPS, languages=("en", "zh"), sizes=tuple(SLIDE_SIZES), timeout_ms: int = 180_000
) -> list[Slide]:
    """Screenshots of the lecture's `steps` in present mode x `languages` x `sizes`, into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    slides = []
    for size in sizes:
        with chromium(timeout_ms, SLIDE_SIZES[size]) as open_page:
            page = open_page()
            for language in languages:
                for step in steps:
                    page.goto(f"{url}/lecture?step={step}&present=1&lang={language}")
                    settled(page, timeout_ms)
                    page.wait_for_function(f"() => {SCRIPT_STATE} === 'notRunning'", timeout=timeout_ms)
                    page.wait_for_timeout(800)  # charts, live figures and formulas lay out after the run
                    file = out / f"{step}-{language}-{size}.png"
                    page.screenshot(path=str(file))  # what the room sees: the screen, not the whole page
                    below = below_the_screen(page)
                    size_px, text = smallest_text(page)
                    slides.append(
                        Slide(
                            step,
                            language,
                            size,
                            str(file),
                            int(below["below"]),
                            below["parts"],
                            size_px,
                            text,
                            overflowing(page, desktop=True),
                            page.locator("[data-testid='stException']").count(),
                            page.evaluate(MISSING_GLYPHS_JS),
                        )
                    )
                    print(json.dumps(asdict(slides[-1]), ensure_ascii=False), file=sys.stderr, flush=True)
    return slides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.slide_shots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots") / "slides")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--languages", nargs="+", default=["en", "zh"], choices=["en", "zh"])
    parser.add_argument("--sizes", nargs="+", default=list(SLIDE_SIZES), choices=list(SLIDE_SIZES))
    args = parser.parse_args(argv)
    with streamlit_server(ROOT / "app.py", ROOT) as url:
        slides = shoot_slides(url, args.out, args.steps, args.languages, args.sizes)
    write_report(args.out, slides)
    return 1 if any(s.below or s.overflowing or s.errors or s.missing_glyphs for s in slides) else 0


if __name__ == "__main__":
    raise SystemExit(main())
