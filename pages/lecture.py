"""The guided lecture: the article's seven modules in its order, one screen each (attnviz.analysis.lecture).

The page reads as its contents, called in order at the bottom: the presentation switch and the heading, the
step's intuition, its live figure with what to notice and its formula with this photo's numbers, and the
buttons to the step before and after. attnviz.analysis.lecture computes each step's numbers and
attnviz.app.lecture draws its figure."""

import dataclasses

import streamlit as st

from attnviz import app
from attnviz.analysis import lecture
from attnviz.analysis.lecture import (
    FORMULAS,
    STEP_COMPANIONS,
    STEP_MODELS,
    STEPS,
    convention_key,
    step_numbers,
)
from attnviz.analysis.switch import switch_choices
from attnviz.analysis.views import neighbours
from attnviz.app import keys
from attnviz.app.guards import layer_weights_on_photos
from attnviz.app.language import language, t
from attnviz.app.lecture import PREFETCH_KEY, deck_button, presentation_style, step_figure
from attnviz.capture.interventions import FLAT, Intervention


def controls(selection):
    """The step and presentation mode from the link, the presentation switch and, outside the presentation view,
    the button that downloads the lecture as PDF slides (attnviz.app.lecture.deck_button). Returns whether it is on
    and, in the presentation view, the slide's top row (title, Previous, Next) with the switch at its end,
    so that the step keeps the whole screen below; else None."""
    app.apply_link("step", keys.LECTURE_STEP, STEPS, what=t("lecture.link_step", steps=", ".join(STEPS)))
    app.apply_link(
        "present", keys.LECTURE_PRESENT, (True, False), convert=lambda v: v == "1", what=t("lecture.link_present")
    )
    st.session_state.setdefault(keys.LECTURE_STEP, STEPS[0])
    row = None
    if st.session_state.get(keys.LECTURE_PRESENT):
        row = st.columns([6.2, 1.7, 1.4, 0.7], vertical_alignment="center")
    present = (row[3] if row else st).toggle(
        t("lecture.presentation"),
        key=keys.LECTURE_PRESENT,
        help=t("lecture.presentation_help"),
        label_visibility="collapsed" if row else "visible",
    )
    if present:
        presentation_style()
    else:
        st.title(t("lecture.title"))
        st.caption(t("lecture.intro"))
        deck_button(selection)
    return present, (row[:3] if row and present else None)


def heading(step: str, row) -> None:
    """Which step of how many; in the presentation view (`row`: its top row) with the buttons to the step
    before and after beside it, so that a slide never hides them below the screen."""
    number = STEPS.index(step)
    title = t("lecture.step_of", number=number + 1, total=len(STEPS), name=t(f"lecture.{step}.name"))
    if row is None:
        st.subheader(title)
        return
    head, back, forward = row
    head.subheader(title)
    navigation(step, True, back, forward)


# the steps whose live figure needs the slide's wider column, their intuition then moving to the notes
TALL_FIGURES = ("pam", "cam")


def live_step(selection, step: str, present: bool) -> None:
    """The step's model on the sidebar's photo: its intuition, figure, what to notice and the formula with its
    numbers (the page stops with a note when the model is not shipped). The presentation view is a slide: the
    figure beside the intuition, formula and numbers, and what to notice and the switch behind closed
    expanders (the switch computes only once opened)."""
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
    notice = t(f"lecture.{step}.notice", **numbers.terms)
    notes = f"**{t('lecture.notice_title')}** " + " ".join(filter(None, (notice, example)))
    model_note = t("lecture.model_note", model=model_name, photo=selection.image_title)
    if selection.model_name != model_name:  # the step's model is its own: say that the sidebar's is not used
        model_note = t(
            "lecture.model_note_own", model=model_name, sidebar=selection.model_name, photo=selection.image_title
        )
    if present:
        tall = step in TALL_FIGURES
        left, right = st.columns([13, 7] if tall else [11, 9], gap="medium")
        with left:
            step_figure(step, selection, analysis, numbers, companion, present=True)
        with right:
            if not tall:
                st.markdown(t(f"lecture.{step}.intuition"))
            formula(step, numbers, present=True)
        with st.expander(t("lecture.notes"), icon=":material/notes:"):
            if tall:
                st.markdown(t(f"lecture.{step}.intuition"))
            st.caption(model_note)
            st.markdown(notes)
            if companion is not None:
                side_by_side(selection, analysis, companion)
        with st.expander(t("switch.title"), key=keys.lecture_switch(step), on_change="rerun") as box:
            if box.open:
                app.switch_section(selection, analysis, (step,), context=f"lecture_{step}", model_name=model_name)
        return
    st.markdown(t(f"lecture.{step}.intuition"))
    st.caption(model_note)
    step_figure(step, selection, analysis, numbers, companion)
    st.markdown(notes)
    if companion is not None:
        side_by_side(selection, analysis, companion)
    formula(step, numbers)
    app.switch_section(selection, analysis, (step,), context=f"lecture_{step}", model_name=model_name)


