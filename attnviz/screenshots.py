"""Every page of the app in every language at a desktop and a phone size: screenshots, and what overflows.

    python -m attnviz.screenshots --out screenshots/          # 10 pages x 2 languages x 2 sizes
    python -m attnviz.screenshots --pages lecture eca --languages zh --sizes 390x844

Starts the app (the shipped checkpoints) in the background, opens each page in headless Debian Chromium
(attnviz.browser) with its model and language in the link, waits until the run is over, saves a full-page
PNG and measures what a reader would see cut off: a formula wider than its box, a table or chart wider than
the page, the page itself scrolling sideways, characters drawn as empty boxes. The report (JSON on stdout, and
report.json beside the PNGs)
lists them per page; the browser tests assert that it is empty.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from attnviz.browser import SCRIPT_STATE, chromium, settled, streamlit_server

__all__ = ["write_report", "PAGES", "SIZES", "Shot", "MISSING_GLYPHS_JS", "overflowing", "shoot"]

ROOT = Path(__file__).resolve().parents[1]

# (url path, a shipped model that has what the page shows): every page of app.py
PAGES = {
    "overview": ("", "danet-eca"),
    "lecture": ("lecture", None),
    "eca": ("eca", "danet-eca"),
    "eca_kernel": ("eca_kernel", "fcn-eca"),
    "flexible": ("flexible", "fcn-cbam"),
    "coord": ("coord", "fcn-ca"),
    "position": ("position", "danet-eca-affinity"),
    "channel_map": ("channel_map", "danet-eca"),
    "attribution": ("attribution", "danet-eca"),
    "compare": ("compare", "fcn-none"),
}
SIZES = {"desktop": (1400, 1000), "phone": (390, 844)}

# What is cut off: a formula whose box scrolls, a table / chart / image wider than the main column, text cut
# with an ellipsis, Markdown left as asterisks, a page that scrolls sideways. Each entry says what and where.
_OVERFLOW_JS = """() => {
  const found = [];
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const limit = main.getBoundingClientRect().right + 1;
  const name = el => (el.getAttribute('data-testid') || el.className || el.tagName).toString().slice(0, 40);
  for (const el of document.querySelectorAll('.katex-display, .katex:not(.katex-display .katex)')) {
    const box = el.closest('[data-testid="stElementContainer"]') || el.parentElement;
    const over = el.scrollWidth - el.clientWidth;
    const right = el.getBoundingClientRect().right - box.getBoundingClientRect().right;
    // KaTeX's glyphs overhang their box by a pixel or two
    if (over > 3 || right > 3)
      found.push(`formula ${el.textContent.slice(0, 40)}: ${Math.max(over, right).toFixed(0)} px`);
  }
  for (const el of document.querySelectorAll('[data-testid="stTable"], [data-testid="stPlotlyChart"], '
                                             + '[data-testid="stImage"], [data-testid="stHorizontalBlock"]')) {
    const right = el.getBoundingClientRect().right - limit;
    if (right > 1) found.push(`${name(el)}: ${right.toFixed(0)} px past the page`);
  }
  for (const el of main.querySelectorAll('p, span, a, label, div')) {
    if (el.children.length === 0 && getComputedStyle(el).textOverflow === 'ellipsis'
        && el.scrollWidth > el.clientWidth + 1)
      found.push(`text cut off: ${el.textContent.slice(0, 40)}`);
  }
  for (const el of main.querySelectorAll('[data-testid="stMarkdownContainer"]')) {
    const text = el.innerText;
    const at = text.indexOf('**');
    if (at >= 0) found.push(`Markdown not rendered: ${text.slice(Math.max(0, at - 20), at + 20)}`);
  }
  const sideways = document.documentElement.scrollWidth - window.innerWidth;
  if (sideways > 1) found.push(`the page scrolls sideways by ${sideways} px`);
  return found;
}"""

# Characters of the page drawn as empty boxes (no font has them): each distinct character of the main block's
# text is drawn in the page's own font into a canvas and compared with the drawing of a codepoint no font has
# (U+0378, unassigned), which is the fallback box itself. With Debian's fonts-noto-cjk missing, every Chinese
# character matches it.
MISSING_GLYPHS_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const family = getComputedStyle(main.querySelector('p') || main).fontFamily;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 40;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const draw = ch => {
    ctx.clearRect(0, 0, 40, 40);
    ctx.font = `28px ${family}`;
    ctx.fillText(ch, 4, 32);
    return ctx.getImageData(0, 0, 40, 40).data.join(',');
  };
  const box = draw('\u0378');
  const seen = new Set([...main.innerText].filter(ch => ch.trim() && ch.codePointAt(0) > 0x2e7f));
  return [...seen].filter(ch => draw(ch) === box);
}"""

