"""Compare 2 to 4 models on the same photo: predictions, attention, accuracy, size and speed; the intervals,
the DANet quality figures and the evaluation settings for researchers at the end.

The page reads as its contents, called in order at the bottom: the introduction, the models picked, each
model's column, what each module contributes (its models' mIoU with the module switched off or flattened,
over the test split: the first answer to "which module helps"), and the table of the separately trained
models, each with its second layer for researchers. attnviz.analysis.views builds the tables and picks the
centre cell; the functions here lay them out."""

import streamlit as st

from attnviz import app
from attnviz.analysis.forward import mean_weight_spread
from attnviz.analysis.metrics import score_prediction
from attnviz.analysis.views import (
    SWITCH_COLUMNS,
    centre_cell,
    comparison_table,
    default_comparison,
    evaluation_source,
    photos_evaluated,
    switch_group_label,
    switch_summary,
    switch_table,
)
from attnviz.app import keys
from attnviz.capture import CoordinateAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.results import (
    BASELINE,
    DASH,
    EFFECTS,
    as_number,
    interventions_source,
    model_results,
    results_rows,
    switch_figures,
)
from attnviz.viz.figures import coordinate_attention_figure, layer_summary_figure, short_layer_name
from attnviz.viz.overlays import blend_heatmap, blend_labels

t = app.t

# results_rows' columns -> their short header and help text (compare.columns / compare.help)
ROW_PX = 35  # a Streamlit data frame's row (and header) height


def whole_table_height(rows: int) -> int:
    """A data frame's height that shows every row, with no scrolling inside it (a teacher's screen shows all)."""
    return (rows + 1) * ROW_PX + 3


KIND_WORDS = [kind.value for kind in AttentionKind if kind != AttentionKind.NONE]  # switch.kinds in the catalogs
COLUMNS = {
    "model": "model",
    "shown": "shown",
    "test mIoU (%)": "miou",
    "95% interval (%)": "interval",
    "difference": "difference",
    f"vs {BASELINE} (points)": "difference_interval",
    "beyond": "beyond",
    "pixel acc. (%)": "pixel_accuracy",
    "PAM own-class (x chance)": "pam_own",
    "PAM far-key own-class (x chance)": "pam_far",
    "PAM α": "pam_alpha",
    "parameters": "parameters",
    "attention params": "attention_parameters",
    "GMACs @360x480": "gmacs",
    "CPU latency (ms)": "latency",
}
MAIN = ["model", "shown", "test mIoU (%)", "difference", "beyond", "attention params", "CPU latency (ms)"]
ACCURACY = ["model", "test mIoU (%)", "95% interval (%)", f"vs {BASELINE} (points)", "beyond", "pixel acc. (%)"]
PAM = ["model", "PAM own-class (x chance)", "PAM far-key own-class (x chance)", "PAM α"]
COST = ["model", "parameters", "attention params", "GMACs @360x480", "CPU latency (ms)"]


def column_config(photos) -> dict:
    config = {}
    for column, name in COLUMNS.items():
        label = (
            t(f"compare.columns.{name}", baseline=BASELINE) if "difference" in name else t(f"compare.columns.{name}")
        )
        help_text = (
            t(f"compare.help.{name}", baseline=BASELINE, photos=photos)
            if name in ("miou", "difference", "difference_interval", "beyond")
            else t(f"compare.help.{name}")
        )
        config[column] = (
            st.column_config.CheckboxColumn(label, help=help_text)
            if name == "shown"
            else st.column_config.TextColumn(label, help=help_text)
        )
    return config


def introduction() -> None:
    st.title(t("compare.title"))
    st.markdown(t("compare.intuition"))
    st.markdown(t("compare.notice"))


def models_to_compare(selection) -> list[str]:
    """The models picked (2 to 4); the page stops with a note while fewer than two are."""
    if selection.source == "timm":
        st.info(t("compare.timm_note", model=selection.model_name))
    names = list(app.catalogue())
    chosen = st.multiselect(
        t("compare.models"), names, default=default_comparison(names), max_selections=4, key=keys.COMPARE_MODELS
    )
    if len(chosen) < 2:
        st.info(t("compare.pick_two"))
        app.stop_page()
    return chosen


def model_column(selection, name: str, analysis) -> float | None:
    """One model on the photo: its prediction and score, its position attention from the centre pixel, its
    channel weights and its last coordinate attention (or a note that it has no attention module); returns
    its mIoU on the photo (None without labels)."""
    st.subheader(name)
    st.image(blend_labels(selection.image, analysis.prediction), caption=t("compare.prediction"))
    scores = None if selection.label is None else score_prediction(analysis.prediction, selection.label)
    if scores is not None:
        st.metric(t("compare.miou_photo"), f"{scores['miou']:.1%}")
    channel = analysis.channel_layers()
    coords = analysis.of_type(CoordinateAttentionRecord)
    if analysis.position is not None:
        _, pam = analysis.position
        centre = centre_cell(selection.image.shape[:2], (pam.height, pam.width))
        st.image(
            blend_heatmap(selection.image, pam.row(centre).numpy()),
            caption=t("compare.pam_caption", alpha=pam.alpha),
        )
    if channel:
        app.chart(
            st,
            layer_summary_figure(
                list(channel),
                [r.weights[0].numpy() for r in channel.values()],
                t("compare.weights_title"),
                language=app.language(),
            ),
            key=keys.compare_chart("weights", name),
            caption=app.figure_caption(t("compare.weights_module"), model=name),
        )
        spread = mean_weight_spread(channel.values())
        st.caption(t("compare.spread", count=len(channel), spread=spread))
    if coords:
        last_name, last = list(coords.items())[-1]
        app.chart(
            st,
            coordinate_attention_figure(
                last.height_weights[0].numpy(),
                last.width_weights[0].numpy(),
                short_layer_name(last_name),
                language=app.language(),
            ),
            key=keys.compare_chart("coords", name),
            caption=app.figure_caption(t("compare.ca_module"), t("figures.caption_layer", layer=last_name), model=name),
        )
    if not (channel or coords or analysis.position):
        st.caption(t("compare.baseline"))
    return None if scores is None else float(scores["miou"])


