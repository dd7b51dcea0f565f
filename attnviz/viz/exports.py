"""The data behind a view as files a user can download: CSV tables and PNG images (pure functions).

Each CSV has a header and one row per cell or channel, with the full float
precision the app computed (not the rounded numbers shown on the page).

A PNG of a map says what it shows on its own (a slide's figure): the map at a readable size, its colour bar (the
project's colour map, attnviz.viz.colours, on the map's range, ticked) and a caption under it (module, model,
photo, pixel or channel). Drawn with numpy, OpenCV and PIL (text: Noto Sans CJK where fontconfig finds it, so
that Chinese captions show; else PIL's own face, Latin only).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from attnviz.i18n import DEFAULT_LANGUAGE, translate
from attnviz.viz.colours import ATTENTION_COLOURS, CHANNEL_COLOURS, scaled, table_colours

__all__ = [
    "grid_csv",
    "vector_csv",
    "png_bytes",
    "Framed",
    "overlay_export",
    "overlay_png",
    "channel_map_export",
    "channel_map_png",
    "nice_ticks",
    "channel_ticks",
]

READABLE_WIDTH = 960  # a map's PNG is drawn at least this wide (a 480-pixel photo twice), whole multiples only
BACKGROUND = (255, 255, 255)
INK = (34, 34, 34)


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def grid_csv(values: np.ndarray, value_name: str) -> str:
    """A (h, w) map as rows (feature_row, feature_col, index, value); index = row * w + col."""
    values = np.asarray(values)
    height, width = values.shape
    return _csv(
        ["feature_row", "feature_col", "index", value_name],
        ((r, c, r * width + c, repr(float(values[r, c]))) for r in range(height) for c in range(width)),
    )


def vector_csv(columns: dict[str, np.ndarray], index_name: str = "channel") -> str:
    """Equal-length vectors as columns, one row per entry, with its index first."""
    arrays = [np.asarray(v).reshape(-1) for v in columns.values()]
    if len({a.size for a in arrays}) > 1:
        raise ValueError("all columns must have the same length")
    return _csv([index_name, *columns], ([i, *(repr(float(a[i])) for a in arrays)] for i in range(arrays[0].size)))


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) RGB uint8 -> PNG file bytes."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("the image could not be encoded as PNG")
    return encoded.tobytes()


@dataclass(frozen=True)
class Framed:
    """A map's PNG before it is encoded: `image` (H, W, 3) RGB uint8, and where its parts lie, each as (top,
    left, height, width): the map itself (`body`, the map at `zoom` times its size, each pixel a zoom x zoom
    block) and its colour `bar`; the caption's strip starts at row `caption_top`."""

    image: np.ndarray
    body: tuple[int, int, int, int]
    bar: tuple[int, int, int, int]
    caption_top: int
    zoom: int


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A face at `size` pixels: the CJK face fontconfig finds (the deck's, attnviz.viz.deck_html), else PIL's own."""
    from attnviz.viz.deck_html import _font_file

    found = _font_file("Noto Sans CJK SC")
    if found is not None:
        return ImageFont.truetype(found[0], size, index=found[1])
    return ImageFont.load_default(size)


def _text_width(text: str, font) -> int:
    return math.ceil(font.getlength(text))


def _wrapped(caption: str, font, width: int) -> list[str]:
    """`caption`'s " · "-separated parts on lines of at most `width` pixels (a part longer keeps its own line)."""
    lines: list[str] = []
    for part in caption.split(" · ") if caption else []:
        if lines and _text_width(f"{lines[-1]} · {part}", font) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values within [low, high]: the step of 1, 2 or 5 times a power of ten nearest (by
    ratio) to an even split into `count - 1` steps."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda candidate: abs(math.log(candidate / raw)))
    first = math.ceil(low / step - 1e-9)
    return [k * step for k in range(first, math.floor(high / step + 1e-9) + 1)]


def _label(value: float) -> str:
    text = f"{value:.3g}"
    return "0" if text in ("-0", "0") else text


def _frame(
    body: np.ndarray,
    zoom: int,
    low: float,
    high: float,
    table: np.ndarray,
    bar_title: str,
    caption: str,
    axes: tuple[int, str, str] | None = None,
) -> Framed:
    """`body` (already `zoom` times its map) with its colour bar on the right, ticked at round values of [low,
    high], `bar_title` above the bar, and `caption` under everything. `axes` = (step, row title, column title):
    index ticks every `step` cells (of `zoom` pixels) along the left and bottom edges, with the axes' titles."""
    size = max(14, 12 * min(zoom, 2) if axes is None else 20)
    font, small = _font(size), _font(round(size * 0.85))
    pad = size
    height, width = body.shape[:2]
    ticks = nice_ticks(low, high)
    tick_labels = [_label(v) for v in ticks]
    left = pad + (size * 2 + max(_text_width(str(i), small) for i in range(0, height // zoom, axes[0])) if axes else 0)
    top = pad + round(size * 1.5)  # the bar's title
    below = round(size * 3.4) if axes else 0  # the column ticks and title
    bar_left = left + width + pad
    bar_width = size
    right = bar_left + max(
        bar_width + 8 + max(_text_width(text, small) for text in tick_labels), _text_width(bar_title, font)
    )
    right += pad
    line = round(size * 1.4)
    lines = _wrapped(caption, font, max(right, 720) - 2 * pad)
    canvas_width = max(right, pad * 2 + max([_text_width(text, font) for text in lines], default=0))
    caption_top = top + height + below + pad // 2
    canvas = Image.new("RGB", (canvas_width, caption_top + line * len(lines) + pad), BACKGROUND)
    canvas.paste(Image.fromarray(np.ascontiguousarray(body, dtype=np.uint8)), (left, top))
    levels = np.linspace(1.0, 0.0, height)  # the bar's top row is `high`, its bottom row `low`
    bar = np.repeat(table_colours(levels, table)[:, None], bar_width, axis=1)
    canvas.paste(Image.fromarray(np.ascontiguousarray(bar)), (bar_left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((bar_left, top - round(size * 0.7)), bar_title, fill=INK, font=font, anchor="lb")
    span = high - low if high > low else 1.0
    for value, text in zip(ticks, tick_labels):
        y = top + round((1 - (value - low) / span) * (height - 1))
        draw.line([(bar_left + bar_width, y), (bar_left + bar_width + 5, y)], fill=INK, width=1)
        draw.text((bar_left + bar_width + 8, y), text, fill=INK, font=small, anchor="lm")
    if axes:
        step, row_title, column_title = axes
        for index in range(0, height // zoom, step):
            y = top + index * zoom + zoom // 2
            draw.line([(left - 6, y), (left - 1, y)], fill=INK, width=1)
            draw.text((left - 9, y), str(index), fill=INK, font=small, anchor="rm")
        for index in range(0, width // zoom, step):
            x = left + index * zoom + zoom // 2
            draw.line([(x, top + height), (x, top + height + 5)], fill=INK, width=1)
            draw.text((x, top + height + 8), str(index), fill=INK, font=small, anchor="mt")
        draw.text((left + width // 2, top + height + round(size * 1.3)), column_title, fill=INK, font=font, anchor="mt")
        vertical = Image.new("RGB", (_text_width(row_title, font) + 4, round(size * 1.4)), BACKGROUND)
        ImageDraw.Draw(vertical).text((2, 0), row_title, fill=INK, font=font)
        vertical = vertical.rotate(90, expand=True)
        canvas.paste(vertical, (pad // 2, max(top, top + (height - vertical.height) // 2)))
    for n, text in enumerate(lines):
        draw.text((pad, caption_top + n * line), text, fill=INK, font=font)
    return Framed(np.asarray(canvas), (top, left, height, width), (top, bar_left, height, bar_width), caption_top, zoom)


def _zoomed(image: np.ndarray, zoom: int) -> np.ndarray:
    """Each pixel a zoom x zoom block (no new colours: the file shows what was computed)."""
    return np.repeat(np.repeat(np.asarray(image), zoom, axis=0), zoom, axis=1)


def overlay_export(
    image: np.ndarray, view, opacity: float, caption: str = "", language: str = DEFAULT_LANGUAGE
) -> Framed:
    """The Position page's overlay (attnviz.viz.overlays.position_overlay: the map in the live canvas's colours
    and opacity, attnviz.viz.colours, so the file looks like the screen) at a readable size (twice a 480-pixel
    photo), with the attention colour bar on the map's own range (the overlay's) and a caption: `caption`
    (module, model, photo) followed by the pixel and row or column i, in `language`."""
    from attnviz.viz.overlays import position_overlay

    overlay = position_overlay(image, view, opacity)
    zoom = max(1, math.ceil(READABLE_WIDTH / overlay.shape[1]))
    values = np.asarray(view.values)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    what = translate(f"figures.export_{view.mode}", language, index=view.index)
    pixel = translate("figures.caption_pixel", language, x=view.pixel[0], y=view.pixel[1])
    full = " · ".join(part for part in (caption, pixel, what) if part)
    return _frame(_zoomed(overlay, zoom), zoom, low, high, ATTENTION_COLOURS, "S", full)


def overlay_png(image: np.ndarray, view, opacity: float, caption: str = "", language: str = DEFAULT_LANGUAGE) -> bytes:
    """`overlay_export` as PNG bytes, made when asked (a download button's function)."""
    return png_bytes(overlay_export(image, view, opacity, caption, language).image)


def channel_ticks(channels: int, cell: int, spacing: int = 48) -> int:
    """The step between ticked channels: the smallest of 1, 2, 4, 8, ... that puts ticks `spacing` pixels apart
    or more when a channel is `cell` pixels (powers of two: a layer's channels are)."""
    step = 1
    while step * cell < spacing and step < channels:
        step *= 2
    return step


def channel_map_export(attention: np.ndarray, caption: str = "", language: str = DEFAULT_LANGUAGE) -> Framed:
    """DANet's X (C, C) as the Channel page draws it (attnviz/app/channel_canvas.js: each entry in the channel
    colours, attnviz.viz.colours, on X's own range), each entry a block of at least 2 pixels (the map at least
    READABLE_WIDTH * 0.8 wide), with channel ticks every few channels on both axes, the colour bar and `caption`.
    What differs from the page: no chosen row is marked (the caption can name it)."""
    x = np.asarray(attention, dtype=np.float64)
    channels = x.shape[0]
    low, high = float(np.nanmin(x)), float(np.nanmax(x))
    zoom = max(2, math.ceil(READABLE_WIDTH * 0.8 / channels))
    body = _zoomed(table_colours(scaled(x, low, high), CHANNEL_COLOURS), zoom)
    labels = [translate(f"figures.{key}", language) for key in ("export_x_rows", "export_x_columns", "export_x")]
    axes = (channel_ticks(channels, zoom), labels[0], labels[1])
    return _frame(body, zoom, low, high, CHANNEL_COLOURS, labels[2], caption, axes)


def channel_map_png(attention: np.ndarray, caption: str = "", language: str = DEFAULT_LANGUAGE) -> bytes:
    """`channel_map_export` as PNG bytes, made when asked (a download button's function)."""
    return png_bytes(channel_map_export(attention, caption, language).image)
