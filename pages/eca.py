"""ECA: the channel weights of every ECA layer for this photo.

The page reads as its contents, called in order at the bottom: the introduction, the layer picked, what to
notice, the charts (every layer, its kernel), one channel's weight drawn from its k neighbours (unsorted, so
that the neighbourhood shows) with the formula in this photo's numbers, the channels on the photo, and the
second layer for researchers. attnviz.analysis.views and
attnviz.modules.eca compute the numbers; the functions here lay them out."""

import streamlit as st

from attnviz import app
from attnviz.analysis.views import (
    EcaNeighbourhoods,
    bracketed,
    eca_neighbourhoods,
    plain_eca_layers,
    se_parameters,
    spread,
)
from attnviz.app import keys
from attnviz.kinds import AttentionKind
from attnviz.viz.exports import vector_csv
from attnviz.viz.figures import eca_neighbourhood_figure, kernel_figure, layer_weights_heatmap


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
    """Every layer's weights, the download, and the picked layer's kernel."""
    language = app.language()
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
    title = app.t("eca.kernel_title_untrained" if untrained else "eca.kernel_title", k=len(kernel))
    app.chart(
        st,
        kernel_figure(kernel, language=language, title=title),
        key=keys.ECA_KERNEL_CHART,
        caption=app.figure_caption(app.t("eca.module"), app.t("figures.caption_layer", layer=selected)),
    )


def picked_channel(selection, selected: str, weights) -> int:
    """The channel whose weight is unrolled: the most weighted one for each new model, photo and layer, then
    the user's choice."""
    channels = len(weights)
    shown = (selection.model_name, selection.image_key, selected)
    if st.session_state.get(keys.ECA_CHANNEL_FOR) != shown or st.session_state.get(keys.ECA_CHANNEL) is None:
        st.session_state[keys.ECA_CHANNEL_FOR] = shown
        st.session_state[keys.ECA_CHANNEL] = int(weights.argmax())
    return int(
        st.number_input(app.t("eca.channel_input", last=channels - 1), 0, channels - 1, key=keys.ECA_CHANNEL, step=1)
    )


def neighbourhood(selection, selected: str, weights, unrolled: EcaNeighbourhoods) -> int:
    """One channel's weight drawn from its k neighbours, the channels in their own order; its download and
    the check against the weight the layer recorded. Returns the channel."""
    k = len(unrolled.offsets)
    st.markdown(app.t("eca.neighbours_intro", k=k, half=k // 2))
    channel = picked_channel(selection, selected, weights)
    layer_caption = app.t("figures.caption_layer", layer=selected)
    app.chart(
        st,
        eca_neighbourhood_figure(
            unrolled, channel, app.t("eca.neighbours_title", channel=channel, k=k), language=app.language()
        ),
        key=keys.ECA_NEIGHBOURS,
        caption=app.figure_caption(
            app.t("eca.module"), f"{layer_caption} · {app.t('figures.caption_channel', channel=channel)}"
        ),
    )
    padded = int(unrolled.padded[channel].sum())
    st.caption(
        app.t(
            "eca.neighbours_check",
            channel=channel,
            weight=float(unrolled.weights[channel]),
            recorded=float(weights[channel]),
        )
        + (" " + app.t("eca.neighbours_padded", padded=padded) if padded else "")
    )
    app.download(
        st,
        app.t("eca.neighbours_csv", channel=channel, k=len(unrolled.offsets)),
        vector_csv(
            {
                "offset_j": unrolled.offsets,
                "neighbour_channel": unrolled.sources[channel],
                "pooled_y": unrolled.values[channel],
                "kernel": unrolled.kernel,
                "product": unrolled.products[channel],
            },
            index_name="term",
        ),
        f"{selection.model_name}-{selected}-eca-channel{channel}-neighbours.csv",
        key=keys.ECA_NEIGHBOURS_CSV,
    )
    return channel


def formula(selected: str, record, weights, unrolled: EcaNeighbourhoods, channel: int) -> None:
    """ECA's formula, and the chosen channel's ω worked out term by term (the figure's numbers)."""
    k = len(record.kernel)
    st.markdown(app.t("eca.formula_title"))
    st.latex(
        r"\begin{aligned}y_c &= \frac{1}{HW}\sum_{h,w} x_{c,h,w}\\"
        r"\omega_c &= \sigma\Big(\sum_{j=-(k-1)/2}^{(k-1)/2} \kappa_j\, y_{c+j}\Big)\\"
        r"\tilde x_c &= \omega_c\, x_c\end{aligned}"
    )
    st.markdown(app.t("eca.formula_terms", k=k))
    shown = [
        rf"{weight:+.3f}\cdot{bracketed(value)}" for weight, value in zip(unrolled.kernel, unrolled.values[channel])
    ]
    if unrolled.bias:
        shown.append(f"{unrolled.bias:+.3f}")  # the convolution's bias (a copy that kept nn.Conv1d's default)
    top = channel == int(weights.argmax())
    st.markdown(app.t("eca.numbers_title" if top else "eca.numbers_title_chosen", channel=channel, layer=selected))
    # one term a line: two a line were 21 px wider than a phone's column (390 px; attnviz.screenshots)
    terms_lines = r"\\ &\qquad ".join(shown)
    total = float(unrolled.sums[channel])
    st.latex(
        rf"\begin{{aligned}}\omega_{{{channel}}} &= \sigma\big({terms_lines}\big)\\ "
        rf"&= \sigma({total:.3f}) = {weights[channel]:.4f}\end{{aligned}}"
    )
    st.markdown(app.t("eca.numbers_terms", k=k, total=total, weight=float(weights[channel])))


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
unrolled = eca_neighbourhoods(record.kernel.numpy(), record.parts["pooled"][0].numpy(), record.kernel_bias)
channel = neighbourhood(selection, selected, weights, unrolled)
formula(selected, record, weights, unrolled, channel)
app.channel_focus(selection, selected, record, weights, "eca", app.weights_on_photos(selection))
app.extreme_channels(record.features, weights, keys.ECA_FEATURES)
app.switch_section(selection, analysis, (AttentionKind.ECA,), context="eca")
for_researchers(selected, record)
app.link_params(layer=selected)
