"""One self-contained HTML file of the live view: hover, column mode, pins, two models side by side and DANet's
channel map X, working when the file is opened from disk with no network at all.

The file holds everything inline: the photo (a JPEG data URL), each panel's payload
(`attnviz.analysis.hover.hover_payload`: Q, K and the log-normalisers; `channel_payload` for X), the app's own
canvas scripts and styles (attnviz.viz.canvas: the same attention_canvas.js and channel_canvas.js, not a copy),
a small host script (standalone.js) that plays Streamlit's part, and the texts in the chosen language. Nothing is
fetched: no CDN, no web font, no image by address. The page computes every row and column of S itself, as the
app's page does, so a hover shows the library's numbers (1e-5 relative; float64 in the page from float32
factors). A header says what the file shows: the model(s), the photo, the module and the attnviz version.

What differs from the app: the controls (mode, colour scale, opacity, clearing the pins) live in the page, and
a click pins in the page itself (the scripts' `data.local_pins`), by the server's rule
(`attnviz.analysis.views.with_pin`). The pins' exact numbers below the photo and everything the server adds
(formula, class shares, downloads) are not in the file.

The size cap: a file of at most MAX_FILE_BYTES (2 MiB: an e-mail attachment or a course page takes it, and the
shipped DANet photos make files of about 0.5 MiB with one model). Past it `standalone_html` refuses with
`ViewTooLarge`, naming the size and the longest photo side that would fit. It does not make the file smaller by
itself: pooling Q and K, or dropping keys, would draw maps the model never computed. The honest coarser grid is
the model run again on the photo scaled down, which is what `python -m attnviz.export_html` does when a view is
too large (`--max-side`), saying so in the file's header: every number is then exact for the smaller photo.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnviz import __version__
from attnviz.analysis.views import MAX_PINS
from attnviz.i18n import DEFAULT_LANGUAGE, translate
from attnviz.viz.canvas import (
    SCRIPT_DIR,
    attention_canvas_data,
    canvas_style,
    channel_canvas_data,
    page_script,
    photo_data_url,
)

__all__ = ["MAX_FILE_BYTES", "ViewTooLarge", "ViewPanel", "ChannelPanel", "standalone_html", "fitting_side"]

MAX_FILE_BYTES = 2 * 2**20
_HERE = Path(__file__).resolve().parent


class ViewTooLarge(ValueError):
    """The file would be over the cap: `num_bytes`, `max_bytes`, and `side`, the longest photo side (pixels)
    whose file would fit (`fitting_side`)."""

    def __init__(self, num_bytes: int, max_bytes: int, side: int):
        self.num_bytes, self.max_bytes, self.side = num_bytes, max_bytes, side
        super().__init__(
            f"the view would be a file of {num_bytes / 2**20:.1f} MB, over the {max_bytes / 2**20:.1f} MB a "
            f"standalone file may hold; run the model on the photo scaled to at most {side} pixels on its longer "
            "side (a coarser grid, exact for that photo: python -m attnviz.export_html --max-side), or show "
            "fewer models"
        )


@dataclass(frozen=True)
class ViewPanel:
    """One map of the live view: the model and the module it shows, and its payload
    (`attnviz.analysis.hover.hover_payload(...).data`)."""

    model: str
    module: str
    payload: dict


@dataclass(frozen=True)
class ChannelPanel:
    """DANet's channel map X of one model: `attnviz.analysis.hover.channel_payload`'s payload."""

    model: str
    module: str
    payload: dict = field(repr=False)


def fitting_side(num_bytes: int, max_bytes: int, image_hw: tuple[int, int]) -> int:
    """The longest photo side at which a file of `num_bytes` would be about `max_bytes`: its payloads and its
    photo grow with the photo's pixels, so the side shrinks by sqrt(max_bytes / num_bytes), with 10% to spare."""
    return max(1, int(max(image_hw) * math.sqrt(max_bytes / num_bytes) * 0.9))


