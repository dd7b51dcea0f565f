"""ECA: the channel weights of every ECA layer for this photo."""
import numpy as np
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.exports import vector_csv
from attnviz.kinds import AttentionKind
from attnviz.modules.eca import eca_formula_terms
from attnviz.viz.figures import (kernel_figure, layer_weights_heatmap,
                                 sorted_weights_figure)

st.title("ECA: Efficient Channel Attention")
st.markdown(
    r"""ECA (Wang et al., CVPR 2020) gives every channel $c$ a weight from its neighbours' average activations,
with a 1D convolution of size $k$ across the channel axis and **no dimensionality reduction**:

$$y_c = \frac{1}{HW}\sum_{h,w} x_{c,h,w},\qquad \omega_c = \sigma\Big(\sum_{j=-(k-1)/2}^{(k-1)/2} \kappa_j\, y_{c+j}\Big),\qquad \tilde x_{c} = \omega_c\, x_{c}.$$

The layer has only $k$ parameters $\kappa$ (SE has about $2C^2/r$).""")
selection, analysis = app.page_analysis(attention=(AttentionKind.ECA,), what="ECA layers",
                                        needs=lambda a: bool(a.channel_layers((AttentionKind.ECA,))))
# ECA layers with a plain 1D kernel (every ECA of our models and of timm's ECA-ResNets and ECA-NFNet)
layers = {n: r for n, r in analysis.channel_layers((AttentionKind.ECA,)).items() if r.kernel is not None and "pooled" in r.parts}
names = list(layers)
weights = [layers[n].weights[0].numpy() for n in names]
selected = app.layer_picker(
    names, keys.ECA_LAYER, format_func=lambda n: f"{n}  (C = {layers[n].channels}, k = {len(layers[n].kernel)})")
app.chart(st, layer_weights_heatmap(names, weights, selected), key=keys.ECA_HEATMAP)

record = layers[selected]
w = record.weights[0].numpy()
app.download(st, f"Channel weights of {selected} (CSV)", vector_csv({"weight": w}),
             f"{selection.model_name}-{selected}-eca-weights.csv", key=keys.ECA_CSV)
left, right = st.columns([3, 2])
app.chart(left, sorted_weights_figure(w, f"{selected}: weights, sorted"), key=keys.ECA_SORTED)
kernel = record.kernel.numpy()
app.chart(right, kernel_figure(kernel), key=keys.ECA_KERNEL_CHART)

top = int(w.argmax())
terms, total = eca_formula_terms(record.kernel, record.parts["pooled"][0], top)
shown = [rf"{weight:+.3f}\cdot{f'({value:.3f})' if value < 0 else f'{value:.3f}'}" for weight, value in terms]
st.markdown(f"**The formula with this photo's numbers**, for the most weighted channel c = {top} of {selected} "
            f"(zero padding beyond the channel ends):")
# two lines: one line of k terms was cut off at the page's width
st.latex(rf"\begin{{aligned}}\omega_{{{top}}} &= \sigma\big({' '.join(shown)}\big)\\ &= \sigma({total:.3f}) = {w[top]:.4f}"
         rf"\end{{aligned}}")
st.caption(f"Spread of the weights in this layer: min {w.min():.3f}, median {float(np.median(w)):.3f}, max {w.max():.3f}. "
           "Weights near 0.5 everywhere mean the layer barely re-weights; a wide spread means it selects channels.")

app.channel_focus(selection, selected, record, w, "eca", app.weights_on_photos(selection))
app.extreme_channels(record.features, w, keys.ECA_FEATURES)
app.link_params(layer=selected)
