"""DANet's channel map X, hovered in the page (a Streamlit custom component, v2).

Its script (channel_canvas.js) and style (channel_canvas.css) are files of their own beside this module.
X is small (C x C, 128 x 128 for the shipped models): it is sent whole with the softmax arguments and
log-normalisers of `attnviz.analysis.hover.channel_payload`, and a pointer move over a row draws that row, its
largest entries and the formula with numbers, with no message to the server. A click picks row c: one
trigger value handed to the page's `on_channel(c)`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from attnviz.app.language import language
from attnviz.app.page_arrays import page_script
from attnviz.i18n import section
from attnviz.viz.colours import CHANNEL_COLOURS, page_table

__all__ = ["channel_canvas"]

_HERE = Path(__file__).resolve().parent
_COLOURS = page_table(CHANNEL_COLOURS)  # X's colour map (attnviz.viz.colours), sent with the data (768 bytes)
_COMPONENT = st.components.v2.component(
    "attnviz_channel_canvas",
    html='<div class="attnviz-channels"></div>',
    css=(_HERE / "channel_canvas.css").read_text(encoding="utf-8"),
    js=page_script(_HERE / "channel_canvas.js"),
)


def _take_channel(component_key: str, channels: int, on_channel) -> None:
    event = st.session_state.get(component_key) or {}
    value = event.get("channel") if hasattr(event, "get") else None
    try:
        channel = int(value)
    except (TypeError, ValueError):
        return
    if 0 <= channel < channels:
        on_channel(channel)


def channel_canvas(*, payload: dict, version: str, channel: int, on_channel, key: str) -> None:
    """Draw X with row `channel` marked; `version` changes whenever the payload does (model, photo)."""
    _COMPONENT(
        data={
            "payload": payload,
            "version": version,
            "channel": int(channel),
            "labels": section("channel_canvas", language()),
            "colours": _COLOURS,
        },
        key=key,
        on_channel_change=partial(_take_channel, key, payload["channels"], on_channel),
    )
