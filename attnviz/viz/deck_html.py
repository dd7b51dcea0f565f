"""The lecture deck as one HTML document of 16:9 slides, for Chromium to print (attnviz.deck writes the PDF).

Everything the document needs travels inside it, read from packages already installed, so it loads nothing:
- the charts are Plotly figures drawn by the plotly.js bundle of the plotly package (plotly.offline);
- the formulas are typeset by the KaTeX bundle Streamlit ships for st.latex (its static folder), with KaTeX's
  own style and fonts taken from Streamlit's stylesheet and inlined, so a slide's formula looks as on the
  Lecture page; without that bundle (another Streamlit build) the LaTeX source is shown as code;
- the prose is Markdown as the catalogs hold it (CommonMark via markdown-it, as Streamlit renders it), with
  inline $...$ formulas typeset by KaTeX too;
- Chinese is set in the system's Noto Sans CJK SC (Debian's fonts-noto-cjk), cut down by fontTools to the
  characters the deck uses and inlined. Cut down, its character map holds the CJK ideographs only: the whole
  font draws 力 and the Kangxi radical ⼒ with one glyph, and Chromium's PDF then wrote that glyph's text as the
  radical, so a copied or searched 注意力 read 注意⼒. Without fontTools or the font, the system's font is used.

Each slide is 1280 x 720 CSS pixels (a 13.33 x 7.5 inch page). The text column's type starts at 21 px (the
Lecture page's presentation view) and shrinks, 0.5 px at a time and not below 11 px, until the slide holds it;
a slide that still overflows is reported (window.__deck).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import plotly.graph_objects as go

__all__ = ["SlideContent", "deck_document", "markdown_html", "katex_assets", "cjk_faces", "SLIDE_PX", "FONT_STACK"]

SLIDE_PX = (1280, 720)
CJK_FAMILY = "Deck CJK"  # the inlined cut of Noto Sans CJK SC (cjk_faces)
FONT_STACK = f"'Source Sans', '{CJK_FAMILY}', 'Noto Sans CJK SC', 'Noto Sans', 'DejaVu Sans', sans-serif"
_MATH = re.compile(r"\$([^$]+)\$")


@dataclass(frozen=True)
class SlideContent:
    """One slide's texts (Markdown), formula (LaTeX) and figures, in the deck's language."""

    step: str
    heading: str
    note: str  # the model and the photo
    intuition: str
    notice_title: str
    notice: str
    more: str  # a paragraph of its own after what to notice ("" where there is none)
    formula: str
    numbers_title: str
    numbers: str
    caption: str  # what the slide is: step, model, photo
    figures: list[go.Figure] = field(default_factory=list)


def _streamlit_static() -> Path | None:
    """Streamlit's static files (KaTeX's script, style and fonts; Source Sans), found without importing it:
    only the app layer imports Streamlit."""
    spec = importlib.util.find_spec("streamlit")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).resolve().parent / "static" / "static"
    return folder if folder.is_dir() else None


def _font_data_url(match: re.Match, media: Path) -> str:
    path = media / Path(match.group(1)).name
    if not path.is_file():
        return match.group(0)
    return f"url(data:font/woff2;base64,{base64.b64encode(path.read_bytes()).decode('ascii')})"


@lru_cache(maxsize=1)
def katex_assets() -> tuple[str, str] | None:
    """(script defining window.katex, its stylesheet with the fonts inlined) from Streamlit's static files; None
    when this Streamlit build does not ship them as expected (the deck then shows the LaTeX source)."""
    static = _streamlit_static()
    if static is None:
        return None
    bundles = sorted((static / "js").glob("katex.*.js"))
    sheets = sorted((static / "css").glob("index.*.css"))
    if len(bundles) != 1 or not sheets:
        return None
    module = bundles[0].read_text(encoding="utf-8")
    # the bundle is one self-contained ES module whose only export is KaTeX: make it a classic script
    exported = re.search(r"export\s*\{\s*([\w$]+)\s+as\s+default\s*\}\s*;?\s*$", module)
    if exported is None or re.search(r"^\s*import[\s{*]", module, re.M):
        return None
    script = f'(function(){{"use strict";{module[: exported.start()]};window.katex={exported.group(1)};}})();'
    css = sheets[0].read_text(encoding="utf-8")
    rules = re.findall(r"@font-face\{[^}]*KaTeX[^}]*\}", css) + re.findall(r"(?<=[}\s])\.katex[^{}]*\{[^}]*\}", css)
    if not rules:
        return None
    media = static / "media"
    style = re.sub(r"url\(([^)]+\.woff2)\)", lambda m: _font_data_url(m, media), "".join(rules))
    return script, style


@lru_cache(maxsize=1)
def _text_font() -> str:
    """Streamlit's own text face (Source Sans), inlined, when its static files hold it; else nothing."""
    static = _streamlit_static()
    faces = sorted((static / "media").glob("SourceSansVF-Upright*.woff2")) if static else []
    if not faces:
        return ""
    data = base64.b64encode(faces[0].read_bytes()).decode("ascii")
    return (
        "@font-face{font-family:'Source Sans';font-weight:200 900;font-style:normal;"
        f"src:url(data:font/woff2;base64,{data}) format('woff2')}}"
    )


