"""Links: the address bar holds the view, and a link opens it again.

The URL holds the page (Streamlit's own URL path), ?model=&photo= (and
?source=timm) for every page, and each page's own parameters (the Position
page's x, y and mode, the channel page's channel, a layer). A link is read
once, on a session's first run, and each parameter is handed out once to the
widget it sets. The page says its parameters with `link_params`; app.py writes
the address bar once per run, after the page (`write_link`), or a guard does
just before it stops the page.

Everything that came from the URL is shown as plain text (`markdown_literal`:
no markup, no live links), in toasts too.
"""

from __future__ import annotations

import streamlit as st

from attnviz.analysis.forward import click_to_image_point, parse_image_point
from attnviz.analysis.views import MAX_PINS, with_pin
from attnviz.app import keys
from attnviz.app.language import t
from attnviz.app.selection import run_state
from attnviz.data.samples import list_samples
from attnviz.text import markdown_literal

__all__ = [
    "link_value",
    "link_note",
    "apply_link",
    "chosen_pixel",
    "pinned_pixels",
    "take_pin",
    "remove_pins",
    "pins_text",
    "parse_pins",
    "forget_pixel_on_new_photo",
    "link_params",
    "write_link",
    "view_params",
    "MAX_PINS",
]


def _read_link_once() -> dict[str, str]:
    if keys.LINK_PENDING not in st.session_state:
        st.session_state[keys.LINK_PENDING] = {key: st.query_params[key] for key in st.query_params}
    return st.session_state[keys.LINK_PENDING]


def link_value(name: str) -> str | None:
    """A parameter of the link this session was opened with, handed out once (None if absent)."""
    return _read_link_once().pop(name, None)


def link_note(text: str) -> None:
    """Say that a link parameter was ignored, and why (a toast: a note, not an error). `text` must already
    hold any URL-provided part as `markdown_literal`."""
    st.toast(text, icon=":material/link_off:")


def apply_link(name: str, session_key: str, allowed, convert=str, what: str = "") -> None:
    """If the link has `name`, put it (converted) into st.session_state[session_key] when it is one of
    `allowed` (a collection, or a predicate); otherwise note that it was ignored."""
    raw = link_value(name)
    if raw is None:
        return
    try:
        value = convert(raw)
        fits = allowed(value) if callable(allowed) else value in allowed
    except (TypeError, ValueError, KeyError):
        fits = False
    if fits:
        st.session_state[session_key] = value
    else:
        link_note(t("links.ignored", parameter=f"{name}={markdown_literal(raw)}", reason=what or t("links.not_here")))


def forget_pixel_on_new_photo(photo_key: str) -> None:
    """A chosen pixel and pins belong to the photo they were chosen on: a new photo starts at its centre
    (a link may still set a pixel on it: links are applied after this)."""
    previous = st.session_state.get(keys.PIXEL_PHOTO)
    if previous is not None and previous != photo_key:
        st.session_state.pop(keys.PIXEL, None)
        st.session_state.pop(keys.PAM_PINS, None)
    st.session_state[keys.PIXEL_PHOTO] = photo_key


def _link_pixel(image_hw: tuple[int, int]) -> None:
    height, width = image_hw
    link_x, link_y = link_value("x"), link_value("y")
    if link_x is not None or link_y is not None:
        point = parse_image_point(link_x, link_y, image_hw)
        if point is None:
            link_note(
                t(
                    "links.ignored",
                    parameter=f"x={markdown_literal(link_x)}, y={markdown_literal(link_y)}",
                    reason=t("links.not_in_photo", width=width, height=height),
                )
            )
        else:
            st.session_state[keys.PIXEL] = point


def _current_pixel(image_hw: tuple[int, int]) -> tuple[int, int, bool]:
    height, width = image_hw
    point = st.session_state.get(keys.PIXEL)
    point = None if point is None else parse_image_point(*point, image_hw)  # still inside this photo?
    if point is None:
        return width // 2, height // 2, False
    return point[0], point[1], True


def chosen_pixel(click_key: str, image_hw: tuple[int, int], photo_key: str) -> tuple[int, int, bool]:
    """(x, y, chosen) of the pixel the Position and Attribution pages share: from the link (once), then
    from each new click on the image widget `click_key`; the photo's centre (chosen False) until then, and
    again on a new photo (`photo_key` changed).

    x, y are the integer photo pixel (attnviz.analysis.geometry), snapped once where the click or link enters:
    the text shown, the link written and the feature cell all use these same integers."""
    forget_pixel_on_new_photo(photo_key)
    _link_pixel(image_hw)
    _take_click(click_key, image_hw)
    return _current_pixel(image_hw)


