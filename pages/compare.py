"""Compare 2 to 4 models on the same photo: predictions, attention, accuracy, size and speed; the intervals,
the DANet quality figures and the evaluation settings for researchers at the end."""

import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.analysis.forward import feature_index, mean_weight_spread
from attnviz.analysis.metrics import score_prediction
from attnviz.app import keys
from attnviz.capture import CoordinateAttentionRecord
from attnviz.results import BASELINE, DASH, as_number, model_results, results_rows
from attnviz.viz.figures import coordinate_attention_figure, layer_summary_figure, short_layer_name
from attnviz.viz.overlays import blend_heatmap, blend_labels

t = app.t

# results_rows' columns -> their short header and help text (compare.columns / compare.help)
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


st.title(t("compare.title"))
st.markdown(t("compare.intuition"))
st.markdown(t("compare.notice"))
selection = app.page_selection()
if selection.source == "timm":
    st.info(t("compare.timm_note", model=selection.model_name))
names = list(app.catalogue())
default = [n for n in ("fcn-none", "fcn-se", "fcn-eca", "fcn-cbam") if n in names][:4] or names[:2]
chosen = st.multiselect(t("compare.models"), names, default=default, max_selections=4, key=keys.COMPARE_MODELS)
if len(chosen) < 2:
    st.info(t("compare.pick_two"))
    app.stop_page()

timings, device = [], None
columns = st.columns(len(chosen))
for column, name in zip(columns, chosen):
    analysis = app.analysis_for(selection, name)
    if analysis is None:
        continue
    timings.append(t("compare.researchers.timing_item", model=name, ms=analysis.forward_s * 1000))
    device = analysis.device
    with column:
        st.subheader(name)
        st.image(blend_labels(selection.image, analysis.prediction), caption=t("compare.prediction"))
        if selection.label is not None:
            scores = score_prediction(analysis.prediction, selection.label)
            st.metric(t("compare.miou_photo"), f"{scores['miou']:.1%}")
        channel = analysis.channel_layers()
        coords = analysis.of_type(CoordinateAttentionRecord)
        if analysis.position is not None:
            _, pam = analysis.position
            h, w = selection.image.shape[:2]
            centre = feature_index(w // 2, h // 2, (h, w), (pam.height, pam.width))
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
                caption=app.figure_caption(
                    t("compare.ca_module"), t("figures.caption_layer", layer=last_name), model=name
                ),
            )
        if not (channel or coords or analysis.position):
            st.caption(t("compare.baseline"))

results = app.results()
st.subheader(t("compare.table_title"))
rows = results_rows(results)
if not rows:
    st.warning(t("compare.no_results"))
else:
    table = pd.DataFrame(rows)
    table.insert(1, "shown", table["model"].isin(chosen))
    # compact forms for the first table: the difference without its interval, yes / no in the page's language
    table["difference"] = table[f"vs {BASELINE} (points)"].str.split(" [", n=1, regex=False).str[0]
    table["beyond"] = table["beyond test noise"].map({"yes": t("compare.yes"), "no": t("compare.no")}).fillna(DASH)
    photos = max((as_number(model_results(results, name).get("images")) or 0 for name in table["model"]), default=0)
    photos = int(photos) if photos else "?"
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
        meta = results["meta"] if isinstance(results.get("meta"), dict) else {}
        machine = meta["machine"] if isinstance(meta.get("machine"), dict) else {}
        st.caption(
            t(
                "compare.researchers.source",
                command=str(meta.get("command", "python -m attnviz.evaluate")).strip(),
                cpu=machine.get("cpu", "?"),
                threads=meta.get("latency_threads", "?"),
                repeats=meta.get("latency_repeats", "?"),
            )
        )
