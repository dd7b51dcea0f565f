"""The guided lecture: the article's seven modules in its order, one screen each (attnviz.analysis.lecture).

The page reads as its contents, called in order at the bottom: the presentation switch and the heading, the
step's intuition, its live figure with what to notice and its formula with this photo's numbers, and the
buttons to the step before and after. attnviz.analysis.lecture computes each step's numbers and
attnviz.app.lecture draws its figure."""

import dataclasses
import math

import numpy as np
import streamlit as st

from attnviz import app
from attnviz.analysis.lecture import FORMULAS, STEP_COMPANIONS, STEP_MODELS, STEPS, far_key_median, step_numbers
from attnviz.analysis.views import neighbours, telling_channel
from attnviz.app import keys
from attnviz.app.guards import layer_weights_on_photos
from attnviz.app.language import t
from attnviz.app.lecture import presentation_style, step_figure


def controls() -> bool:
    """The step and presentation mode from the link, and the presentation switch; returns whether it is on."""
    app.apply_link("step", keys.LECTURE_STEP, STEPS, what=t("lecture.link_step", steps=", ".join(STEPS)))
    app.apply_link(
        "present", keys.LECTURE_PRESENT, (True, False), convert=lambda v: v == "1", what=t("lecture.link_present")
    )
    st.session_state.setdefault(keys.LECTURE_STEP, STEPS[0])
    present = st.toggle(t("lecture.presentation"), key=keys.LECTURE_PRESENT, help=t("lecture.presentation_help"))
    if present:
        presentation_style()
    else:
        st.title(t("lecture.title"))
        st.caption(t("lecture.intro"))
    return present


def introduction(step: str) -> None:
    """Which step of how many, and its intuition."""
    number = STEPS.index(step)
    st.subheader(t("lecture.step_of", number=number + 1, total=len(STEPS), name=t(f"lecture.{step}.name")))
    st.markdown(t(f"lecture.{step}.intuition"))


def live_step(selection, step: str) -> None:
    """The step's model on the sidebar's photo: its figure, what to notice and the formula with its numbers
    (the page stops with a note when the model is not shipped)."""
    model_name = STEP_MODELS[step]
    if model_name not in app.catalogue():
        st.warning(t("lecture.missing_model", model=model_name))
        app.stop_page()
    analysis = app.analysis_for(selection, model_name)
    if analysis is None:
        app.stop_page()
    numbers = step_numbers(step, analysis, label=selection.label)
    example = ""
    if step == "flexible":
        numbers, example = flexible_example(selection, analysis, numbers)
    companion = companion_analysis(selection, step)
    st.caption(t("lecture.model_note", model=model_name, photo=selection.image_title))
    step_figure(step, selection, analysis, numbers, companion)
    notice = t(f"lecture.{step}.notice", **numbers.terms)
    st.markdown(f"**{t('lecture.notice_title')}** " + " ".join(filter(None, (notice, example))))
    if companion is not None:
        side_by_side(selection, analysis, companion, numbers)
    st.latex(FORMULAS[step])
    st.markdown(f"**{t('lecture.numbers_title')}** " + t(f"lecture.{step}.terms", layer=numbers.layer, **numbers.terms))
    app.switch_section(selection, analysis, (step,), context=f"lecture_{step}", model_name=model_name)


def flexible_example(selection, analysis, numbers):
    """The flexible step's numbers on its example channel, one whose weight is within (0.05, 0.95) here and
    changes across the first sample photos (attnviz.analysis.views.telling_channel), and the sentence that
    shows it, or says that no channel is (the numbers then stay on the most weighted channel)."""
    on_samples = dataclasses.replace(selection, model_name=analysis.model_name, source="camvid")
    across = layer_weights_on_photos(on_samples, numbers.layer)
    if not across:
        return numbers, ""
    weights = analysis.records[numbers.layer].weights[0].double().numpy()
    table = np.stack(list(across.values()))
    channel = telling_channel(weights, table)
    if channel is None:
        return numbers, t("lecture.flexible.no_example", layer=numbers.layer, photos=len(across))
    sentence = t(
        "lecture.flexible.example",
        channel=channel,
        weight=float(weights[channel]),
        photo_lowest=float(table[:, channel].min()),
        photo_highest=float(table[:, channel].max()),
        photos=len(across),
    )
    return step_numbers("flexible", analysis, channel=channel), sentence


def companion_analysis(selection, step: str):
    """The analysis of the model the step draws beside its own (STEP_COMPANIONS), or None (none, or not
    shipped)."""
    name = STEP_COMPANIONS.get(step)
    return app.analysis_for(selection, name) if name in app.catalogue() else None


def side_by_side(selection, analysis, companion, numbers) -> None:
    """The PAM step's two models: which is which and what the affinity loss is, their test-split medians and
    this pixel's own-class ratios (each sentence only where its numbers exist)."""
    catalogue = app.catalogue()
    sentences = [t("lecture.pam.which", plain=companion.model_name, affinity=analysis.model_name)]
    medians = [far_key_median(catalogue[a.model_name].card) for a in (companion, analysis)]
    if None not in medians:
        sentences.append(t("lecture.pam.medians", plain=medians[0], affinity=medians[1]))
    plain = step_numbers("pam", companion, label=selection.label).terms["own_ratio"]
    if not (math.isnan(plain) or math.isnan(numbers.terms["own_ratio"])):  # the pixel is labelled
        sentences.append(t("lecture.pam.this_pixel", plain=plain, affinity=numbers.terms["own_ratio"]))
    st.markdown(" ".join(sentences))


def navigation(step: str) -> None:
    """The buttons to the step before and after (off at the ends)."""
    number, previous, following = neighbours(STEPS, step)
    back, _, forward = st.columns([1, 4, 1])
    back.button(
        t("lecture.previous"),
        key=keys.LECTURE_PREVIOUS,
        disabled=number == 0,
        icon=":material/arrow_back:",
        on_click=st.session_state.__setitem__,
        args=(keys.LECTURE_STEP, previous),
    )
    forward.button(
        t("lecture.next"),
        key=keys.LECTURE_NEXT,
        disabled=number == len(STEPS) - 1,
        icon=":material/arrow_forward:",
        on_click=st.session_state.__setitem__,
        args=(keys.LECTURE_STEP, following),
    )


selection = app.page_selection()
present = controls()
step = st.session_state[keys.LECTURE_STEP]
introduction(step)
live_step(selection, step)
navigation(step)
app.link_params(step=step, present="1" if present else None)