def standalone_html(
    *,
    panels: list[ViewPanel],
    photo: np.ndarray,
    photo_name: str,
    channels: list[ChannelPanel] = (),
    language: str = DEFAULT_LANGUAGE,
    mode: str = "row",
    note: str = "",
    max_bytes: int = MAX_FILE_BYTES,
) -> str:
    """The HTML text of the view (see the module docstring). `panels`: one map, or two side by side (two models,
    or two modules); `photo`: the RGB uint8 photo they were computed on, named `photo_name` in the header;
    `channels`: X of the models that have it (a second view, hovered in the page too); `mode`: "row" or
    "column" first; `note`: a sentence for the header (e.g. that the photo was scaled down). ViewTooLarge past
    `max_bytes` (UTF-8 bytes of the file)."""
    if not panels:
        raise ValueError("a view needs at least one panel")
    t = _texts(language)
    image_hw = photo.shape[:2]
    several = len(panels) > 1
    canvas = attention_canvas_data(
        version="standalone",
        photo=photo_data_url(photo),
        image_hw=image_hw,
        panels=[{**p.payload, "title": _panel_title(p, panels) if several else ""} for p in panels],
        mode=mode,
        language=language,
        local_pins=True,
    )
    channel_data = [
        channel_canvas_data(payload=c.payload, version=f"standalone-{k}", language=language, local_pins=True)
        for k, c in enumerate(channels)
    ]
    data = json.dumps({"position": canvas, "channels": channel_data}, separators=(",", ":"))
    text = _PAGE.format(
        lang="zh-Hans" if language == "zh" else language,
        title=html.escape(t("standalone.title")),
        style=_scoped(canvas_style("attention_canvas"), "#attnviz-position")
        + _scoped(canvas_style("channel_canvas"), ".channel-view")
        + (_HERE / "standalone.css").read_text(encoding="utf-8"),
        shows=_shows(panels, channels, photo_name, image_hw, t),
        note=f'<p class="note">{html.escape(note)}</p>' if note else "",
        position_title=html.escape(t("position.title")),
        hint=html.escape(t("standalone.hint", pins=MAX_PINS)),
        controls=_controls(mode, several, t),
        caption=html.escape(t("position.canvas_caption")),
        channels="".join(_channel_section(k, c, several or len(channels) > 1, t) for k, c in enumerate(channels)),
        footer=html.escape(t("standalone.footer", version=__version__)),
        data=data.replace("</", "<\\/"),
        scripts=_module_as_function("attentionCanvas", "attention_canvas.js")
        + _module_as_function("channelCanvas", "channel_canvas.js")
        + (_HERE / "standalone.js").read_text(encoding="utf-8"),
    )
    num_bytes = len(text.encode("utf-8"))
    if num_bytes > max_bytes:
        raise ViewTooLarge(num_bytes, max_bytes, fitting_side(num_bytes, max_bytes, image_hw))
    return text


def _texts(language: str):
    return lambda key, **values: translate(key, language, **values)


def _panel_title(panel: ViewPanel, panels: list[ViewPanel]) -> str:
    """A panel's model, and its module where the panels show more than one."""
    return panel.model if len({p.module for p in panels}) == 1 else f"{panel.model} · {panel.module}"


def _shows(panels, channels, photo_name: str, image_hw, t) -> str:
    """The header's list of what the file shows."""
    rows = [
        (t("standalone.models"), ", ".join(dict.fromkeys(p.model for p in panels))),
        (t("standalone.photo"), t("standalone.photo_value", name=photo_name, width=image_hw[1], height=image_hw[0])),
        (t("standalone.module"), ", ".join(dict.fromkeys(p.module for p in panels))),
    ]
    if channels:
        rows.append((t("standalone.channel_module"), ", ".join(dict.fromkeys(c.module for c in channels))))
    rows.append((t("standalone.version"), f"attnviz {__version__}"))
    items = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>" for name, value in rows)
    return f'<dl class="shows">{items}</dl>'


