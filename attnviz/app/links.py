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

from attnviz.analysis import click_to_image_point, parse_image_point
from attnviz.app import keys
from attnviz.app.selection import run_state
from attnviz.data.samples import list_samples
from attnviz.text import markdown_literal

__all__ = ["link_value", "link_note", "apply_link", "chosen_pixel", "link_params", "write_link", "view_params"]


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
        link_note(f"{name}={markdown_literal(raw)} ignored: {what or 'not available here'}")


def chosen_pixel(click_key: str, image_hw: tuple[int, int]) -> tuple[int, int, bool]:
    """(x, y, chosen) of the pixel the Position and Attribution pages share: from the link (once), then
    from each new click on the image widget `click_key`; the photo's centre (chosen False) until then.

    x, y are the integer photo pixel (attnviz.geometry), snapped once where the click or link enters:
    the text shown, the link written and the feature cell all use these same integers."""
    height, width = image_hw
    link_x, link_y = link_value("x"), link_value("y")
    if link_x is not None or link_y is not None:
        point = parse_image_point(link_x, link_y, image_hw)
        if point is None:
            link_note(f"pixel x={markdown_literal(link_x)}, y={markdown_literal(link_y)} ignored: "
                      f"not inside the {width}x{height} photo")
        else:
            st.session_state[keys.PIXEL] = point
    click = st.session_state.get(click_key)
    if click and click != st.session_state.get(keys.last_click(click_key)):
        st.session_state[keys.last_click(click_key)] = click
        st.session_state[keys.PIXEL] = click_to_image_point(click, image_hw)
    point = st.session_state.get(keys.PIXEL)
    point = None if point is None else parse_image_point(*point, image_hw)  # still inside this photo?
    if point is None:
        return width // 2, height // 2, False
    return point[0], point[1], True


def link_params(**page_params) -> None:
    """The page's own parameters for the address bar of this run (None values are left out)."""
    run_state().page_params.update({k: str(v) for k, v in page_params.items() if v is not None})


def view_params(source: str | None, model_name: str | None, image_title: str | None,
                page_params: dict[str, str]) -> dict[str, str]:
    """The query parameters of a view: source (timm and user only), model, photo (samples only), the page's own."""
    params = {}
    if source in ("timm", "user"):
        params["source"] = source
    if model_name:
        params["model"] = model_name
    if image_title in list_samples():
        params["photo"] = image_title
    params.update(page_params)
    return params


def write_link() -> None:
    """Put the current view into the address bar, once per run (later calls in the run do nothing)."""
    state = run_state()
    if state.link_written:
        return
    state.link_written = True
    selection = state.selection
    params = view_params(selection.source if selection else None, selection.model_name if selection else None,
                         selection.image_title if selection else None, state.page_params)
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)
