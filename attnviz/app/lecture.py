"""The lecture's live figures (pages/lecture.py lays out the step; attnviz.analysis.lecture computes its numbers).

Each step draws the figure that shows its module best, on the step's own shipped model and the sidebar's
photo: SE and ECA their sorted channel weights, CBAM its spatial gate (with its colour bar, whose tiny
range is the lesson), CA one channel's a_h·a_w, flexible attention both branches, DANet's position
attention the live photo of attnviz.app.attention_canvas (plain DANet and the class-affinity DANet side by side,
one pointer for both) and its channel map the hovered X.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from attnviz.analysis.lecture import STEP_COMPANIONS, STEP_MODELS
from attnviz.analysis.views import eca_neighbourhoods
from attnviz.app import keys
from attnviz.app.attention_canvas import attention_canvas
from attnviz.app.channel_canvas import channel_canvas
from attnviz.app.language import language, t
from attnviz.app.queueing import pooled_quietly
from attnviz.app.resources import catalogue, channel_data, hover_data
from attnviz.app.widgets import chart, figure_caption
from attnviz.capture.records import CoordinateAttentionRecord, SpatialAttentionRecord
from attnviz.data.samples import list_samples
from attnviz.deck import deck_file_name, deck_pdf, photo_stem
from attnviz.viz.figures import (
    attention_map_figure,
    branches_figure,
    eca_neighbourhood_figure,
    sorted_weights_figure,
    with_caption,
)

__all__ = [
    "PREFETCH_KEY",
    "ROOM_FONT_PX",
    "ROOM_ZOOMS",
    "ROOM_KEY",
    "for_the_room",
    "step_figure",
    "pam_panels",
    "presentation_style",
    "deck_button",
    "figure_file_name",
]

_PRESENTATION_CSS = Path(__file__).resolve().parent / "presentation.css"
PREFETCH_KEY = "lecture_prefetch"  # the hidden container the next step is computed in
# The presentation view's text on a 1280 x 720 slide: the body's 22 px, the figures' ticks, legends and readouts
# no smaller than ROOM_FONT_PX, their titles a little larger
ROOM_FONT_PX = 18
_ROOM_FIGURE_HEIGHT_PX = 420
# presentation.css zooms the slide on larger screens (1.25 at 1600 x 900, 1.5 at 1920 x 1080). Plotly measures
# its box on the screen but draws in the zoomed CSS pixels, so a zoomed chart came out 1.5 times too large and
# was cut off at the bottom. Each chart is therefore drawn once per zoom, in ROOM_KEY_<i> containers whose zoom
# presentation.css undoes, at that screen's size and type; the css shows the one for the screen.
ROOM_ZOOMS = (1.0, 1.25, 1.5)
ROOM_KEY = "lecture_room"


def presentation_style() -> None:
    """The presentation view: slides for a projector, larger type and no sidebar (presentation.css, beside this
    module)."""
    st.html(f"<style>{_PRESENTATION_CSS.read_text(encoding='utf-8')}</style>")


@st.cache_data(max_entries=8, show_spinner=False)
def _deck(photo_key: str, title: str, lang: str, _image, _label) -> bytes:
    """The lecture deck (attnviz.deck.deck_pdf) on the photo `photo_key` in `lang`, made once per photo and
    language in the shared pool: a sample by its name (its labels and credit its own), an upload as `_image`."""
    sample = title in list_samples()
    image, label = (None, None) if sample else (_image, _label)
    return pooled_quietly(("deck", photo_key, lang), lambda: deck_pdf(title, lang, image, label))


def deck_button(selection) -> None:
    """The button that downloads the lecture as PDF slides on the sidebar's photo, in the page's language: the
    deck is made when it is pressed (Streamlit runs the callable apart from the page, which therefore cannot
    show its progress; the help says how long it takes). Off while a step's shipped model is missing."""
    lang = language()
    needed = {*STEP_MODELS.values(), *STEP_COMPANIONS.values()}
    st.download_button(
        t("lecture.deck_download"),
        data=lambda: _deck(selection.image_key, selection.image_title, lang, selection.image, selection.label),
        file_name=deck_file_name(selection.image_title, lang),
        mime="application/pdf",
        icon=":material/picture_as_pdf:",
        help=t("lecture.deck_help"),
        on_click="ignore",
        disabled=not needed <= set(catalogue()),
    )


