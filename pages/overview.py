"""Overview: the photo, the prediction, the ground truth, and a map of the app."""
import streamlit as st

from attnviz import appstate
from attnviz.analysis import classes_present
from attnviz.exports import png_bytes
from attnviz.metrics import score_prediction
from attnviz.text import markdown_literal
from attnviz.viz.figures import class_legend_figure, training_curve_figure
from attnviz.viz.overlays import blend_labels

st.title("attnviz: what do attention modules look at?")
st.markdown(
    "Attention modules re-weight a CNN's features: **channel attention** (SE, ECA, flexible/CBAM) multiplies "
    "each channel by a weight in (0, 1); **spatial attention** (CBAM's spatial gate, Coordinate Attention) "
    "weights positions; DANet's **position attention** lets every pixel gather features from every other "
    "pixel, and its **channel attention** mixes channels. Pick a model and a photo in the sidebar, then explore.")
selection, analysis = appstate.page_analysis()

columns = st.columns(3 if selection.label is not None else 2)
columns[0].image(selection.image, caption=f"Photo: {markdown_literal(selection.image_title)}")
prediction_overlay = blend_labels(selection.image, analysis.prediction)
columns[1].image(prediction_overlay, caption=f"Prediction of {selection.model_name}")
appstate.download(columns[1], "Prediction overlay (PNG)", png_bytes(prediction_overlay),
                  f"{selection.model_name}-prediction.png", key="prediction_png")
if selection.label is not None:
    columns[2].image(blend_labels(selection.image, selection.label), caption="Ground truth (CamVid)")
    scores = score_prediction(analysis.prediction, selection.label)
    st.markdown(f"On this photo: pixel accuracy **{scores['pixel_accuracy']:.1%}**, mean IoU over the classes "
                f"present **{scores['miou']:.1%}** (unlabelled pixels ignored).")
appstate.chart(st, class_legend_figure(classes_present(analysis.prediction, selection.label)), key="legend")
st.caption(f"Forward pass with capture: {analysis.forward_s * 1000:.0f} ms on {analysis.device}, measured when this "
           f"photo ({selection.image.shape[1]}x{selection.image.shape[0]}) first ran on this model; every page reuses "
           "that cached result. Steady-state latency is in the compare page's table.")

card = selection.card
evaluation = card.get("evaluation", {})
training = card.get("training", {})
with st.expander(f"Model card: {selection.model_name}", expanded=False):
    if evaluation:
        st.markdown(f"mIoU on the CamVid {evaluation.get('split', 'test')} split ({evaluation.get('images', '?')} photos): "
                    f"**{evaluation.get('miou', float('nan')):.1%}**, "
                    f"parameters {evaluation.get('parameters', 0):,}, attention parameters "
                    f"{evaluation.get('attention_parameters', 0):,}.")
    if training:
        settings = training.get("settings", {})
        st.markdown(f"Trained {training.get('epochs')} epochs on {training.get('device')} in "
                    f"{training.get('wall_time_s', 0) / 60:.0f} min; batch {settings.get('batch_size')}, "
                    f"crop {settings.get('crop')}, lr {settings.get('lr')}. Data: {training.get('data_licence')}.")
        if training.get("history"):
            appstate.chart(st, training_curve_figure(training["history"], f"Training of {selection.model_name}"),
                            key="training_curve")
    st.json(card.get("config", {}), expanded=False)

st.subheader("Map of the app")
st.page_link("pages/eca.py", label="ECA channel weights: every ECA layer's weights for this photo, the learned kernels, the channels it favours")
st.page_link("pages/eca_kernel.py", label="ECA kernel size: k as a function of C, the rules side by side")
st.page_link("pages/flexible.py", label="Flexible attention: the average- and max-pool branches and their weights")
st.page_link("pages/position.py", label="DANet position attention: click a pixel, see where it attends and who attends to it")
st.page_link("pages/channel_map.py", label="DANet channel attention: the C x C map, click a cell")
st.page_link("pages/compare.py", label="Compare modules: 2 to 4 models on this photo, with accuracy, size and speed")
