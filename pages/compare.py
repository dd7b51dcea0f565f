"""Compare 2 to 4 models on the same photo: predictions, attention, accuracy, size and speed."""
import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.analysis import feature_index, mean_weight_spread
from attnviz.capture import CoordinateAttentionRecord
from attnviz.metrics import score_prediction
from attnviz.results import COLUMN_HELP, results_rows
from attnviz.viz.figures import coordinate_attention_figure, layer_summary_figure, short_layer_name
from attnviz.viz.overlays import blend_heatmap, blend_labels

st.title("Compare attention modules on one photo")
st.markdown("The same backbone and training recipe with a different attention module in every residual block "
            "(or none), or a DANet head. Pick 2 to 4 models.")
selection = app.page_selection()
if selection.source == "timm":
    st.info("The comparison below is of the CamVid models (same backbone and recipe, one attention module "
            f"changed); the ImageNet classifier {selection.model_name} is not part of it. Its layers are on the "
            "ECA and Flexible / SE pages.")
names = list(app.catalogue())
default = [n for n in ("fcn-none", "fcn-se", "fcn-eca", "fcn-cbam") if n in names][:4] or names[:2]
chosen = st.multiselect("Models", names, default=default, max_selections=4, key=keys.COMPARE_MODELS)
if len(chosen) < 2:
    st.info("Pick at least two models to compare.")
    app.stop_page()

columns = st.columns(len(chosen))
for column, name in zip(columns, chosen):
    analysis = app.analysis_for(selection, name)
    if analysis is None:
        continue
    with column:
        st.subheader(name)
        st.image(blend_labels(selection.image, analysis.prediction), caption="prediction")
        if selection.label is not None:
            scores = score_prediction(analysis.prediction, selection.label)
            st.metric("mIoU on this photo", f"{scores['miou']:.1%}")
        channel = analysis.channel_layers()
        coords = analysis.of_type(CoordinateAttentionRecord)
        if analysis.position is not None:
            _, pam = analysis.position
            h, w = selection.image.shape[:2]
            centre = feature_index(w // 2, h // 2, (h, w), (pam.height, pam.width))
            st.image(blend_heatmap(selection.image, pam.row(centre).numpy()),
                     caption=f"PAM: where the centre pixel attends (α = {pam.alpha:.3f})")
        if channel:
            app.chart(st, layer_summary_figure(list(channel), [r.weights[0].numpy() for r in channel.values()],
                                                 "channel weights per block"), key=keys.compare_chart("weights", name))
            spread = mean_weight_spread(channel.values())
            st.caption(f"{len(channel)} channel-attention layers; mean spread (std) of weights {spread:.3f}")
        if coords:
            last_name, last = list(coords.items())[-1]
            app.chart(st, coordinate_attention_figure(last.height_weights[0].numpy(), last.width_weights[0].numpy(),
                                                        short_layer_name(last_name)), key=keys.compare_chart("coords", name))
        if not (channel or coords or analysis.position):
            st.caption("No attention module: the baseline.")
        st.caption(f"forward + capture: {analysis.forward_s * 1000:.0f} ms on {analysis.device}")

results = app.results()
st.subheader("Accuracy, attention quality, size and speed (CamVid test split)")
rows = results_rows(results)
if not rows:
    st.warning("checkpoints/results.json is missing or empty: run python -m attnviz.evaluate")
else:
    table = pd.DataFrame(rows)
    table.insert(1, "shown", table["model"].isin(chosen))
    st.dataframe(table, hide_index=True,
                 column_config={column: st.column_config.TextColumn(column, help=text)
                                for column, text in COLUMN_HELP.items()})
    meta = results.get("meta", {})
    st.caption(f"From `{meta.get('command', 'python -m attnviz.evaluate')}` on {meta.get('machine', {}).get('cpu', '?')} "
               f"({meta.get('latency_threads', '?')} threads, median of {meta.get('latency_repeats', '?')} runs). "
               "A dash: the figure does not apply (no position attention; the baseline itself) or is missing. "
               "Hover a column's name for what it measures.")
    st.markdown("**How sure are these numbers?** The intervals are 95% bootstrap intervals over the 233 test "
                "photos: they say how much a figure would move on other photos like these. They do **not** cover "
                "training seeds: each model was trained once, and a second seed of the same model can land a "
                "point or so away. So only a difference marked *beyond test noise* is more than photo sampling, "
                "and even that one may be seed noise. Per-class IoU and every pair's difference are in "
                "checkpoints/results.json.")
