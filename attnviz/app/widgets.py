"""The app's own widgets: charts with a download format, downloads, the layer picker, switch buttons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from attnviz.analysis.views import channel_scaling, head_of, module_heads
from attnviz.app import keys
from attnviz.app.language import bound_t, language, t
from attnviz.app.links import apply_link
from attnviz.app.selection import current
from attnviz.models.sources import CamVidSource
from attnviz.viz.figures import (
    channel_scaling_figure,
    extreme_channels_figure,
    pinned_maps_figure,
    weight_across_photos_figure,
    with_caption,
)
from attnviz.viz.plotly_locale import toolbar_config

__all__ = [
    "FIGURE_FORMATS",
    "chart",
    "figure_caption",
    "pins_slide",
    "download",
    "linked_selectbox",
    "layer_picker",
    "extreme_channels",
    "switch_button",
    "channel_focus",
    "spatial_module_picker",
]

FIGURE_FORMATS = {"PNG": "png", "SVG": "svg"}


def chart(where, figure, key: str, caption: str = "", file_name: str | None = None, **kwargs):
    """st.plotly_chart in `where` (st, a column, ...), its camera button saving in the sidebar's format: PNG
    at twice the shown size, or SVG, as `file_name` (no extension; default attnviz-<key>). `caption` (see
    `figure_caption`) is drawn under the title, so it is in the saved file too."""
    figure = with_caption(figure, caption)
    fmt = FIGURE_FORMATS.get(st.session_state.get(keys.FIGURE_FORMAT, "PNG"), "png")
    config = {
        "toImageButtonOptions": {
            "format": fmt,
            "filename": file_name or f"attnviz-{key}",
            "scale": 2 if fmt == "png" else 1,
        },
        "displaylogo": False,
        **toolbar_config(language()),  # Plotly's toolbar in the page's language (attnviz.viz.plotly_locale)
    }
    return where.plotly_chart(figure, key=key, config=config, **kwargs)


def figure_caption(module: str, detail: str = "", model: str | None = None, photo: str | None = None) -> str:
    """The caption a saved figure carries, in the page's language: module · model · photo · detail (a layer,
    a channel, a pixel). The model and photo are the sidebar's unless the figure shows others."""
    selection = current()
    model = model or (selection.model_name if selection is not None else None)
    photo = photo or (selection.image_title if selection is not None else None)
    parts = [module]
    if model:
        parts.append(t("figures.caption_model", model=model))
    if photo:
        parts.append(t("figures.caption_photo", photo=photo))
    return " · ".join(parts + ([detail] if detail else []))


def download(where, label: str, data: bytes | str | Callable[[], bytes | str], file_name: str, key: str) -> None:
    """A download button that does not rerun the page (CSV as text/csv, PNG as image/png).

    `data` may be a function of no arguments: it then runs only when the button is pressed, so that a
    rerun (a click on the photo) does not encode a PNG or write a CSV nobody asked for.
    """
    mime = "text/csv" if file_name.endswith(".csv") else "image/png"
    where.download_button(
        label, data, file_name=file_name, mime=mime, key=key, on_click="ignore", icon=":material/download:"
    )


def linked_selectbox(where, label: str, options: list, key: str, link_name: str, what: str, default=None, **kwargs):
    """A select box whose value a link can set (?link_name=, once; a value not among `options` is noted as
    ignored, saying `what`), kept in st.session_state[key]; `default` (else the first option) until chosen."""
    apply_link(link_name, key, options, what=what)
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0] if default is None else default
    return where.selectbox(label, options, key=key, **kwargs)


def layer_picker(names: list[str], key: str, format_func) -> str:
    """The layer select box of a channel-attention page: the link's ?layer= first, else the last layer."""
    return linked_selectbox(
        st, t("common.layer"), names, key, "layer", t("links.no_layer"), default=names[-1], format_func=format_func
    )


@dataclass(frozen=True)
class PickerKeys:
    """Where a page's module picker keeps its choice: the record's full name (heads included: "attn:head2"), the
    module box (heads grouped under one entry), the head box; and the link parameter that restores the name."""

    record: str
    group: str
    head: str
    head_help: str  # the catalog key of the head box's help
    link: str = "module"


SPATIAL_PICKER = PickerKeys(keys.PAM_MODULE, keys.PAM_MODULE_GROUP, keys.PAM_HEAD, "position.head_help")
CHANNEL_PICKER = PickerKeys(keys.CAM_MODULE, keys.CAM_MODULE_GROUP, keys.CAM_HEAD, "channel_map.head_help")


def _pick_group(groups: dict[str, list[str]], state: PickerKeys) -> None:
    st.session_state[state.record] = groups[st.session_state[state.group]][0]


def _pick_head(state: PickerKeys) -> None:
    st.session_state[state.record] = st.session_state[state.head]


def spatial_module_picker(where, modules: dict) -> str:
    """The spatial attention the Position page shows, as a record name (kept in keys.PAM_MODULE, which the
    link writes and restores): a module box when the model has several, and a head box when the module's
    map has heads (the dataflow reader's "attn:head0", ...; their mean "attn:mean" first where S itself was
    kept: the mean of factored heads has no factors)."""
    return module_picker(where, modules, SPATIAL_PICKER)


def channel_map_picker(where, maps: dict) -> str:
    """The channel map the Channel page shows (DANet's X, or one head of XCiT's cross-covariance attention in one
    of its layers), as `spatial_module_picker` picks a spatial one; nothing drawn for a single map."""
    return module_picker(where, maps, CHANNEL_PICKER)


