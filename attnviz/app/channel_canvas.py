"""DANet's channel map X, hovered in the page (a Streamlit custom component, v2).

Its script (channel_canvas.js) and style (channel_canvas.css) are files of their own beside this module.
X is small (C x C, 128 x 128 for the shipped models): it is sent whole with the softmax arguments and
log-normalisers of `attnviz.analysis.hover.channel_payload`, and a pointer move over a row draws that row, its
largest entries and the formula with numbers, with no message to the server. A click picks row c in the page
at once (its `local_pins` rule) and hands one trigger value to the page's `on_channel(c)`, which may rerun only
the part of the page that shows the row's numbers (pages/channel_map.py).
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from attnviz.app.attention_canvas import next_run
from attnviz.app.language import language
from attnviz.viz.canvas import SCRIPT_DIR, canvas_style, channel_canvas_data, page_script

__all__ = ["channel_canvas"]

_COMPONENT = st.components.v2.component(
    "attnviz_channel_canvas",
    html='<div class="attnviz-channels"></div>',
    css=canvas_style("channel_canvas"),
    js=page_script(SCRIPT_DIR / "channel_canvas.js"),
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
    data = channel_canvas_data(
        payload=payload, version=version, channel=channel, language=language(), local_pins=True, pin_state=False
    )
    data["run"] = next_run(key)  # the server's choice reaches the page even when it equals its last data
    _COMPONENT(
        data=data,
        key=key,
        on_channel_change=partial(_take_channel, key, payload["channels"], on_channel),
    )
