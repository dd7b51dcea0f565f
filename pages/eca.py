"""ECA: the channel weights of every ECA layer for this photo."""

import numpy as np
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.kinds import AttentionKind
from attnviz.modules.eca import eca_formula_terms
from attnviz.viz.exports import vector_csv
from attnviz.viz.figures import kernel_figure, layer_weights_heatmap, sorted_weights_figure

language = app.language()
st.title(app.t("eca.title"))
st.markdown(app.t("eca.intuition"))
selection, analysis = app.page_analysis(
    attention=(AttentionKind.ECA,), what=app.t("eca.what"), needs=lambda a: bool(a.channel_layers((AttentionKind.ECA,)))
)
# the sidebar's notice says so at the top too; the page's own words must not call random numbers learned
untrained = not selection.weights_trained
# ECA layers with a plain 1D kernel (every ECA of our models and of timm's ECA-ResNets and ECA-NFNet)
layers = {
    n: r
    for n, r in analysis.channel_layers((AttentionKind.ECA,)).items()
    if r.kernel is not None and "pooled" in r.parts
}
names = list(layers)
weights = [layers[n].weights[0].numpy() for n in names]
selected = app.layer_picker(
    names,
    keys.ECA_LAYER,
    # names and notation only, the same in every language: a label that changed with the language would
    # no longer match the value the browser holds for the select box
    format_func=lambda n: f"{n}  (C = {layers[n].channels}, k = {len(layers[n].kernel)})",
)
record = layers[selected]
w = record.weights[0].numpy()
kernel = record.kernel.numpy()
k = len(kernel)
st.markdown(
    app.t("eca.notice", layer=selected, lowest=float(w.min()), median=float(np.median(w)), highest=float(w.max()))
)
if untrained:
    st.caption(app.t("eca.notice_untrained"))

layer_caption = app.t("figures.caption_layer", layer=selected)
app.chart(
    st,
    layer_weights_heatmap(names, weights, selected, language=language),
    key=keys.ECA_HEATMAP,
    caption=app.figure_caption(app.t("eca.module")),
)
app.download(
    st,
    app.t("eca.csv", layer=selected),
    vector_csv({"weight": w}),
    f"{selection.model_name}-{selected}-eca-weights.csv",
    key=keys.ECA_CSV,
)
left, right = st.columns([3, 2])
app.chart(
    left,
    sorted_weights_figure(w, app.t("eca.sorted_title", layer=selected), language=language),
    key=keys.ECA_SORTED,
    caption=app.figure_caption(app.t("eca.module"), layer_caption),
)
kernel_chart = kernel_figure(
    kernel, language=language, title=app.t("eca.kernel_title_untrained" if untrained else "eca.kernel_title", k=k)
)
app.chart(
    right, kernel_chart, key=keys.ECA_KERNEL_CHART, caption=app.figure_caption(app.t("eca.module"), layer_caption)
)

st.markdown(app.t("eca.formula_title"))
st.latex(
    r"\begin{aligned}y_c &= \frac{1}{HW}\sum_{h,w} x_{c,h,w}\\"
    r"\omega_c &= \sigma\Big(\sum_{j=-(k-1)/2}^{(k-1)/2} \kappa_j\, y_{c+j}\Big)\\"
    r"\tilde x_c &= \omega_c\, x_c\end{aligned}"
)
st.markdown(app.t("eca.formula_terms", k=k))
top = int(w.argmax())
terms, total = eca_formula_terms(record.kernel, record.parts["pooled"][0], top, record.kernel_bias)
shown = [rf"{weight:+.3f}\cdot{f'({value:.3f})' if value < 0 else f'{value:.3f}'}" for weight, value in terms]
if record.kernel_bias:
    shown.append(f"{record.kernel_bias:+.3f}")  # the convolution's bias (a copy that kept nn.Conv1d's default)
st.markdown(app.t("eca.numbers_title", channel=top, layer=selected))
# one term a line: two a line were 21 px wider than a phone's column (390 px; attnviz.screenshots)
terms_lines = r"\\ &\qquad ".join(shown)
st.latex(
    rf"\begin{{aligned}}\omega_{{{top}}} &= \sigma\big({terms_lines}\big)\\ "
    rf"&= \sigma({total:.3f}) = {w[top]:.4f}\end{{aligned}}"
)
st.markdown(app.t("eca.numbers_terms", k=k, total=total, weight=float(w[top])))

app.channel_focus(selection, selected, record, w, "eca", app.weights_on_photos(selection))
app.extreme_channels(record.features, w, keys.ECA_FEATURES)
with st.expander(app.t("common.for_researchers")):
    channels = record.channels
    st.markdown(
        app.t("eca.researchers", layer=selected, channels=channels, k=k, se_parameters=2 * channels * channels // 16)
    )
app.link_params(layer=selected)
