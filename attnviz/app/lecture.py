"""The lecture's live figures (pages/lecture.py lays out the step; attnviz.analysis.lecture computes its numbers).

Each step draws the figure that shows its module best, on the step's own shipped model and the sidebar's
photo: SE and ECA their sorted channel weights, CBAM its spatial gate (with its colour bar, whose tiny
range is the lesson), CA one channel's a_h·a_w, flexible attention both branches, DANet's position
attention the live photo of attnviz.app.attention_canvas (plain DANet and the class-affinity DANet side by side,
one pointer for both) and its channel map the hovered X.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from attnviz.app import keys
from attnviz.app.attention_canvas import attention_canvas
from attnviz.app.channel_canvas import channel_canvas
from attnviz.app.language import language, t
from attnviz.app.resources import catalogue, channel_data, hover_data
from attnviz.app.widgets import chart, figure_caption
from attnviz.capture.records import CoordinateAttentionRecord, SpatialAttentionRecord
from attnviz.viz.figures import attention_map_figure, branches_figure, sorted_weights_figure

__all__ = ["step_figure", "pam_panels", "presentation_style"]

_PRESENTATION_CSS = Path(__file__).resolve().parent / "presentation.css"


def presentation_style() -> None:
    """The presentation view: larger type and no sidebar (presentation.css, beside this module)."""
    st.html(f"<style>{_PRESENTATION_CSS.read_text(encoding='utf-8')}</style>")


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


def step_figure(step: str, selection, analysis, numbers, companion=None) -> None:
    """Draw step `step`'s live figure for `analysis` (the step's model on the selection's photo); `companion`:
    the analysis of the model drawn beside it (attnviz.analysis.lecture.STEP_COMPANIONS), or None."""
    layer = numbers.layer
    lang = language()
    module = t(f"lecture.{step}.name")
    caption = figure_caption(module, t("figures.caption_layer", layer=layer), model=analysis.model_name)
    if step in ("se", "eca"):
        weights = analysis.records[layer].weights[0].numpy()
        chart(
            st,
            sorted_weights_figure(weights, t(f"lecture.{step}.figure", layer=layer), language=lang),
            key=keys.LECTURE_FIGURE,
            caption=caption,
        )
    elif step == "flexible":
        record = analysis.records[layer]
        chart(
            st,
            branches_figure(
                record.parts["avg_branch"][0].numpy(),
                record.parts["max_branch"][0].numpy(),
                record.weights[0].numpy(),
                t("lecture.flexible.figure", layer=layer),
                language=lang,
            ),
            key=keys.LECTURE_FIGURE,
            caption=caption,
        )
    elif step == "cbam":
        gate = analysis.records[layer]
        assert isinstance(gate, SpatialAttentionRecord)
        chart(
            st,
            attention_map_figure(
                gate.map[0].numpy(), t("lecture.cbam.figure", layer=layer), colour_title="M_s", language=lang
            ),
            key=keys.LECTURE_FIGURE,
            caption=caption,
            theme=None,
            width="content",
        )
    elif step == "ca":
        record = analysis.records[layer]
        assert isinstance(record, CoordinateAttentionRecord)
        c = numbers.terms["channel"]
        product = (record.height_weights[0, c][:, None] * record.width_weights[0, c][None, :]).numpy()
        chart(
            st,
            attention_map_figure(
                product,
                t("lecture.ca.figure", channel=c, layer=layer),
                marker=(numbers.terms["row"], numbers.terms["col"]),
                colour_title="a_h·a_w",
                language=lang,
            ),
            key=keys.LECTURE_FIGURE,
            caption=figure_caption(
                module,
                " · ".join((t("figures.caption_layer", layer=layer), t("figures.caption_channel", channel=c))),
                model=analysis.model_name,
            ),
            theme=None,
            width="content",
        )
    elif step == "pam":
        image_hw = selection.image.shape[:2]
        st.caption(t("lecture.hover_hint"))
        attention_canvas(
            image=selection.image,
            photo_key=selection.image_key,
            mode="row",
            opacity=0.8,
            scale="own",
            pixel=(image_hw[1] // 2, image_hw[0] // 2),
            pins=[],
            on_pin=lambda x, y: None,
            key=f"{keys.LECTURE_CANVAS}_pam",
            language=language(),
            panels=pam_panels(selection, [a for a in (companion, analysis) if a is not None]),
        )
    elif step == "cam":
        record = analysis.records[layer]
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