# A data frame scrolls inside its own box by design; at the desktop size it must fit without scrolling.
_TABLE_SCROLLS_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
  .filter(el => { const s = el.querySelector('.dvn-scroller'); return s && s.scrollWidth > s.clientWidth + 1; })
  .map(el => 'data frame: scrolls sideways')"""


@dataclass
class Shot:
    page: str
    language: str
    size: str
    path: str
    overflowing: list[str]
    errors: int
    missing_glyphs: list[str]  # characters drawn as empty boxes (see MISSING_GLYPHS_JS)


def overflowing(page, desktop: bool) -> list[str]:
    """What is cut off on the open page (see _OVERFLOW_JS); at desktop size, data frames that scroll too."""
    found = page.evaluate(_OVERFLOW_JS)
    return found + (page.evaluate(_TABLE_SCROLLS_JS) if desktop else [])


def _whole_page(page, file: Path, size: tuple[int, int]) -> None:
    """A PNG of the whole page: Streamlit scrolls inside its main block, not the document, so the window is
    made as tall as that block's content for the shot, then set back."""
    height = page.evaluate(
        "() => Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0, window.innerHeight)"
    )
    page.set_viewport_size({"width": size[0], "height": min(int(height) + 40, 12000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(file))
    page.set_viewport_size({"width": size[0], "height": size[1]})


def shoot(
    url: str, out: Path, pages=tuple(PAGES), languages=("en", "zh"), sizes=tuple(SIZES), timeout_ms: int = 180_000
) -> list[Shot]:
    """Screenshots of `pages` x `languages` x `sizes` of the app at `url`, into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    for size in sizes:
        with chromium(timeout_ms, SIZES[size]) as open_page:
            page = open_page()
            for name in pages:
                path, model = PAGES[name]
                for language in languages:
                    query = f"?lang={language}" + (f"&model={model}" if model else "")
                    page.goto(f"{url}/{path}{query}")
                    settled(page, timeout_ms)
                    page.wait_for_function(f"() => {SCRIPT_STATE} === 'notRunning'", timeout=timeout_ms)
                    page.wait_for_timeout(800)  # charts and formulas lay out after the run
                    found = overflowing(page, size == "desktop")
                    file = out / f"{name}-{language}-{size}.png"
                    _whole_page(page, file, SIZES[size])
                    shots.append(
                        Shot(
                            name,
                            language,
                            size,
                            str(file),
                            found,
                            page.locator("[data-testid='stException']").count(),
                            page.evaluate(MISSING_GLYPHS_JS),
                        )
                    )
    return shots


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    parser.add_argument("--languages", nargs="+", default=["en", "zh"], choices=["en", "zh"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args(argv)
    with streamlit_server(ROOT / "app.py", ROOT) as url:
        shots = shoot(url, args.out, args.pages, args.languages, args.sizes)
    write_report(args.out, shots)
    return 1 if any(s.overflowing or s.errors or s.missing_glyphs for s in shots) else 0


def write_report(out: Path, shots) -> None:
    """The shots' measures (dataclasses) as `out`/report.json and on standard output."""
    report = [asdict(s) for s in shots]
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    raise SystemExit(main())
