"""Switch it off: the section every module page and lecture step shows under its module (attnviz issue 30).

The student picks off or flat (attnviz.capture.interventions) and which modules (the page's kind: all of
them, one stage or one layer; attnviz.analysis.switch.switch_choices). The model then runs once more on the
same photo with those modules switched: one cached analysis keyed by the intervention, through the shared
pool like every analysis (attnviz.app.guards.analysis_for). The section shows the answer with and without side
by side, the pixels whose class changed (old class -> new class on hover), the share changed, this photo's
mIoU and per-class IoU change when it has a ground truth, or for a classifier its top 5 with and without;
and one sentence chosen from the data (attnviz.analysis.switch.effect_words), never from alpha's size or sign.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attnviz.analysis.switch import (
    SwitchChoice,
    cbam_parents,
    changed_grid,
    effect_words,
    largest_iou_changes,
    switch_choices,
    switch_effect,
    switch_groups,
)
from attnviz.app import keys
from attnviz.app.guards import analysis_for
from attnviz.app.language import bound_t, language, t
from attnviz.app.widgets import chart, figure_caption
from attnviz.capture.interventions import FLAT, OFF, Intervention
from attnviz.i18n import catalog, translate
from attnviz.viz.changes import changed_pixels_figure
from attnviz.viz.figures import class_name
from attnviz.viz.overlays import blend_classes, blend_labels

__all__ = ["switch_section", "switchable_modules"]

AS_TRAINED = "none"  # the radio's first option: nothing switched
MODES = (AS_TRAINED, OFF, FLAT)


def kind_name(kind: str, tr=None) -> str:
    """A module kind in the page's language ("flexible" -> "flexible attention"); kinds the catalog does not
    name (a user model's "non-local") as they are. `tr`: a `bound_t()`, for a format_func."""
    key = f"switch.kinds.{kind}"
    return (tr or t)(key) if key in catalog(language()) else kind


def choice_label(choice: SwitchChoice, tr=None) -> str:
    """What the picker shows for a choice: every module of the kind, one stage's, or the layer's path."""
    if choice.layer:
        return choice.layer
    tr = tr or t
    words = dict(kind=kind_name(choice.kind, tr), count=len(choice.paths))
    if choice.stage:
        return tr("switch.stage", stage=choice.stage, **words)
    return tr("switch.all" if len(choice.paths) > 1 else "switch.only", **words)


def _controls(choices: dict[str, SwitchChoice], context: str, start: str) -> tuple[str, str]:
    """The mode (each explained in one sentence) and the modules picked."""
    tr = bound_t()
    left, right = st.columns(2)
    key = keys.switch(context, "mode")
    st.session_state.setdefault(key, start)
    mode = left.radio(
        t("switch.mode"),
        MODES,
        format_func=lambda m: tr(f"switch.modes.{m}"),
        captions=[t(f"switch.explain.{m}") for m in MODES],
        key=key,
    )
    picked = right.selectbox(
        t("switch.which"),
        list(choices),
        format_func=lambda c: choice_label(choices[c], tr),
        key=keys.switch(context, "modules"),
    )
    return mode, picked


def switch_section(
    selection, analysis, kinds: tuple[str, ...] | None = None, context: str = "page", model_name: str | None = None
) -> None:
    """The section for `analysis` (of the selection's model, or of CamVid checkpoint `model_name` on the
    selection's photo): `kinds` the page's module kinds (None: every kind the model can switch); `context`
    keeps each page's and step's widgets apart. Nothing is shown when the model has no module of those kinds."""
    choices = switch_choices(analysis.records, kinds)
    if not choices:
        return
    st.subheader(t("switch.title"))
    st.markdown(t("switch.intro"))
    # a lecture step shows a switch at once: flat, which keeps the features' scale (off also feeds the next
    # layers a scale they never saw, the most dramatic answer and not the most telling one)
    mode, picked = _controls(choices, context, FLAT if context.startswith("lecture") else AS_TRAINED)
    if mode == AS_TRAINED:
        st.caption(t("switch.pick"))
        return
    choice = choices[picked]
    after = analysis_for(selection, model_name, Intervention(mode, choice.paths))
    if after is None:
        return
    camvid = model_name is not None or selection.source == "camvid"
    effect = switch_effect(analysis, after, selection.label if camvid else None)
    action = t(f"switch.action.{mode}", module=choice_label(choice))
    if effect.changed is not None:
        segmentation_effect(selection, analysis, after, effect, action, mode, camvid, context)
    else:
        classifier_effect(analysis, after, effect, action)


def _class_text(index: int, class_names, camvid: bool) -> str:
    if camvid:
        return class_name(index, language())
    if class_names and 0 <= index < len(class_names):
        return str(class_names[index])
    return t("switch.class_number", index=index)


def _overlay(image, prediction, class_names, camvid: bool):
    if camvid:
        return blend_labels(image, prediction)
    return blend_classes(image, prediction, len(class_names) if class_names else 0)


def segmentation_effect(selection, before, after, effect, action: str, mode: str, camvid: bool, context: str) -> None:
    """The sentence, both predictions, the share changed and the mIoU change, the changed-pixel map and each
    class's IoU change."""
    st.markdown(t(f"switch.effect.{effect_words(effect)}", action=action, share=effect.changed_share))
    names = before.class_names
    left, right = st.columns(2)
    left.image(_overlay(selection.image, before.prediction, names, camvid), caption=t("switch.with"))
    right.image(_overlay(selection.image, after.prediction, names, camvid), caption=t(f"switch.without_{mode}"))
    share, miou = st.columns(2)
    share.metric(t("switch.share"), f"{effect.changed_share:.2%}")
    if effect.miou_change is not None:
        miou.metric(
            t("switch.miou"),
            f"{effect.miou_before:.1%} → {effect.miou_after:.1%}",
            delta=t("switch.points", change=effect.miou_change * 100),
        )
    if effect.changed.any():
        figure = changed_pixels_figure(
            selection.image,
            changed_grid(before.prediction, after.prediction),
            lambda old, new: t(
                "switch.arrow", old=_class_text(old, names, camvid), new=_class_text(new, names, camvid)
            ),
            t("switch.changed_title"),
        )
        chart(
            st,
            figure,
            key=keys.switch(context, "changed"),
            caption=figure_caption(t("switch.changed_module"), action, model=before.model_name),
        )
        st.caption(t("switch.changed_hover"))
    else:
        st.caption(t("switch.changed_none"))
    if effect.class_iou_change is None:
        st.caption(t("switch.no_label"))
        return
    st.markdown(t("switch.iou_title"))
    rows = [
        {"class": translate(f"classes.{name}", language()), "change": round(change * 100, 2)}
        for name, change in largest_iou_changes(effect)
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={
            "class": st.column_config.TextColumn(t("switch.class")),
            "change": st.column_config.NumberColumn(t("switch.iou_change"), format="%+.2f"),
        },
    )


def _top_table(where, top) -> None:
    frame = pd.DataFrame([{"class": name, "probability": p} for _, name, p in top])
    where.dataframe(
        frame,
        hide_index=True,
        column_config={
            "class": st.column_config.TextColumn(t("overview.timm.class")),
            "probability": st.column_config.ProgressColumn(
                t("overview.timm.probability"), format="percent", min_value=0.0, max_value=1.0
            ),
        },
    )


def classifier_effect(before, after, effect, action: str) -> None:
    """A classifier: the sentence, its top 5 with and without, and the change of the top class's probability."""
    change = effect.top_probability_change
    change_text = t("switch.not_in_top") if change is None else t("switch.points", change=change * 100)
    words = dict(action=action, top=before.top_classes[0][1], new=after.top_classes[0][1], change=change_text)
    st.markdown(t(f"switch.effect.{effect_words(effect)}", **words))  # each sentence takes the words it names
    left, right = st.columns(2)
    left.markdown(t("switch.top_with"))
    _top_table(left, before.top_classes)
    right.markdown(t("switch.top_without"))
    _top_table(right, after.top_classes)
    first_after = next((p for index, _, p in after.top_classes if index == before.top_classes[0][0]), None)
    st.metric(
        t("switch.top_change"),
        t("switch.not_in_top") if first_after is None else f"{before.top_classes[0][2]:.1%} → {first_after:.1%}",
        delta=None if change is None else t("switch.points", change=change * 100),
    )


def switchable_modules(selection, analysis) -> None:
    """A user's model on the Overview: every module that can be switched, by kind, then the switch section for
    all of them."""
    groups = switch_groups(analysis.records, cbam_parents(analysis.records))
    if not groups:
        return
    st.subheader(t("switch.groups_title"))
    st.markdown(t("switch.groups_intro"))
    rows = [
        {"kind": kind_name(kind), "count": len(paths), "modules": ", ".join(paths)} for kind, paths in groups.items()
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={column: st.column_config.TextColumn(t(f"switch.{column}")) for column in ("kind", "count")}
        | {"modules": st.column_config.TextColumn(t("switch.modules"), width="large")},
    )
    switch_section(selection, analysis, context="overview")