def _take_click(click_key: str, image_hw: tuple[int, int]) -> None:
    """A new click of image widget `click_key` becomes the chosen pixel."""
    click = st.session_state.get(click_key)
    if click and click != st.session_state.get(keys.last_click(click_key)):
        st.session_state[keys.last_click(click_key)] = click
        st.session_state[keys.PIXEL] = click_to_image_point(click, image_hw)


def pins_text(pins) -> str:
    """Pins for the link: "x1xy1,x2xy2" (e.g. "100x200,52x60")."""
    return ",".join(f"{x}x{y}" for x, y in pins)


def parse_pins(text: str, image_hw: tuple[int, int]) -> list[tuple[int, int]] | None:
    """A link's pins -> photo pixels (at most MAX_PINS), or None when any is not a pixel of the photo."""
    points = []
    for part in str(text).split(","):
        x, sep, y = part.strip().partition("x")
        point = parse_image_point(x, y, image_hw) if sep else None
        if point is None:
            return None
        points.append(tuple(point))
    return points[-MAX_PINS:] if points else None


def pinned_pixels(
    image_hw: tuple[int, int], photo_key: str, click_key: str | None = None
) -> tuple[list[tuple[int, int]], tuple[int, int], bool]:
    """The Position page's pins (oldest first), and the chosen pixel (x, y) with whether one was chosen.

    Pins come from the link (?pins=, once), from clicks on the live photo (`take_pin`) and from a pixel
    chosen elsewhere (a link's x, y, the Attribution page): the chosen pixel is always the last pin. A new
    photo clears them. `click_key`: an image widget whose new clicks pin too (the page's fallback photo)."""
    forget_pixel_on_new_photo(photo_key)
    raw = link_value("pins")
    if raw is not None:
        points = parse_pins(raw, image_hw)
        if points is None:
            link_note(
                t(
                    "links.ignored",
                    parameter=f"pins={markdown_literal(raw)}",
                    reason=t("links.bad_pins", width=image_hw[1], height=image_hw[0]),
                )
            )
        else:
            st.session_state[keys.PAM_PINS] = points
            st.session_state[keys.PIXEL] = points[-1]
    _link_pixel(image_hw)
    if click_key is not None:
        _take_click(click_key, image_hw)
    x, y, chosen = _current_pixel(image_hw)
    pins = [p for p in st.session_state.get(keys.PAM_PINS, []) if parse_image_point(*p, image_hw) is not None]
    pins = with_pin(pins, (x, y)) if chosen else pins[-MAX_PINS:]
    st.session_state[keys.PAM_PINS] = pins
    return pins, (x, y), chosen


def take_pin(x: int, y: int, pins: list[tuple[int, int]] | None = None) -> None:
    """A click on the live photo: (x, y) becomes the chosen pixel and the newest pin. `pins`: the page's own
    pins after the click (the live photo pins by itself), which replace the server's: a click whose run the
    server skipped (clicks faster than its runs) is then not lost."""
    if pins:
        st.session_state[keys.PAM_PINS] = [(int(px), int(py)) for px, py in pins][-MAX_PINS:]
    st.session_state[keys.PIXEL] = (int(x), int(y))


def remove_pins() -> None:
    """Clear the pins and the chosen pixel (the page goes back to the photo's centre)."""
    st.session_state[keys.PAM_PINS] = []
    st.session_state.pop(keys.PIXEL, None)


def link_params(**page_params) -> None:
    """The page's own parameters for the address bar of this run (None values are left out)."""
    run_state().page_params.update({k: str(v) for k, v in page_params.items() if v is not None})


def view_params(
    source: str | None,
    model_name: str | None,
    image_title: str | None,
    page_params: dict[str, str],
    language: str = "en",
) -> dict[str, str]:
    """The query parameters of a view: source (timm and user only), model, photo (samples only), the page's own,
    and the language (when not English)."""
    params = {}
    if source in ("timm", "user"):
        params["source"] = source
    if model_name:
        params["model"] = model_name
    if image_title in list_samples():
        params["photo"] = image_title
    params.update(page_params)
    if language != "en":
        params["lang"] = language
    return params


def write_link() -> None:
    """Put the current view into the address bar, once per run (later calls in the run do nothing)."""
    state = run_state()
    if state.link_written:
        return
    state.link_written = True
    selection = state.selection
    params = view_params(
        selection.source if selection else None,
        selection.model_name if selection else None,
        selection.image_title if selection else None,
        state.page_params,
        st.session_state.get(keys.LANGUAGE, "en"),
    )
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)
