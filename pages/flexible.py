"""Flexible attention (CBAM's channel branch) and SE: weights, and both pooling branches where there are two."""

import numpy as np
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.capture import SpatialAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.modules.flexible import branch_statistics
from attnviz.modules.se import pre_sigmoid
from attnviz.viz.exports import vector_csv
from attnviz.viz.figures import attention_map_figure, branches_figure, layer_weights_heatmap, sorted_weights_figure

language = app.language()
st.title(app.t("flexible.title"))
st.markdown(app.t("flexible.intuition"))
st.latex(r"""\begin{aligned}
\omega &= \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F))\\
&\qquad + \mathrm{MLP}(\mathrm{MaxPool}(F))\big)\\
F' &= \omega \odot F
\end{aligned}""")
st.latex(r"\omega_{\mathrm{SE}} = \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F))\big)")
st.markdown(app.t("flexible.formula_terms"))
selection, analysis = app.page_analysis(
    attention=(AttentionKind.FLEXIBLE, AttentionKind.CBAM, AttentionKind.SE),
    what=app.t("flexible.what"),
    needs=lambda a: bool(a.channel_layers((AttentionKind.FLEXIBLE, AttentionKind.SE))),
)
layers = analysis.channel_layers((AttentionKind.FLEXIBLE, AttentionKind.SE))
names = list(layers)
kind_name = {AttentionKind.SE: app.t("flexible.kind_se"), AttentionKind.FLEXIBLE: app.t("flexible.kind_flexible")}
tr = app.bound_t()  # the options' texts in this run's language, whenever Streamlit formats them
selected = app.layer_picker(
    names,
    keys.FLEX_LAYER,
    format_func=lambda n: tr(
        "flexible.layer_option", name=n, kind=kind_name[layers[n].kind], channels=layers[n].channels
    ),
)
record = layers[selected]
w = record.weights[0].numpy()
is_se = record.kind == AttentionKind.SE
module = app.t("flexible.module_se" if is_se else "flexible.module_flexible")
layer_caption = app.t("figures.caption_layer", layer=selected)
saturated = float(np.mean((w < 0.05) | (w > 0.95)))

notice = (
    app.t("flexible.notice_se")
    if is_se
    else app.t(
        "flexible.notice_saturated" if saturated >= 0.5 else "flexible.notice_between",
        saturated=saturated,
        channels=len(w),
    )
)
st.markdown(f"**{app.t('flexible.notice_title')}** {notice}")
app.chart(
    st,
    layer_weights_heatmap(names, [layers[n].weights[0].numpy() for n in names], selected, language=language),
    key=keys.FLEX_HEATMAP,
    caption=app.figure_caption(module, layer_caption),
)
researchers = [app.t("flexible.res_sources"), app.t("flexible.res_mlp")]
if "avg_branch" in record.parts and "max_branch" in record.parts:
    avg = record.parts["avg_branch"][0].numpy()
    mx = record.parts["max_branch"][0].numpy()
    app.download(
        st,
        app.t("flexible.download_branches", layer=selected),
        vector_csv({"weight": w, "mlp_avg_branch": avg, "mlp_max_branch": mx}),
        f"{selection.model_name}-{selected}-flexible-weights.csv",
        key=keys.FLEX_CSV,
    )
    app.chart(
        st,
        branches_figure(avg, mx, w, app.t("flexible.branches_title", layer=selected), language=language),
        key=keys.FLEX_BRANCHES,
        caption=app.figure_caption(module, layer_caption),
    )
    dominant, correlation = branch_statistics(avg, mx)
    st.caption(app.t("flexible.dominant", dominant=dominant))
    top = int(w.argmax())
    st.markdown(app.t("flexible.numbers_flexible", channel=top, avg=float(avg[top]), max=float(mx[top])))
    max_term = f"({mx[top]:.3f})" if mx[top] < 0 else f"{mx[top]:.3f}"
    st.latex(rf"""\begin{{aligned}}
\omega_{{{top}}} &= \sigma(\underbrace{{{avg[top]:.3f}}}_{{\text{{avg}}}}
  + \underbrace{{{max_term}}}_{{\text{{max}}}})\\
&= \sigma({avg[top] + mx[top]:.3f}) = {w[top]:.4f}
\end{{aligned}}""")
    researchers.append(app.t("flexible.res_correlation", layer=selected, correlation=correlation))
else:
    st.markdown(app.t("flexible.se_layer", layer=selected))
    app.download(
        st,
        app.t("flexible.download_se", layer=selected),
        vector_csv({"weight": w}),
        f"{selection.model_name}-{selected}-se-weights.csv",
        key=keys.FLEX_CSV,
    )
    app.chart(
        st,
        sorted_weights_figure(w, app.t("flexible.sorted_title", layer=selected), language=language),
        key=keys.FLEX_SORTED,
        caption=app.figure_caption(module, layer_caption),
    )
    st.caption(app.t("flexible.spread", lowest=float(w.min()), highest=float(w.max())))
    if "pooled" in record.parts:
        top = int(w.argmax())
        squeezed = float(record.parts["pooled"][0, top])
        st.markdown(app.t("flexible.numbers_se", channel=top, pooled=squeezed))
        st.latex(rf"""\begin{{aligned}}
z_{{{top}}} &= \tfrac{{1}}{{HW}}\textstyle\sum_{{h,w}} x_{{{top},h,w}} = {squeezed:.3f}\\
\omega_{{{top}}} &= \sigma\big(W_2\,\delta(W_1 z)\big)_{{{top}}}\\
&= \sigma({pre_sigmoid(w[top]):.3f}) = {w[top]:.4f}
\end{{aligned}}""")
        researchers.append(app.t("flexible.res_pre_sigmoid"))

spatial_name = selected.rsplit(".", 1)[0] + ".spatial"
spatial = analysis.records.get(spatial_name)
if isinstance(spatial, SpatialAttentionRecord):
    st.markdown(app.t("flexible.spatial_intro"))
    st.latex(r"""\begin{aligned}
M_s = \sigma\big(f^{7\times 7}(&[\mathrm{AvgPool}_c(F');\\
&\ \mathrm{MaxPool}_c(F')])\big)
\end{aligned}""")
    gate = spatial.map[0].numpy()
    lowest, highest, mean = float(gate.min()), float(gate.max()), float(gate.astype(np.float64).mean())
    app.chart(
        st,
        attention_map_figure(
            gate,
            app.t("flexible.spatial_title", layer=spatial_name, lowest=lowest, highest=highest),
            colour_title="M_s",
            language=language,
        ),
        key=keys.FLEX_SPATIAL,
        theme=None,
        width="content",
        caption=app.figure_caption(app.t("flexible.module_cbam"), app.t("figures.caption_layer", layer=spatial_name)),
    )
    st.caption(
        app.t(
            "flexible.spatial_uniform" if lowest > 0.9 else "flexible.spatial_varied",
            lowest=lowest,
            highest=highest,
            mean=mean,
        )
    )
    researchers.append(app.t("flexible.res_spatial"))

app.channel_focus(selection, selected, record, w, "flex", app.weights_on_photos(selection))
app.extreme_channels(record.features, w, keys.FLEX_FEATURES)
with st.expander(app.t("common.for_researchers")):
    for text in researchers:
        st.markdown(text)
app.link_params(layer=selected)