def for_the_room(figure, caption: str, zoom: float = 1.0):
    """`figure` with `caption` (attnviz.viz.figures.with_caption) and text that carries to the back of a room:
    ticks, axis titles, legend, colour bar and annotations at ROOM_FONT_PX, the title and caption a step
    above and below it, and a height that leaves the slide room for the formula beside it; all of it `zoom`
    times larger, for a screen presentation.css zooms by as much (ROOM_ZOOMS)."""
    figure = with_caption(go.Figure(figure), caption)  # a copy: one figure is drawn at every zoom
    font, height = round(ROOM_FONT_PX * zoom), round(_ROOM_FIGURE_HEIGHT_PX * zoom)
    width, own_height = figure.layout.width, figure.layout.height
    if width and own_height:  # a map drawn at its own aspect: keep it
        figure.update_layout(width=round(width * height / own_height))
    lines = str(figure.layout.title.subtitle.text or "").count("<br>") + 1 if caption else 0
    step = round(2 * zoom)
    title = str(figure.layout.title.text or "")
    if figure.layout.width and _text_px(title, font + step) > figure.layout.width and " (" in title:
        figure.update_layout(title_text=title.replace(" (", "<br>(", 1))  # a map's long title on two lines
    title_lines = str(figure.layout.title.text or "").count("<br>") + 1
    figure.update_layout(
        font=dict(size=font),
        title=dict(font=dict(size=font + step), subtitle=dict(font=dict(size=font - 2 * step))),
        legend=dict(font=dict(size=font)),
        margin=dict(t=round((12 + 10) * zoom) + (font + 4 * step) * title_lines + (font - step // 2) * lines),
        height=height,
    )
    if figure.layout.xaxis.title.text:  # room under the ticks for the axis title (the figure's margin is for 12 px)
        figure.update_layout(margin=dict(b=max(figure.layout.margin.b or 0, round(2.6 * font))))
    figure.update_xaxes(tickfont=dict(size=font), title=dict(font=dict(size=font)))
    figure.update_yaxes(tickfont=dict(size=font), title=dict(font=dict(size=font)))
    figure.update_annotations(font=dict(size=font))
    figure.for_each_trace(
        lambda trace: trace.update(colorbar=dict(tickfont=dict(size=font))) if "colorbar" in trace else None
    )
    return figure


def _text_px(text: str, font_px: float) -> float:
    """About how wide `text` is set in `font_px`: a CJK character a square, another character half of one."""
    return sum(font_px if ord(ch) >= 0x2E80 else 0.55 * font_px for ch in text)


def figure_file_name(step: str, model: str, photo: str) -> str:
    """What a step's saved figure is: attnviz-lecture-<step>-<model>-<photo> (the extension is the format's)."""
    return f"attnviz-lecture-{step}-{photo_stem(model)}-{photo_stem(photo)}"


def _chart(figure, caption: str, present: bool, file_name: str, **kwargs) -> None:
    """The step's chart (attnviz.app.widgets.chart), saved as `file_name`; in the presentation view one per
    zoom of the slide (ROOM_ZOOMS), each sized for its screen (`for_the_room`), of which presentation.css
    shows one."""
    if not present:
        chart(st, figure, key=keys.LECTURE_FIGURE, caption=caption, file_name=file_name, **kwargs)
        return
    for index, zoom in enumerate(ROOM_ZOOMS):
        with st.container(key=f"{ROOM_KEY}_{index}"):
            figure_now = for_the_room(figure, caption, zoom)
            chart(st, figure_now, key=f"{keys.LECTURE_FIGURE}_{index}", file_name=file_name, **kwargs)


def pam_panels(selection, analyses: list) -> list[dict]:
    """The PAM step's canvas panels, one per analysis (plain DANet first, then the class-affinity one), each
    titled with which it is: the same photo, pixel and pointer for all."""
    image_hw = selection.image.shape[:2]
    panels = []
    for analysis in analyses:
        layer, record = analysis.position
        payload = hover_data("camvid", analysis.model_name, selection.image_key, layer, image_hw, record)
        info = catalogue().get(analysis.model_name)
        which = "panel_affinity" if info is not None and info.pam_affinity > 0 else "panel_plain"
        panels.append(
            {
                **payload.data,
                "title": t(f"lecture.pam.{which}", model=analysis.model_name),
                "id": f"lecture|{analysis.model_name}|{layer}",
            }
        )
    return panels


def step_figure(step: str, selection, analysis, numbers, companion=None, present: bool = False) -> None:
    """Draw step `step`'s live figure for `analysis` (the step's model on the selection's photo); `companion`:
    the analysis of the model drawn beside it (attnviz.analysis.lecture.STEP_COMPANIONS), or None; `present`:
    sized for a slide (`for_the_room`)."""
    layer = numbers.layer
    lang = language()
    module = t(f"lecture.{step}.name")
    name = figure_file_name(step, analysis.model_name, selection.image_title)
    caption = figure_caption(module, t("figures.caption_layer", layer=layer), model=analysis.model_name)
    if step == "eca":  # the chosen channel's weight from its k neighbours, the channels in their own order
        record = analysis.records[layer]
        unrolled = eca_neighbourhoods(record.kernel.numpy(), record.parts["pooled"][0].numpy(), record.kernel_bias)
        channel = numbers.terms["channel"]
        _chart(
            eca_neighbourhood_figure(
                unrolled,
                channel,
                t("lecture.eca.figure", layer=layer, channel=channel, k=len(unrolled.offsets)),
                language=lang,
            ),
            figure_caption(
                module,
                f"{t('figures.caption_layer', layer=layer)} · {t('figures.caption_channel', channel=channel)}",
                model=analysis.model_name,
            ),
            present,
            name,
        )
    elif step == "se":
        weights = analysis.records[layer].weights[0].numpy()
        _chart(
            sorted_weights_figure(weights, t(f"lecture.{step}.figure", layer=layer), language=lang),
            caption,
            present,
            name,
        )
    elif step == "flexible":
        record = analysis.records[layer]
        _chart(
            branches_figure(
                record.parts["avg_branch"][0].numpy(),
                record.parts["max_branch"][0].numpy(),
                record.weights[0].numpy(),
                t("lecture.flexible.figure", layer=layer),
                language=lang,
            ),
            caption,
            present,
            name,
        )
    elif step == "cbam":
        gate = analysis.records[layer]
        assert isinstance(gate, SpatialAttentionRecord)
        _chart(
            attention_map_figure(
                gate.map[0].numpy(), t("lecture.cbam.figure", layer=layer), colour_title="M_s", language=lang
            ),
            caption,
            present,
            name,
            theme=None,
            width="content",
        )
    elif step == "ca":
        record = analysis.records[layer]
        assert isinstance(record, CoordinateAttentionRecord)
        c = numbers.terms["channel"]
        product = (record.height_weights[0, c][:, None] * record.width_weights[0, c][None, :]).numpy()
        _chart(
            attention_map_figure(
                product,
                t("lecture.ca.figure", channel=c, layer=layer),
                marker=(numbers.terms["row"], numbers.terms["col"]),
                colour_title="a_h·a_w",
                language=lang,
            ),
            figure_caption(
                module,
                " · ".join((t("figures.caption_layer", layer=layer), t("figures.caption_channel", channel=c))),
                model=analysis.model_name,
            ),
            present,
            name,
            theme=None,
            width="content",
        )
    elif step == "pam":
        image_hw = selection.image.shape[:2]
        if not present:  # a slide has no room for it: the lecturer shows what the pointer does
            st.caption(t("lecture.hover_hint"))
        attention_canvas(
            image=selection.image,
            photo_key=selection.image_key,
            mode="row",
            opacity=0.8,
            scale="own",
            pixel=(image_hw[1] // 2, image_hw[0] // 2),
            pins=[],
            on_pin=lambda x, y, pins=None: None,
            key=f"{keys.LECTURE_CANVAS}_pam",
            language=language(),
            panels=pam_panels(selection, [a for a in (companion, analysis) if a is not None]),
        )
    elif step == "cam":
        record = analysis.records[layer]
        if not present:
            st.caption(t("lecture.channel_hint"))
        channel_canvas(
            payload=channel_data("camvid", analysis.model_name, selection.image_key, layer, record),
            version=f"lecture|{analysis.model_name}|{selection.image_key}|{layer}",
            channel=numbers.terms["channel"],
            on_channel=lambda c: None,
            key=f"{keys.LECTURE_CANVAS}_cam",
        )
    else:
        raise ValueError(f"no figure for step {step!r}")
