"""Flexible attention (CBAM's channel branch) and SE: weights, and both pooling branches where there are two.

The page reads as its contents, called in order at the bottom: the introduction with the formulas, the layer
picked, what to notice, every layer's weights, the picked layer's branches (or SE's sorted weights) with
their worked formula, CBAM's spatial gate, the channels on the photo, and the second layer for researchers.
attnviz.analysis.views computes the shares, spreads and sums; the functions here lay them out."""

import numpy as np
import streamlit as st

from attnviz import app
from attnviz.analysis.views import BranchSum, bracketed, saturated_share, spatial_partner, spread, telling_channel
from attnviz.app import keys
from attnviz.app.guards import layer_weights_on_photos
from attnviz.capture import SpatialAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.modules.flexible import branch_statistics
from attnviz.modules.se import pre_sigmoid
from attnviz.viz.exports import vector_csv
from attnviz.viz.figures import branches_figure, gate_over_photo_figure, layer_weights_heatmap, sorted_weights_figure

KINDS = (AttentionKind.FLEXIBLE, AttentionKind.SE)  # the layers this page draws
UNIFORM_GATE = 0.9  # a spatial gate whose lowest value is above this barely changes the map


def introduction() -> None:
    st.title(app.t("flexible.title"))
    st.markdown(app.t("flexible.intuition"))
    st.latex(r"""\begin{aligned}
\omega &= \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F))\\
&\qquad + \mathrm{MLP}(\mathrm{MaxPool}(F))\big)\\
F' &= \omega \odot F
\end{aligned}""")
    st.latex(r"\omega_{\mathrm{SE}} = \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F))\big)")
    st.markdown(app.t("flexible.formula_terms"))


def picked_layer(layers: dict) -> str:
    """The layer box (each layer named with its kind and channels)."""
    kind_name = {AttentionKind.SE: app.t("flexible.kind_se"), AttentionKind.FLEXIBLE: app.t("flexible.kind_flexible")}
    tr = app.bound_t()  # the options' texts in this run's language, whenever Streamlit formats them
    return app.layer_picker(
        list(layers),
        keys.FLEX_LAYER,
        format_func=lambda n: tr(
            "flexible.layer_option", name=n, kind=kind_name[layers[n].kind], channels=layers[n].channels
        ),
    )


def what_to_notice(record, weights) -> None:
    """SE's note, or how many of flexible attention's weights are saturated."""
    if record.kind == AttentionKind.SE:
        notice = app.t("flexible.notice_se")
    else:
        saturated = saturated_share(weights)
        notice = app.t(
            "flexible.notice_saturated" if saturated >= 0.5 else "flexible.notice_between",
            saturated=saturated,
            channels=len(weights),
        )
    st.markdown(f"**{app.t('flexible.notice_title')}** {notice}")


def every_layer(layers: dict, selected: str, module: str, layer_caption: str) -> None:
    app.chart(
        st,
        layer_weights_heatmap(
            list(layers), [r.weights[0].numpy() for r in layers.values()], selected, language=app.language()
        ),
        key=keys.FLEX_HEATMAP,
        caption=app.figure_caption(module, layer_caption),
    )


def example_channel(selection, layer: str, weights) -> tuple[int, str, int]:
    """The worked example's channel, how it was chosen and over how many photos: "telling" (a weight within
    (0.05, 0.95) here that changes across the first sample photos, attnviz.analysis.views.telling_channel),
    "none" (no channel is, so the most weighted one is shown) or "top" (the most weighted: weights on other
    photos need a CamVid model)."""
    across = layer_weights_on_photos(selection, layer)
    if not across:
        return int(weights.argmax()), "top", 0
    channel = telling_channel(weights, np.stack(list(across.values())))
    return (int(weights.argmax()), "none", len(across)) if channel is None else (channel, "telling", len(across))


def focus_on(selection, layer: str, channel: int) -> None:
    """Start the one-channel view below at the worked example's channel, once per model, photo and layer (the
    user's own choice stays until then)."""
    example = (selection.model_name, selection.image_key, layer)
    if st.session_state.get(keys.FLEX_EXAMPLE) != example:
        st.session_state[keys.FLEX_EXAMPLE] = example
        st.session_state[keys.channel_focus("flex", "channel")] = channel


def branches(selection, selected: str, record, weights, module: str, layer_caption: str) -> list[str]:
    """Flexible attention's two branches: their download and chart, which dominates, and the example channel's
    ω worked out (`example_channel`); returns what researchers read of them."""
    avg = record.parts["avg_branch"][0].numpy()
    mx = record.parts["max_branch"][0].numpy()
    app.download(
        st,
        app.t("flexible.download_branches", layer=selected),
        vector_csv({"weight": weights, "mlp_avg_branch": avg, "mlp_max_branch": mx}),
        f"{selection.model_name}-{selected}-flexible-weights.csv",
        key=keys.FLEX_CSV,
    )
    app.chart(
        st,
        branches_figure(avg, mx, weights, app.t("flexible.branches_title", layer=selected), language=app.language()),
        key=keys.FLEX_BRANCHES,
        caption=app.figure_caption(module, layer_caption),
    )
    dominant, correlation = branch_statistics(avg, mx)
    st.caption(app.t("flexible.dominant", dominant=dominant))
    c, chosen, photos = example_channel(selection, selected, weights)
    focus_on(selection, selected, c)
    top = BranchSum(c, float(avg[c]), float(mx[c]), float(avg[c] + mx[c]), float(weights[c]))
    st.markdown(app.t(f"flexible.numbers_flexible_{chosen}", channel=c, avg=top.avg, max=top.max, photos=photos))
    st.latex(rf"""\begin{{aligned}}
\omega_{{{top.channel}}} &= \sigma(\underbrace{{{top.avg:.3f}}}_{{\text{{avg}}}}
  + \underbrace{{{bracketed(top.max)}}}_{{\text{{max}}}})\\
&= \sigma({top.argument:.3f}) = {top.weight:.4f}
\end{{aligned}}""")
    return [app.t("flexible.res_correlation", layer=selected, correlation=correlation)]