def _font_file(pattern: str) -> tuple[str, int] | None:
    """(file, index in a collection) of the system font fontconfig matches to `pattern`, if it is a CJK face."""
    try:
        found = subprocess.run(
            ["fc-match", "-f", "%{file}\\n%{index}", pattern], capture_output=True, text=True, timeout=10, check=True
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    if len(found) != 2 or "CJK" not in Path(found[0]).name or not Path(found[0]).is_file():
        return None
    return found[0], int(found[1] or 0)


def _cjk_face(characters: str, weight: int) -> str:
    """An @font-face of Noto Sans CJK SC at `weight` holding only `characters` (and what its layout needs to set
    them), inlined; "" without fontTools or the font."""
    try:
        from fontTools import subset
        from fontTools.ttLib import TTFont
    except ImportError:
        return ""
    found = _font_file(f"Noto Sans CJK SC:weight={'bold' if weight >= 600 else 'regular'}")
    if found is None or not characters:
        return ""
    font = TTFont(found[0], fontNumber=found[1])
    options = subset.Options()
    options.layout_features = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted({ord(c) for c in characters}))
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.save(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f"@font-face{{font-family:'{CJK_FAMILY}';font-weight:{weight};font-style:normal;"
        f"src:url(data:font/otf;base64,{data}) format('opentype')}}"
    )


def cjk_faces(text: str) -> str:
    """The regular and bold CJK faces for the CJK characters of `text` (from U+2E80 on: ideographs, their
    punctuation and full-width forms), as CSS; "" where `text` has none."""
    characters = "".join(sorted({c for c in text if ord(c) >= 0x2E80}))
    return "".join(_cjk_face(characters, weight) for weight in (400, 700)) if characters else ""


def _math(tex: str, display: bool = False) -> str:
    kind = "math display" if display else "math"
    return f'<span class="{kind}" data-tex="{html.escape(tex, quote=True)}"><code>{html.escape(tex)}</code></span>'


def markdown_html(text: str) -> str:
    """A catalog text (CommonMark, as Streamlit shows it, with inline $...$ formulas) as inline HTML."""
    from markdown_it import MarkdownIt

    formulas: list[str] = []

    def keep(match: re.Match) -> str:
        formulas.append(match.group(1))
        return f"MATHSPAN{len(formulas) - 1}END"

    rendered = MarkdownIt("commonmark").renderInline(_MATH.sub(keep, text))
    return re.sub(r"MATHSPAN(\d+)END", lambda m: _math(formulas[int(m.group(1))]), rendered)