def formula(step: str, numbers, present: bool = False) -> None:
    """The step's formula in the article's notation, the sentence that relates it to the code's where they
    differ (PAM: the index S is normalised over; CAM: the article's and the official X, and which one the
    shipped model uses), and the formula's terms with this photo's numbers."""
    st.latex(FORMULAS[step])
    convention = convention_key(step, numbers)
    if convention:
        (st.caption if present else st.markdown)(t(convention))
    st.markdown(f"**{t('lecture.numbers_title')}** " + t(f"lecture.{step}.terms", layer=numbers.layer, **numbers.terms))


def flexible_example(selection, analysis, numbers):
    """The flexible step's numbers on its example channel and the sentence that shows it, or says that no
    channel does (attnviz.analysis.lecture.flexible_example), over the first sample photos."""
    on_samples = dataclasses.replace(selection, model_name=analysis.model_name, source="camvid")
    numbers, sentence = lecture.flexible_example(analysis, numbers, layer_weights_on_photos(on_samples, numbers.layer))
    return numbers, sentence.text(language()) if sentence else ""


def companion_analysis(selection, step: str):
    """The analysis of the model the step draws beside its own (STEP_COMPANIONS), or None (none, or not
    shipped)."""
    name = STEP_COMPANIONS.get(step)
    return app.analysis_for(selection, name) if name in app.catalogue() else None


def side_by_side(selection, analysis, companion) -> None:
    """The PAM step's two models: which is which, their test-split medians and this pixel's own-class ratios
    (attnviz.analysis.lecture.pam_sentences)."""
    cards = {a.model_name: app.catalogue()[a.model_name].card for a in (companion, analysis)}
    sentences = lecture.pam_sentences(companion, analysis, cards, label=selection.label)
    st.markdown(" ".join(p.text(language()) for p in sentences))


def navigation(step: str, present: bool, back=None, forward=None) -> None:
    """The buttons to the step before and after (off at the ends), in `back` and `forward` (default: a row
    of their own). In the presentation view the arrow keys press them, and so do PageUp and PageDown (what a
    presenter's clicker sends), through two buttons the slide does not show (presentation.css)."""
    if back is None:
        back, _, forward = st.columns([1, 4, 1])
    number, previous, following = neighbours(STEPS, step)
    for where, label, key, target, disabled, icon, arrow, page in (
        (back, "previous", keys.LECTURE_PREVIOUS, previous, number == 0, "arrow_back", "Left", "PageUp"),
        (forward, "next", keys.LECTURE_NEXT, following, number == len(STEPS) - 1, "arrow_forward", "Right", "PageDown"),
    ):
        go = {"on_click": st.session_state.__setitem__, "args": (keys.LECTURE_STEP, target), "disabled": disabled}
        where.button(
            t(f"lecture.{label}"), key=key, icon=f":material/{icon}:", shortcut=arrow if present else None, **go
        )
        if present:
            where.button(t(f"lecture.{label}"), key=keys.lecture_page_button(key), shortcut=page, **go)


def prefetch(selection, step: str, present: bool) -> None:
    """Compute the next step's analyses now, while the lecturer talks, so that Next finds them cached: its
    model on this photo (and the PAM step's companion), for the flexible step its layer on the sample photos,
    and outside the presentation view the switch the step shows at once (its first modules made flat). Runs
    at the end of the page, in a container the page does not show (PREFETCH_KEY)."""
    _, _, following = neighbours(STEPS, step)
    if following == step:
        return
    with st.container(key=PREFETCH_KEY):
        st.html(f"<style>.st-key-{PREFETCH_KEY} {{ display: none; }}</style>")
        names = [STEP_MODELS[following], STEP_COMPANIONS.get(following)]
        analyses = [app.analysis_for(selection, name) for name in names if name in app.catalogue()]
        if following == "flexible" and analyses and analyses[0] is not None:
            layer = step_numbers("flexible", analyses[0]).layer
            on_samples = dataclasses.replace(selection, model_name=analyses[0].model_name, source="camvid")
            layer_weights_on_photos(on_samples, layer)
        if not present and analyses and analyses[0] is not None:
            choices = switch_choices(analyses[0].records, (following,))
            if choices:
                first = next(iter(choices.values()))
                app.analysis_for(selection, STEP_MODELS[following], Intervention(FLAT, first.paths))


selection = app.page_selection()
present, row = controls(selection)
step = st.session_state[keys.LECTURE_STEP]
heading(step, row)
live_step(selection, step, row is not None)
if not present:
    navigation(step, present)
app.link_params(step=step, present="1" if present else None)
prefetch(selection, step, present)