def side_by_side(selection, chosen: list[str]) -> tuple[list[str], str | None, dict[str, float]]:
    """The chosen models in columns; returns their forward timings in words, the device they ran on and their
    mIoU on the photo (where it has labels)."""
    timings, device, scores = [], None, {}
    for column, name in zip(st.columns(len(chosen)), chosen):
        analysis = app.analysis_for(selection, name)
        if analysis is None:
            continue
        timings.append(t("compare.researchers.timing_item", model=name, ms=analysis.forward_s * 1000))
        device = analysis.device
        with column:
            score = model_column(selection, name, analysis)
        if score is not None:
            scores[name] = score
    return timings, device, scores


def photo_against_test(scores: dict[str, float], results: dict) -> None:
    """Which shown model scores best on this photo and which on the test split: one sentence (none without
    the photo's labels or a model's test mIoU). One photo and one seed per model cannot rank the modules."""
    test = {name: as_number(model_results(results, name).get("miou")) for name in scores}
    if len(scores) < 2 or None in test.values():
        return
    photo_best, test_best = max(scores, key=scores.get), max(test, key=test.get)
    if photo_best == test_best:
        st.markdown(t("compare.ranking_same", model=photo_best, photo=scores[photo_best], test=test[test_best]))
        return
    st.markdown(
        t(
            "compare.ranking_differs",
            photo_best=photo_best,
            photo=scores[photo_best],
            test_best=test_best,
            test=test[test_best],
            photo_best_test=test[photo_best],
        )
    )


def switch_column_config() -> dict:
    return {
        column: st.column_config.TextColumn(
            t(f"compare.switches.columns.{column}"), help=t(f"compare.switches.help.{column}")
        )
        for column in SWITCH_COLUMNS
    }


def module_contributions(results: dict) -> None:
    """Every model's attention kinds switched off and flattened over the test split: the change in mIoU with its
    paired interval, what the interval says, and for researchers the same stage by stage and its source."""
    st.subheader(t("compare.switches.title"))
    figures = switch_figures(results, "kinds")
    source = interventions_source(results)
    if not figures:
        st.info(t("compare.switches.no_results"))
        return
    st.markdown(t("compare.switches.intuition", photos=source["photos"]))
    words = {effect: t(f"compare.switches.effects.{effect}") for effect in EFFECTS}
    kinds = {kind: t(f"switch.kinds.{kind}") for kind in KIND_WORDS}
    config = switch_column_config()
    table = switch_table(figures, words, kinds)
    st.dataframe(table, hide_index=True, column_config=config, height=whole_table_height(len(table)))
    summary = switch_summary(figures)
    module = switch_group_label(summary["module"], kinds)
    mode = t(f"compare.switches.modes.{summary['mode']}")
    st.markdown(t("compare.switches.summary", **{**summary, "mode": mode, "module": module}))
    st.markdown(t("compare.switches.notice"))
    with st.expander(t("common.for_researchers")):
        stages = switch_figures(results, "stages")
        if stages:
            st.markdown(t("compare.switches.stages"))
            table = switch_table(stages, words, kinds)
            st.dataframe(table, hide_index=True, column_config=config, height=whole_table_height(len(table)))
        st.caption(t("compare.switches.source", **source))
        if source["missing"]:
            st.caption(t("compare.switches.missing", missing=", ".join(source["missing"])))


def results_table(results: dict, chosen: list[str], timings: list[str], device: str | None) -> None:
    """Every evaluated model's accuracy, size and speed, and for researchers the intervals, the DANet quality
    figures, the cost and where the figures come from."""
    st.subheader(t("compare.table_title"))
    rows = results_rows(results)
    if not rows:
        st.warning(t("compare.no_results"))
        return
    table = comparison_table(rows, chosen, t("compare.yes"), t("compare.no"))
    photos = photos_evaluated(results, table["model"])
    config = column_config(photos)
    st.dataframe(table, hide_index=True, column_order=MAIN, column_config=config)
    st.markdown(t("compare.table_notice", baseline=BASELINE))
    with st.expander(t("common.for_researchers")):
        if timings:
            st.caption(t("compare.researchers.timing", device=device, timings=", ".join(timings)))
        st.markdown(t("compare.researchers.sure", photos=photos))
        st.markdown(t("compare.researchers.accuracy"))
        st.dataframe(table, hide_index=True, column_order=ACCURACY, column_config=config)
        danet = table[table["PAM own-class (x chance)"] != DASH]
        if len(danet):
            st.markdown(t("compare.researchers.pam"))
            st.dataframe(danet, hide_index=True, column_order=PAM, column_config=config)
        st.markdown(t("compare.researchers.cost"))
        st.dataframe(table, hide_index=True, column_order=COST, column_config=config)
        st.caption(t("compare.researchers.source", **evaluation_source(results)))


introduction()
selection = app.page_selection()
chosen = models_to_compare(selection)
timings, device, scores = side_by_side(selection, chosen)
photo_against_test(scores, app.results())
module_contributions(app.results())
results_table(app.results(), chosen, timings, device)