_CSS = """
@page { size: 1280px 720px; margin: 0; }
html, body { margin: 0; padding: 0; background: #fff; }
body { font-family: FONT_STACK; color: #262730;
  font-variant-ligatures: no-common-ligatures; }  /* "ffi" stays three letters: the PDF's text searches */
.slide { width: 1280px; height: 720px; box-sizing: border-box; padding: 26px 36px 14px; display: flex;
  flex-direction: column; overflow: hidden; position: relative; }
.slide + .slide { break-before: page; }
.slide header h1 { font-size: 30px; line-height: 1.15; margin: 0 0 4px; font-weight: 650; }
.slide header p { font-size: 15px; margin: 0 0 10px; color: #555; }
.body { flex: 1; min-height: 0; display: flex; gap: 24px; }
.figures { flex: 0 0 640px; display: flex; flex-wrap: wrap; align-content: flex-start; justify-content: center;
  gap: 4px; margin: 0; }
.text { flex: 1; min-width: 0; overflow: hidden; font-size: 21px; line-height: 1.38; }
.text p { margin: 0 0 0.55em; }
.formula { text-align: center; margin: 0.2em 0 0.6em; }
.formula .katex-display { margin: 0; }
footer { display: flex; justify-content: space-between; gap: 16px; font-size: 12px; color: #666;
  border-top: 1px solid #ddd; padding-top: 6px; margin-top: 8px; }
footer .number { white-space: nowrap; }
code { font-size: 0.85em; }
"""

_SCRIPT = """
(async () => {
  try {
    for (const node of document.querySelectorAll('.math[data-tex]')) {
      if (!window.katex) break;
      katex.render(node.dataset.tex, node, {displayMode: node.classList.contains('display'), throwOnError: false,
                                            output: 'html'});
    }
    const figures = JSON.parse(document.getElementById('figures').textContent);
    await Promise.all(figures.map(([id, figure]) =>
      Plotly.newPlot(id, figure.data, figure.layout, {staticPlot: true, displayModeBar: false})));
    await document.fonts.ready;
    const overflowing = [];
    for (const slide of document.querySelectorAll('.slide')) {
      const text = slide.querySelector('.text');
      let size = 21;
      const over = () => text.scrollHeight > text.clientHeight + 1 || slide.scrollHeight > slide.clientHeight + 1;
      while (over() && size > 11) { size -= 0.5; text.style.fontSize = size + 'px'; }
      if (over()) overflowing.push(slide.dataset.step);
    }
    window.__deck = {overflowing, katex: !!window.katex};
  } catch (error) {
    window.__deck = {error: String(error && error.stack || error)};
  }
})();
"""


def _slide_html(slide: SlideContent, index: int, total: int) -> tuple[str, list]:
    ids = [f"figure-{slide.step}-{k}" for k in range(len(slide.figures))]
    plots = "".join(f'<div class="plot" id="{i}"></div>' for i in ids)
    text = (
        f"<p>{markdown_html(slide.intuition)}</p>"
        f"<p><strong>{html.escape(slide.notice_title)}</strong> {markdown_html(slide.notice)}</p>"
        + (f"<p>{markdown_html(slide.more)}</p>" if slide.more else "")
        + f'<div class="formula">{_math(slide.formula, display=True)}</div>'
        f"<p><strong>{html.escape(slide.numbers_title)}</strong> {markdown_html(slide.numbers)}</p>"
    )
    body = (
        f'<section class="slide" data-step="{slide.step}">'
        f"<header><h1>{html.escape(slide.heading)}</h1><p>{markdown_html(slide.note)}</p></header>"
        f'<div class="body"><figure class="figures">{plots}</figure><div class="text">{text}</div></div>'
        f'<footer><span>{markdown_html(slide.caption)}</span><span class="number">{index} / {total}</span></footer>'
        "</section>"
    )
    return body, [[i, json.loads(f.to_json())] for i, f in zip(ids, slide.figures, strict=True)]


def deck_document(slides: list[SlideContent], title: str, language: str) -> str:
    """The deck as one self-contained HTML text: `title` becomes the PDF's title."""
    from plotly.offline import get_plotlyjs

    parts, figures = [], []
    for index, slide in enumerate(slides, 1):
        body, plots = _slide_html(slide, index, len(slides))
        parts.append(body)
        figures += plots
    katex = katex_assets()
    script, style = katex if katex is not None else ("", "")
    data = json.dumps(figures, ensure_ascii=False).replace("</", "<\\/")
    return (
        f'<!doctype html><html lang="{"zh-Hans" if language == "zh" else language}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_text_font()}{cjk_faces(title + ''.join(parts) + data)}{style}"
        f"{_CSS.replace('FONT_STACK', FONT_STACK)}</style>"
        f"<script>{get_plotlyjs()}</script><script>{script}</script></head><body>{''.join(parts)}"
        f'<script type="application/json" id="figures">{data}</script><script>{_SCRIPT}</script></body></html>'
    )
