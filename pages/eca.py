"""ECA: the channel weights of every ECA layer for this photo.

The page reads as its contents, called in order at the bottom: the introduction, the layer picked, what to
notice, the charts (every layer, the picked layer sorted, its kernel), the formula with this photo's
numbers, the channels on the photo, and the second layer for researchers. attnviz.analysis.views and
attnviz.modules.eca compute the numbers; the functions here lay them out."""

import streamlit as st

from attnviz import app
from attnviz.analysis.views import bracketed, plain_eca_layers, se_parameters, spread
from attnviz.app import keys
from attnviz.kinds import AttentionKind
from attnviz.modules.eca import eca_formula_terms
from attnviz.viz.exports import vector_csv
from attnviz.viz.figures import kernel_figure, layer_weights_heatmap, sorted_weights_figure


def introduction() -> None:
    st.title(app.t("eca.title"))
    st.markdown(app.t("eca.intuition"))


def picked_layer(layers: dict) -> str:
    return app.layer_picker(
        list(layers),
        keys.ECA_LAYER,
        # names and notation only, the same in every language: a label that changed with the language would
        # no longer match the value the browser holds for the select box
        format_func=lambda n: f"{n}  (C = {layers[n].channels}, k = {len(layers[n].kernel)})",
    )


def what_to_notice(selected: str, weights, untrained: bool) -> None:
    weights_spread = spread(weights)
    st.markdown(
        app.t(
            "eca.notice",
            layer=selected,
            lowest=weights_spread.lowest,
            median=weights_spread.median,
            highest=weights_spread.highest,
        )
    )
    if untrained:
        st.caption(app.t("eca.notice_untrained"))


def charts(selection, layers: dict, selected: str, weights, kernel, untrained: bool) -> None:
    """Every layer's weights, the download, the picked layer's weights sorted, and its kernel."""
    language = app.language()
    layer_caption = app.t("figures.caption_layer", layer=selected)
    app.chart(
        st,
        layer_weights_heatmap(
            list(layers), [r.weights[0].numpy() for r in layers.values()], selected, language=language
        ),
        key=keys.ECA_HEATMAP,
        caption=app.figure_caption(app.t("eca.module")),
    )
    app.download(
        st,
        app.t("eca.csv", layer=selected),
        vector_csv({"weight": weights}),
        f"{selection.model_name}-{selected}-eca-weights.csv",
        key=keys.ECA_CSV,
    )
    left, right = st.columns([3, 2])
    app.chart(
        left,
        sorted_weights_figure(weights, app.t("eca.sorted_title", layer=selected), language=language),
        key=keys.ECA_SORTED,
        caption=app.figure_caption(app.t("eca.module"), layer_caption),
    )
    title = app.t("eca.kernel_title_untrained" if untrained else "eca.kernel_title", k=len(kernel))
    app.chart(
        right,
        kernel_figure(kernel, language=language, title=title),
        key=keys.ECA_KERNEL_CHART,
        caption=app.figure_caption(app.t("eca.module"), layer_caption),
    )


def formula(selected: str, record, weights) -> None:
    """ECA's formula, and the most weighted channel's ω worked out term by term."""
    k = len(record.kernel)
    st.markdown(app.t("eca.formula_title"))
    st.latex(
        r"\begin{aligned}y_c &= \frac{1}{HW}\sum_{h,w} x_{c,h,w}\\"
        r"\omega_c &= \sigma\Big(\sum_{j=-(k-1)/2}^{(k-1)/2} \kappa_j\, y_{c+j}\Big)\\"
        r"\tilde x_c &= \omega_c\, x_c\end{aligned}"
    )
    st.markdown(app.t("eca.formula_terms", k=k))
    top = int(weights.argmax())
    terms, total = eca_formula_terms(record.kernel, record.parts["pooled"][0], top, record.kernel_bias)
    shown = [rf"{weight:+.3f}\cdot{bracketed(value)}" for weight, value in terms]
    if record.kernel_bias:
        shown.append(f"{record.kernel_bias:+.3f}")  # the convolution's bias (a copy that kept nn.Conv1d's default)
    st.markdown(app.t("eca.numbers_title", channel=top, layer=selected))
    # one term a line: two a line were 21 px wider than a phone's column (390 px; attnviz.screenshots)
    terms_lines = r"\\ &\qquad ".join(shown)
    st.latex(
        rf"\begin{{aligned}}\omega_{{{top}}} &= \sigma\big({terms_lines}\big)\\ "
        rf"&= \sigma({total:.3f}) = {weights[top]:.4f}\end{{aligned}}"
    )
    st.markdown(app.t("eca.numbers_terms", k=k, total=total, weight=float(weights[top])))


def for_researchers(selected: str, record) -> None:
    with st.expander(app.t("common.for_researchers")):
        channels = record.channels
        st.markdown(
            app.t(
                "eca.researchers",
                layer=selected,
                channels=channels,
                k=len(record.kernel),
                se_parameters=se_parameters(channels),
            )
        )


introduction()
selection, analysis = app.page_analysis(
    attention=(AttentionKind.ECA,), what=app.t("eca.what"), needs=lambda a: bool(a.channel_layers((AttentionKind.ECA,)))
)
# the sidebar's notice says so at the top too; the page's own words must not call random numbers learned
untrained = not selection.weights_trained
layers = plain_eca_layers(analysis.channel_layers((AttentionKind.ECA,)))
selected = picked_layer(layers)
record = layers[selected]
weights = record.weights[0].numpy()
what_to_notice(selected, weights, untrained)
charts(selection, layers, selected, weights, record.kernel.numpy(), untrained)
formula(selected, record, weights)
app.channel_focus(selection, selected, record, weights, "eca", app.weights_on_photos(selection))
app.extreme_channels(record.features, weights, keys.ECA_FEATURES)
app.switch_section(selection, analysis, (AttentionKind.ECA,), context="eca")
for_researchers(selected, record)
app.link_params(layer=selected)