def _controls(mode: str, several: bool, t) -> str:
    """The settings a Streamlit page keeps on the server: mode, colour scale (with more than one map), opacity."""

    def radios(name: str, legend: str, options: dict[str, str], chosen: str) -> str:
        inputs = "".join(
            f'<label><input type="radio" name="{name}" value="{value}"{" checked" if value == chosen else ""}> '
            f"{html.escape(text)}</label>"
            for value, text in options.items()
        )
        return f"<fieldset><legend>{html.escape(legend)}</legend>{inputs}</fieldset>"

    parts = [
        radios(
            "mode",
            t("position.mode_label"),
            {m: t(f"position.mode_{m}") for m in ("row", "column")},
            mode,
        ),
        radios("scale", t("position.scale_label"), {s: t(f"position.scale_{s}") for s in ("own", "shared")}, "own"),
        f"<label>{html.escape(t('position.opacity'))} "
        '<input type="range" name="opacity" min="0" max="1" step="0.05" value="0.75"></label>',
        f'<button type="button" id="attnviz-clear">{html.escape(t("position.clear_pins"))}</button>',
    ]
    return "".join(parts)


def _channel_section(k: int, channel: ChannelPanel, titled: bool, t) -> str:
    heading = t("channel_map.title") + (f" · {channel.model}" if titled else "")
    return (
        f'<section><h2>{html.escape(heading)}</h2><p class="hint">{html.escape(t("standalone.channel_hint"))}</p>'
        f'<div class="channel-view" id="attnviz-channels-{k}"><div class="attnviz-channels"></div></div></section>'
    )


def _module_as_function(name: str, script: str) -> str:
    """A canvas script as a classic script: the ES module's default export becomes `name` (a module cannot be
    imported from a file:// page without fetching it; the script text is otherwise the app's, unchanged)."""
    text = page_script(SCRIPT_DIR / script)
    exports = re.findall(r"^export default (?:function\b|\w+;\s*$)", text, re.MULTILINE)
    if len(exports) != 1 or re.search(r"</script", text, re.IGNORECASE):
        raise ValueError(f"{script} must hold one default export and no closing script tag")
    body = re.sub(r"^export default (function\b|\w+;\s*$)", r"return \1", text, flags=re.MULTILINE)
    return f'const {name} = (() => {{\n"use strict";\n{body}\n}})();\n'


def _scoped(css: str, scope: str) -> str:
    """A canvas's style with every selector under `scope`, so that the two canvases' rules (both name
    .readout, .readout-top, ...) apply each to its own view in one page. The styles are flat rule lists, and
    @media blocks of flat rules (their rules are scoped, the query kept)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)

    def flat(rules: str) -> str:
        if "@" in rules:
            raise ValueError("a canvas style may hold only flat rules and @media blocks of flat rules")
        return re.sub(
            r"([^{}]+)\{",
            lambda m: ", ".join(f"{scope} {s.strip()}" for s in m.group(1).split(",")) + " {",
            rules,
        )

    parts, at = [], 0
    for media in re.finditer(r"(@media[^{]*)\{((?:[^{}]*\{[^{}]*\})*)\s*\}", css):
        parts += [flat(css[at : media.start()]), f"{media.group(1).strip()} {{{flat(media.group(2))}}}"]
        at = media.end()
    return "".join(parts + [flat(css[at:])])


_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'">
<title>{title}</title>
<style>
{style}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
{shows}
{note}
</header>
<section>
<h2>{position_title}</h2>
<p class="hint">{hint}</p>
<div id="attnviz-controls">{controls}</div>
<div id="attnviz-position"><div class="attnviz-canvas"></div></div>
<p class="caption">{caption}</p>
</section>
{channels}
<footer>{footer}</footer>
<script type="application/json" id="attnviz-data">{data}</script>
<script>
{scripts}
</script>
</body>
</html>
"""
