"""Overview: the photo, the prediction, the ground truth, and a map of the app."""
from functools import partial

import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.analysis import classes_present
from attnviz.exports import png_bytes
from attnviz.metrics import score_prediction
from attnviz.models.checkpoint import card_summary
from attnviz.text import markdown_literal
from attnviz.records import CoordinateAttentionRecord, SpatialAttentionRecord
from attnviz.views import findings_rows
from attnviz.viz.figures import class_legend_figure, coordinate_attention_figure, training_curve_figure
from attnviz.viz.overlays import blend_classes, blend_heatmap, blend_labels

st.title("attnviz: what do attention modules look at?")
st.markdown(
    "Attention modules re-weight a CNN's features: **channel attention** (SE, ECA, flexible/CBAM) multiplies "
    "each channel by a weight in (0, 1); **spatial attention** (CBAM's spatial gate, Coordinate Attention) "
    "weights positions; DANet's **position attention** lets every pixel gather features from every other "
    "pixel, and its **channel attention** mixes channels. Pick a model and a photo in the sidebar, then explore.")
selection, analysis = app.page_analysis()

if selection.source == "user":  # a model given with --model / --models
    left, right = st.columns([3, 2])
    if analysis.prediction is not None:
        classes = analysis.class_names
        overlay = blend_classes(selection.image, analysis.prediction, len(classes) if classes else 0)
        left.image(overlay, caption=f"Prediction of {markdown_literal(selection.model_name)} (one colour a class)")
    else:
        left.image(selection.image, caption=f"Photo: {markdown_literal(selection.image_title)}")
        right.dataframe(pd.DataFrame([{"class": name, "index": index, "probability": p}
                                      for index, name, p in analysis.top_classes]), hide_index=True)
    right.markdown(f"**{markdown_literal(selection.model_name)}** from {markdown_literal(selection.weights_note)}: "
                   f"forward pass with capture {analysis.forward_s * 1000:.0f} ms on {analysis.device}.")
    st.subheader("Attention modules found in your model")
    if analysis.checks:
        st.dataframe(pd.DataFrame(findings_rows(analysis.checks)), hide_index=True)
        st.caption("Found by structure (attribute names and shapes), read through hooks on the module's own layers, "
                   "and verified: the module's output is rebuilt from what was recorded and compared with what it "
                   "really produced. Only verified modules are drawn on the other pages.")
    else:
        st.info("No attention module of a known family was found (DANet PAM / CAM, SAGAN, non-local, criss-cross, "
                "GCNet, ECA, SE, CBAM, Coordinate Attention).")
    if analysis.lookalikes:
        st.warning("Modules that look like attention but match no family (not drawn): "
                   + ", ".join(markdown_literal(name) for name in analysis.lookalikes))
    gates = analysis.of_type(SpatialAttentionRecord)
    coords = analysis.of_type(CoordinateAttentionRecord)
    if gates:
        st.markdown("**Spatial gates** (CBAM's SpatialGate: σ(conv([AvgPool_c; MaxPool_c]))), bright = kept:")
        for column, (name, gate) in zip(st.columns(min(3, len(gates))), list(gates.items())[:3]):
            column.image(blend_heatmap(selection.image, gate.map[0].numpy(), 0.6, 0, 1),
                         caption=f"{markdown_literal(name)} ({gate.map.shape[-2]}x{gate.map.shape[-1]})")
    for name, coord in list(coords.items())[:3]:
        app.chart(st, coordinate_attention_figure(coord.height_weights[0].numpy(), coord.width_weights[0].numpy(),
                                                  f"Coordinate attention {name}"), key=keys.user_chart(name))
    app.stop_page()

if analysis.top_classes is not None:  # an ImageNet classifier from timm
    left, right = st.columns([3, 2])
    left.image(selection.image, caption=f"Photo: {markdown_literal(selection.image_title)}")
    with right:
        st.markdown(f"**Top-5 ImageNet classes of {selection.model_name}** (timm's own preprocessing for this "
                    "model: resize, centre crop, normalisation):")
        st.dataframe(pd.DataFrame([{"class": name, "index": index, "probability": p}
                                   for index, name, p in analysis.top_classes]), hide_index=True,
                     column_config={"probability": st.column_config.ProgressColumn(format="percent",
                                                                                   min_value=0.0, max_value=1.0)})
        st.caption(f"Weights: {selection.weights_note}. {len(analysis.channel_layers())} "
                   f"{selection.attention.upper()} layers recorded through their own gates; forward pass "
                   f"{analysis.forward_s * 1000:.0f} ms on {analysis.device}.")
    st.markdown("The **ECA channel weights**, **ECA kernel size** and **Flexible / SE attention** pages show this "
                "model's layers. The DANet pages and the comparison need a CamVid model (switch the model source "
                "in the sidebar).")
    app.stop_page()

columns = st.columns(3 if selection.label is not None else 2)
columns[0].image(selection.image, caption=f"Photo: {markdown_literal(selection.image_title)}")
prediction_overlay = blend_labels(selection.image, analysis.prediction)
columns[1].image(prediction_overlay, caption=f"Prediction of {selection.model_name}")
app.download(columns[1], "Prediction overlay (PNG)", partial(png_bytes, prediction_overlay),
             f"{selection.model_name}-prediction.png", key=keys.PREDICTION_PNG)
if selection.label is not None:
    columns[2].image(blend_labels(selection.image, selection.label), caption="Ground truth (CamVid)")
    scores = score_prediction(analysis.prediction, selection.label)
    st.markdown(f"On this photo: pixel accuracy **{scores['pixel_accuracy']:.1%}**, mean IoU over the classes "
                f"present **{scores['miou']:.1%}** (unlabelled pixels ignored).")
app.chart(st, class_legend_figure(classes_present(analysis.prediction, selection.label)), key=keys.LEGEND)
st.caption(f"Forward pass with capture: {analysis.forward_s * 1000:.0f} ms on {analysis.device}, measured when this "
           f"photo ({selection.image.shape[1]}x{selection.image.shape[0]}) first ran on this model; every page reuses "
           "that cached result. Steady-state latency is in the compare page's table.")

summary = card_summary(selection.card)
with st.expander(f"Model card: {selection.model_name}", expanded=False):
    for line in (summary["evaluation"], summary["training"]):
        if line:
            st.markdown(line)
    if summary["note"]:
        st.caption(markdown_literal(summary["note"], max_length=2000))
    if summary["history"]:
        app.chart(st, training_curve_figure(summary["history"], f"Training of {selection.model_name}"),
                  key=keys.TRAINING_CURVE)
    st.json(selection.card.get("config", {}), expanded=False)

st.subheader("Map of the app")
st.page_link("pages/eca.py", label="ECA channel weights: every ECA layer's weights for this photo, the learned kernels, the channels it favours")
st.page_link("pages/eca_kernel.py", label="ECA kernel size: k as a function of C, the rules side by side")
st.page_link("pages/flexible.py", label="Flexible / SE attention: the average- and max-pool branches and their weights")
st.page_link("pages/position.py", label="DANet position attention: click a pixel, see where it attends and who attends to it")
st.page_link("pages/channel_map.py", label="DANet channel attention: the C x C map, click a cell")
st.page_link("pages/attribution.py", label="Attention vs attribution: Grad-CAM and Integrated Gradients for the clicked pixel beside its row of S")
st.page_link("pages/compare.py", label="Compare modules: 2 to 4 models on this photo, with accuracy, size and speed")