def module_picker(where, modules: dict, state: PickerKeys) -> str:
    """A record of `modules` by name: a module box when there are several modules, a head box when the chosen
    module has heads; the choice kept under `state`, written to and restored from the page's link."""
    apply_link(state.link, state.record, list(modules), what=t("position.link_module"))
    if st.session_state.get(state.record) not in modules:
        st.session_state[state.record] = next(iter(modules))
    groups = module_heads(modules)
    chosen = st.session_state[state.record]
    group = head_of(chosen)[0]  # module_heads groups every name under this
    tr = bound_t()

    def module_label(name: str) -> str:
        record = modules[groups[name][0]]
        heads = sum(head_of(member)[1] != "mean" for member in groups[name])
        # the family or kind it was read as; not the dataflow reader's name (the Overview says how each was found)
        what = [record.family or record.kind] if (record.family or record.kind) != "dataflow" else []
        parts = what + ([tr("position.heads", count=heads)] if heads > 1 else [])
        return f"{name} ({', '.join(parts)})" if parts else name

    def head_label(name: str) -> str:
        part = head_of(name)[1]
        return tr("position.head_mean") if part == "mean" else tr("position.head_n", head=int(part[4:]))

    has_heads = len(groups[group]) > 1
    module_box, head_box = where.columns(2) if has_heads else (where, None)
    if len(groups) > 1 or has_heads:  # with heads, the module's name is shown even when it is the only one
        st.session_state[state.group] = group
        module_box.selectbox(
            t("position.module_label"),
            list(groups),
            key=state.group,
            format_func=module_label,
            on_change=_pick_group,
            args=(groups, state),
            disabled=len(groups) == 1,
        )
    if has_heads:
        st.session_state[state.head] = chosen
        head_box.selectbox(
            t("position.head_label"),
            groups[group],
            key=state.head,
            format_func=head_label,
            on_change=_pick_head,
            args=(state,),
            help=t(state.head_help),
        )
    return chosen


def extreme_channels(features, weights, prefix: str) -> None:
    """The input feature maps of a layer's most and least weighted channels (when features were kept)."""
    if features is None:
        return
    count = st.slider(t("widgets.channels_to_show"), 2, 8, 4, key=keys.extreme_channels(prefix, "count"))
    st.markdown(t("widgets.extreme_channels", count=count))
    chart(
        st,
        extreme_channels_figure(features[0].numpy(), weights, count),
        key=keys.extreme_channels(prefix, "features"),
        caption=figure_caption(t("widgets.extreme_caption")),
    )


def channel_focus(selection, layer: str, record, weights, prefix: str, weights_on_photos) -> None:
    """One channel of a channel-attention layer: x_c beside ω_c · x_c (one colour scale), and its weight on a
    few photos (`weights_on_photos(layer, channel)` -> {photo: weight}, or {} when it cannot be computed)."""
    if record.features is None:
        return
    channels = len(weights)
    key = keys.channel_focus(prefix, "channel")
    if st.session_state.get(key) is None or st.session_state[key] >= channels:
        st.session_state[key] = int(weights.argmax())
    st.markdown(t("widgets.focus_intro"))
    channel = st.number_input(t("common.channel"), 0, channels - 1, key=key, step=1, help=t("widgets.focus_help"))
    scaling = channel_scaling(record, channel)
    detail = " · ".join((t("figures.caption_layer", layer=layer), t("figures.caption_channel", channel=channel)))
    chart(
        st,
        channel_scaling_figure(scaling.before, scaling.after, scaling.weight, channel, language=language()),
        key=keys.channel_focus(prefix, "scaling"),
        caption=figure_caption(t(f"widgets.module_{prefix}"), detail),
    )
    across = weights_on_photos(layer, channel)
    if across:
        chart(
            st,
            weight_across_photos_figure(across, channel, layer, language=language()),
            key=keys.channel_focus(prefix, "photos"),
            caption=figure_caption(t(f"widgets.module_{prefix}"), detail),
        )
        st.caption(t("widgets.across_photos", count=len(across)))


def _switch_model(name: str) -> None:
    st.session_state[keys.SOURCE] = CamVidSource.key
    st.session_state[keys.MODEL] = name
    st.rerun()  # the whole app, sidebar included, even from a button inside a page's fragment (st.fragment)


def switch_button(where, name: str, label: str | None = None, place: str = "") -> None:
    """A button that switches the sidebar to CamVid checkpoint `name` (`place`: see keys.switch_button)."""
    where.button(label or name, key=keys.switch_button(name, place), on_click=_switch_model, args=(name,))


def pins_slide(panels, views, mode: str, opacity: float, scale: str = "own") -> None:
    """The Position page's pins (and the panel beside them) as one multi-panel figure for a slide, drawn only
    while its toggle is on (a figure of photos on every pin would slow each pin down): `panels` the page's
    Panels, `views[p][n]` pin n's PositionView on panel p, `mode` "row" or "column", `scale` the page's colour
    scale ("own": each map on its own range, stated under its title; "shared": one range and its colour bar)."""
    help_text = t("widgets.slide_help_scales")
    if not any(views) or not st.toggle(t("widgets.slide_toggle"), key=keys.PAM_SLIDE, help=help_text):
        return
    rows = [
        (
            panel.title if len(panels) > 1 else "",
            panel.image,
            [
                (t("widgets.slide_pin", number=n, x=v.pixel[0], y=v.pixel[1]), v.values, v.pixel)
                for n, v in enumerate(row, 1)
            ],
        )
        for panel, row in zip(panels, views)
    ]
    module = t(f"widgets.slide_{mode}")
    chart(
        st,
        pinned_maps_figure(rows, opacity, language=language(), scale=scale),
        key=keys.PAM_SLIDE_FIGURE,
        caption=figure_caption(module, panels[0].module, model=panels[0].model_name),
        theme=None,
        width="content",
    )
