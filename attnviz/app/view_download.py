"""The Position and Channel pages' "Download this view (interactive HTML)" button: the view the page shows as one
self-contained file (attnviz.viz.standalone), or, past the file's size cap, a note with its size and the command
that writes a coarser grid."""

from __future__ import annotations

import streamlit as st

from attnviz.app.language import language, t
from attnviz.app.resources import channel_data, hover_data
from attnviz.viz.standalone import ChannelPanel, ViewPanel, ViewTooLarge, standalone_html

__all__ = ["view_download"]


def view_download(
    selection, analysis, key: str, module: str | None = None, beside=(), mode: str = "row", channel: str | None = None
) -> None:
    """The button under the live view: the model's spatial attention `module` (default its first) with the
    `beside` panels (attnviz.app.guards.Panel, on the same photo) and the model's channel map `channel` (default
    its first), `mode` first. None without a spatial map: the file is built around one (XCiT has channel maps
    only)."""
    source, image = selection.source, selection.image
    spatial = analysis.spatial_attention
    if not spatial:
        return
    name = module or next(iter(spatial))
    shown = [(selection.model_name, name, spatial[name])] + [
        (p.model_name, p.module, p.record) for p in beside if p.image_key == selection.image_key
    ]
    payloads = [
        hover_data(source, model, selection.image_key, m, image.shape[:2], record) for model, m, record in shown
    ]
    if any(payload.data is None for payload in payloads):
        return  # too big for the page already: the page says so
    view_panels = [ViewPanel(model, m, payload.data) for (model, m, _), payload in zip(shown, payloads)]
    channels = []
    if analysis.channel_maps:
        channel_module = channel if channel in analysis.channel_maps else next(iter(analysis.channel_maps))
        record = analysis.channel_maps[channel_module]
        payload = channel_data(source, selection.model_name, selection.image_key, channel_module, record)
        channels.append(ChannelPanel(selection.model_name, channel_module, payload))
    try:
        text = _view_file(
            source,
            selection.image_key,
            tuple((p.model, p.module) for p in view_panels),
            tuple((c.model, c.module) for c in channels),
            mode,
            language(),
            _build=lambda: standalone_html(
                panels=view_panels,
                photo=image,
                photo_name=selection.image_key,
                channels=channels,
                language=language(),
                mode=mode,
            ),
        )
    except ViewTooLarge as error:
        st.caption(
            t("standalone.too_large", size=error.num_bytes / 2**20, cap=error.max_bytes / 2**20, side=error.side)
        )
        return
    st.download_button(
        t("standalone.download"),
        text,
        file_name=f"{selection.model_name}-{selection.image_key}.html",
        mime="text/html",
        key=key,
        on_click="ignore",
        icon=":material/download:",
        help=t("standalone.download_help"),
    )


@st.cache_resource(max_entries=8, show_spinner=False)
def _view_file(source: str, image_key: str, panels: tuple, channels: tuple, mode: str, language: str, _build) -> str:
    """The view's file, built once per (source, photo, panels, channel maps, mode, language) and shared by every
    session that shows it (about 8 ms each; a class opening the same page builds it once). ViewTooLarge is
    raised again, not kept."""
    return _build()
