"""Flexible attention (CBAM's channel branch) and SE: weights, and both pooling branches where there are two."""
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.exports import vector_csv
from attnviz.capture import SpatialAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.modules.flexible import branch_statistics
from attnviz.modules.se import pre_sigmoid
from attnviz.viz.figures import attention_map_figure, branches_figure, layer_weights_heatmap, sorted_weights_figure

st.title("Flexible and SE attention: pooled descriptors, one MLP")
st.markdown(
    r"""The flexible (soft) channel attention is CBAM's channel branch (Woo et al., ECCV 2018). Every channel gets a
soft weight in (0, 1) from **two** descriptors of the feature map $F$, passed through **one shared MLP**
($C \to C/r \to C$, ReLU between):

$$\omega = \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F)) + \mathrm{MLP}(\mathrm{MaxPool}(F))\big),\qquad F' = \omega \odot F .$$

Average pooling summarises the whole map; max pooling keeps the strongest response, so a channel that fires
strongly in one small place can still get a high weight. **SE** (Hu et al., CVPR 2018) is the average branch
alone, $\omega = \sigma(\mathrm{MLP}(\mathrm{AvgPool}(F)))$; EfficientNet and MobileNetV3 use SE too (MobileNetV3
with a hard sigmoid, which can reach exactly 0 and 1).""")
selection, analysis = app.page_analysis(attention=(AttentionKind.FLEXIBLE, AttentionKind.CBAM, AttentionKind.SE),
                                        what="flexible (CBAM channel) or SE attention",
                                        needs=lambda a: bool(a.channel_layers((AttentionKind.FLEXIBLE, AttentionKind.SE))))
layers = analysis.channel_layers((AttentionKind.FLEXIBLE, AttentionKind.SE))
names = list(layers)
selected = app.layer_picker(
    names, keys.FLEX_LAYER, format_func=lambda n: f"{n}  ({'SE' if layers[n].kind == AttentionKind.SE else 'flexible'}, C = {layers[n].channels})")
app.chart(st, layer_weights_heatmap(names, [layers[n].weights[0].numpy() for n in names], selected),
          key=keys.FLEX_HEATMAP)
record = layers[selected]
w = record.weights[0].numpy()
if "avg_branch" in record.parts and "max_branch" in record.parts:
    avg = record.parts["avg_branch"][0].numpy()
    mx = record.parts["max_branch"][0].numpy()
    app.download(st, f"Weights and branches of {selected} (CSV)",
                 vector_csv({"weight": w, "mlp_avg_branch": avg, "mlp_max_branch": mx}),
                      f"{selection.model_name}-{selected}-flexible-weights.csv", key=keys.FLEX_CSV)
    app.chart(st, branches_figure(avg, mx, w, f"{selected}: what each pooling branch contributes"),
              key=keys.FLEX_BRANCHES)
    top = int(w.argmax())
    max_term = f"({mx[top]:.3f})" if mx[top] < 0 else f"{mx[top]:.3f}"
    st.latex(rf"\omega_{{{top}}} = \sigma(\underbrace{{{avg[top]:.3f}}}_{{\text{{avg}}}} + "
             rf"\underbrace{{{max_term}}}_{{\text{{max}}}}) = \sigma({avg[top] + mx[top]:.3f}) = {w[top]:.4f}")
    dominant, correlation = branch_statistics(avg, mx)
    st.caption(f"In this layer the max-pool branch has the larger magnitude in {dominant:.0%} of the channels. "
               f"Correlation of the two branches across channels: {correlation:.2f}.")
else:
    st.markdown(f"**{selected}** is an SE layer: one (average-pool) branch, so its weights are the whole story.")
    app.download(st, f"Weights of {selected} (CSV)", vector_csv({"weight": w}),
                 f"{selection.model_name}-{selected}-se-weights.csv", key=keys.FLEX_CSV)
    app.chart(st, sorted_weights_figure(w, f"{selected}: weights, sorted"), key=keys.FLEX_SORTED)
    st.caption(f"Spread of the weights: min {w.min():.3f}, max {w.max():.3f}.")
    if "pooled" in record.parts:
        top = int(w.argmax())
        squeezed = float(record.parts["pooled"][0, top])
        st.markdown(f"**The formula with this photo's numbers**, for the most weighted channel c = {top}: squeeze "
                    f"(its average z_c = {squeezed:.3f}), excite (the two-layer MLP over all of z), scale.")
        st.latex(rf"z_{{{top}}} = \tfrac{{1}}{{HW}}\textstyle\sum_{{h,w}} x_{{{top},h,w}} = {squeezed:.3f},\qquad "
                 rf"\omega_{{{top}}} = \sigma\big(W_2\,\delta(W_1 z)\big)_{{{top}}} = \sigma({pre_sigmoid(w[top]):.3f}) = {w[top]:.4f}")

spatial_name = selected.rsplit(".", 1)[0] + ".spatial"
spatial = analysis.records.get(spatial_name)
if isinstance(spatial, SpatialAttentionRecord):
    st.markdown("**CBAM's spatial gate** of the same block, applied after the channel weights "
                r"($\sigma(\mathrm{conv}_{7\times7}([\mathrm{AvgPool}_c; \mathrm{MaxPool}_c]))$):")
    gate = spatial.map[0].numpy()
    app.chart(st, attention_map_figure(gate, f"{spatial_name}: M_s from {gate.min():.4f} to {gate.max():.4f}",
                                       colour_title="M_s"), key=keys.FLEX_SPATIAL, theme=None, width="content")
    st.caption("Read the colour bar: when its range is tiny (all near 1), the gate keeps the whole picture and "
               "the colours only show differences too small to matter.")

app.channel_focus(selection, selected, record, w, "flex", app.weights_on_photos(selection))
app.extreme_channels(record.features, w, keys.FLEX_FEATURES)
app.link_params(layer=selected)
