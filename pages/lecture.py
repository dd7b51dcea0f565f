"""The guided lecture: the article's seven modules in its order, one screen each (attnviz.analysis.lecture)."""

import streamlit as st

from attnviz import app
from attnviz.analysis.lecture import FORMULAS, STEP_MODELS, STEPS, step_numbers
from attnviz.app import keys
from attnviz.app.language import t
from attnviz.app.lecture import presentation_style, step_figure

selection = app.page_selection()
app.apply_link("step", keys.LECTURE_STEP, STEPS, what=f"steps are {', '.join(STEPS)}")
app.apply_link("present", keys.LECTURE_PRESENT, (True, False), convert=lambda v: v == "1", what="use present=1")
st.session_state.setdefault(keys.LECTURE_STEP, STEPS[0])
present = st.toggle(t("lecture.presentation"), key=keys.LECTURE_PRESENT, help=t("lecture.presentation_help"))
if present:
    presentation_style()
else:
    st.title(t("lecture.title"))
    st.caption(t("lecture.intro"))
step = st.session_state[keys.LECTURE_STEP]
number = STEPS.index(step)
st.subheader(t("lecture.step_of", number=number + 1, total=len(STEPS), name=t(f"lecture.{step}.name")))
st.markdown(t(f"lecture.{step}.intuition"))

model_name = STEP_MODELS[step]
if model_name not in app.catalogue():
    st.warning(t("lecture.missing_model", model=model_name))
    app.stop_page()
analysis = app.analysis_for(selection, model_name)
if analysis is None:
    app.stop_page()
numbers = step_numbers(step, analysis)
st.caption(t("lecture.model_note", model=model_name, photo=selection.image_title))
step_figure(step, selection, analysis, numbers)
st.markdown(f"**{t('lecture.notice_title')}:** " + t(f"lecture.{step}.notice", **numbers.terms))
st.latex(FORMULAS[step])
st.markdown(f"**{t('lecture.numbers_title')}:** " + t(f"lecture.{step}.terms", layer=numbers.layer, **numbers.terms))

back, _, forward = st.columns([1, 4, 1])
back.button(
    t("lecture.previous"),
    key=keys.LECTURE_PREVIOUS,
    disabled=number == 0,
    icon=":material/arrow_back:",
    on_click=st.session_state.__setitem__,
    args=(keys.LECTURE_STEP, STEPS[max(number - 1, 0)]),
)
forward.button(
    t("lecture.next"),
    key=keys.LECTURE_NEXT,
    disabled=number == len(STEPS) - 1,
    icon=":material/arrow_forward:",
    on_click=st.session_state.__setitem__,
    args=(keys.LECTURE_STEP, STEPS[min(number + 1, len(STEPS) - 1)]),
)
app.link_params(step=step, present="1" if present else None)