def se_weights(selection, selected: str, record, weights, module: str, layer_caption: str) -> list[str]:
    """An SE layer's sorted weights and their download, and the most weighted channel's ω worked out where
    its squeezed input was recorded; returns what researchers read of it."""
    st.markdown(app.t("flexible.se_layer", layer=selected))
    app.download(
        st,
        app.t("flexible.download_se", layer=selected),
        vector_csv({"weight": weights}),
        f"{selection.model_name}-{selected}-se-weights.csv",
        key=keys.FLEX_CSV,
    )
    app.chart(
        st,
        sorted_weights_figure(weights, app.t("flexible.sorted_title", layer=selected), language=app.language()),
        key=keys.FLEX_SORTED,
        caption=app.figure_caption(module, layer_caption),
    )
    weights_spread = spread(weights)
    st.caption(app.t("flexible.spread", lowest=weights_spread.lowest, highest=weights_spread.highest))
    if "pooled" not in record.parts:
        return []
    top = int(weights.argmax())
    squeezed = float(record.parts["pooled"][0, top])
    st.markdown(app.t("flexible.numbers_se", channel=top, pooled=squeezed))
    st.latex(rf"""\begin{{aligned}}
z_{{{top}}} &= \tfrac{{1}}{{HW}}\textstyle\sum_{{h,w}} x_{{{top},h,w}} = {squeezed:.3f}\\
\omega_{{{top}}} &= \sigma\big(W_2\,\delta(W_1 z)\big)_{{{top}}}\\
&= \sigma({pre_sigmoid(weights[top]):.3f}) = {weights[top]:.4f}
\end{{aligned}}""")
    return [app.t("flexible.res_pre_sigmoid")]


def spatial_gate(analysis, selected: str) -> list[str]:
    """CBAM's spatial gate after the picked channel gate, where there is one, laid over the photo on its own
    colour range (stated under it); returns what researchers read."""
    spatial_name = spatial_partner(selected)
    spatial = analysis.records.get(spatial_name)
    if not isinstance(spatial, SpatialAttentionRecord):
        return []
    st.markdown(app.t("flexible.spatial_intro"))
    st.latex(r"""\begin{aligned}
M_s = \sigma\big(f^{7\times 7}(&[\mathrm{AvgPool}_c(F');\\
&\ \mathrm{MaxPool}_c(F')])\big)
\end{aligned}""")
    gate = spatial.map[0].numpy()
    gate_spread = spread(gate)
    # over the photo, on the gate's own range: a gate of 0.978 to 1.000 shows where it is lower, and says how
    # narrow it is (a flat square on 0 to 1 showed neither)
    app.chart(
        st,
        gate_over_photo_figure(
            analysis.image,
            gate,
            app.t("flexible.spatial_title", layer=spatial_name, lowest=gate_spread.lowest, highest=gate_spread.highest),
            colour_title="M_s",
            language=app.language(),
        ),
        key=keys.FLEX_SPATIAL,
        theme=None,
        width="content",
        caption=app.figure_caption(app.t("flexible.module_cbam"), app.t("figures.caption_layer", layer=spatial_name)),
    )
    width = gate_spread.highest - gate_spread.lowest
    st.caption(
        app.t("flexible.spatial_range", width=width, percent=100 * width)
        + " "
        + app.t(
            "flexible.spatial_uniform" if gate_spread.lowest > UNIFORM_GATE else "flexible.spatial_varied",
            lowest=gate_spread.lowest,
            highest=gate_spread.highest,
            mean=gate_spread.mean,
        )
    )
    return [app.t("flexible.res_spatial")]


def for_researchers(notes: list[str]) -> None:
    with st.expander(app.t("common.for_researchers")):
        for text in notes:
            st.markdown(text)


introduction()
selection, analysis = app.page_analysis(
    attention=(AttentionKind.FLEXIBLE, AttentionKind.CBAM, AttentionKind.SE),
    what=app.t("flexible.what"),
    needs=lambda a: bool(a.channel_layers(KINDS)),
)
layers = analysis.channel_layers(KINDS)
selected = picked_layer(layers)
record = layers[selected]
weights = record.weights[0].numpy()
module = app.t("flexible.module_se" if record.kind == AttentionKind.SE else "flexible.module_flexible")
layer_caption = app.t("figures.caption_layer", layer=selected)
what_to_notice(record, weights)
every_layer(layers, selected, module, layer_caption)
researchers = [app.t("flexible.res_sources"), app.t("flexible.res_mlp")]
if "avg_branch" in record.parts and "max_branch" in record.parts:
    researchers += branches(selection, selected, record, weights, module, layer_caption)
else:
    researchers += se_weights(selection, selected, record, weights, module, layer_caption)
researchers += spatial_gate(analysis, selected)
app.channel_focus(selection, selected, record, weights, "flex", app.weights_on_photos(selection))
app.extreme_channels(record.features, weights, keys.FLEX_FEATURES)
app.switch_section(selection, analysis, (*KINDS, AttentionKind.CBAM), context="flexible")
for_researchers(researchers)
app.link_params(layer=selected)
