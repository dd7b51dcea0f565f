"""ECA kernel size explorer: k as a function of C.

The page reads as its contents, called in order at the bottom: the introduction with γ and b, the rules
plotted (with the shown model's ECA layers marked), the paper's derivation of ψ in three lines, worked out
for one layer's C, and the second layer for researchers (the rounding rules side by side). attnviz.modules.eca
holds the rules and attnviz.analysis.views picks and tabulates; the functions here lay them out."""

import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.analysis.views import (
    KernelLayer,
    distinct_kernel_layers,
    kernel_derivation,
    kernel_rule_rows,
    released_kernels_text,
)
from attnviz.app import keys
from attnviz.kinds import AttentionKind
from attnviz.modules.eca import (
    KERNEL_RULES,
    OFFICIAL_RELEASED_KERNELS,
    eca_kernel_size,
    eca_kernel_size_ties_down,
    eca_kernel_size_timm,
    kernel_t,
)
from attnviz.viz.figures import kernel_rule_figure

# the rules by their names in this page's language (the plot's legend and the table's columns)
RULE_KEYS = {
    eca_kernel_size: "rule_paper",
    eca_kernel_size_ties_down: "rule_ties_down",
    eca_kernel_size_timm: "rule_timm",
}
TYPICAL_CHANNELS = 2048  # the example's C when no ECA model is shown (a ResNet's last stage)


def introduction() -> tuple[float, float]:
    """The title, γ and b (sliders), and what they give a narrow and a wide layer; returns (γ, b)."""
    st.title(app.t("eca_kernel.title"))
    st.markdown(app.t("eca_kernel.intuition"))
    c1, c2 = st.columns(2)
    gamma = c1.slider(app.t("eca_kernel.gamma"), 0.5, 4.0, 2.0, 0.5, key=keys.KERNEL_GAMMA)
    b = c2.slider(app.t("eca_kernel.b"), 0.0, 4.0, 1.0, 0.5, key=keys.KERNEL_B)
    st.markdown(
        app.t(
            "eca_kernel.notice",
            narrow=eca_kernel_size(64, gamma, b),
            wide=eca_kernel_size(2048, gamma, b),
            gamma=f"{gamma:g}",
            b=f"{b:g}",
        )
    )
    return gamma, b


def shown_model_layers(selection) -> list[KernelLayer]:
    """The ECA layers of the model shown, one per (C, k) (none when it is not an ECA model)."""
    if selection is None or selection.attention != AttentionKind.ECA:
        return []
    analysis = app.analysis_for(selection)
    return distinct_kernel_layers(analysis.channel_layers((AttentionKind.ECA,))) if analysis is not None else []


def rules_chart(rules: dict, gamma: float, b: float, model_layers: list[KernelLayer], selection) -> None:
    """k against C for every rule, the released models' kernels and the shown model's layers marked."""
    marks = [(layer.name, layer.channels, layer.k) for layer in model_layers]
    app.chart(
        st,
        kernel_rule_figure(rules, gamma, b, OFFICIAL_RELEASED_KERNELS, marks, language=app.language()),
        key=keys.KERNEL_RULE_CHART,
        caption=app.figure_caption(app.t("eca_kernel.module")),
    )
    if model_layers:
        st.caption(app.t("eca_kernel.model_layers", model=selection.model_name))
    else:
        st.caption(app.t("eca_kernel.no_model"))
    st.caption(app.t("eca_kernel.released_marks"))


def example_layer(model_layers: list[KernelLayer], selection) -> tuple[int, str, KernelLayer | None]:
    """(C, the sentence that names it, the layer) of the worked example: the model's widest ECA layer, else a
    typical last stage."""
    widest = max(model_layers, key=lambda layer: layer.channels) if model_layers else None
    if widest is None:
        return TYPICAL_CHANNELS, app.t("eca_kernel.example_plain", channels=TYPICAL_CHANNELS), None
    text = app.t("eca_kernel.example_layer", layer=widest.name, model=selection.model_name, channels=widest.channels)
    return widest.channels, text, widest


def derivation(gamma: float, b: float, channels: int, example: str, widest: KernelLayer | None) -> None:
    """ECA-Net §3.2.3 in three lines (Wang et al., CVPR 2020), each with the sliders' γ and b and the example's
    C and k = ψ(C): the linear mapping and why it is too limited, the exponential one, and its inverse ψ, worked
    out; then what the rounding leaves, and the layer's own k where it was built with other γ, b."""
    steps = kernel_derivation(channels, gamma, b, kernel_t, eca_kernel_size)
    k, g, bb = steps.k, f"{gamma:g}", f"{b:g}"
    st.markdown(app.t("eca_kernel.derivation_title"))
    st.markdown(example)
    st.markdown(app.t("eca_kernel.derivation_linear", k=k, channels=channels))
    st.latex(
        rf"\begin{{aligned}}C = \phi(k) &= \gamma k - b\\ \phi({k}) &= {g}\cdot {k} - {bb} = {steps.linear_channels:g}"
        rf"\\ C = {channels}:\ k = \tfrac{{C + b}}{{\gamma}} &= \tfrac{{{channels} + {bb}}}{{{g}}} = "
        rf"{steps.linear_kernel:g}\end{{aligned}}"
    )
    st.markdown(app.t("eca_kernel.derivation_exponential", factor=f"{2**gamma:g}"))
    st.latex(
        rf"\begin{{aligned}}C = \phi(k) &= 2^{{\gamma k - b}}\\ \phi({k}) &= 2^{{{g}\cdot {k} - {bb}}} = "
        rf"{steps.exponential_channels:.0f}\end{{aligned}}"
    )
    st.markdown(app.t("eca_kernel.derivation_inverse", odd=r"$|t|_{odd}$", channels=channels))
    st.latex(
        rf"\begin{{aligned}}k = \psi(C) &= \left|\frac{{\log_2 C}}{{\gamma}} + \frac{{b}}{{\gamma}}\right|_{{odd}}\\ "
        rf"\psi({channels}) &= \left|\frac{{{steps.log2_channels:.4g}}}{{{g}}} + \frac{{{bb}}}{{{g}}}\right|_{{odd}}"
        rf" = |{steps.t:.3f}|_{{odd}} = {k}\end{{aligned}}"
    )
    st.markdown(app.t("eca_kernel.formula_terms", odd=r"$|t|_{odd}$"))
    st.markdown(app.t("eca_kernel.example_terms", t=steps.t, k=k, channels=channels))
    st.caption(app.t("eca_kernel.derivation_check", t=steps.t, channels=channels, k=k, back=steps.exponential_channels))
    if widest is not None:
        st.caption(app.t("eca_kernel.example_own", layer=widest.name, k=widest.k))


def for_researchers(rules: dict, gamma: float, b: float) -> None:
    """How the rules round, the released kernels, and every rule's k for C from 16 to 4096."""
    with st.expander(app.t("common.for_researchers")):
        released = released_kernels_text(OFFICIAL_RELEASED_KERNELS)
        st.markdown(app.t("eca_kernel.rounding", odd=r"$|t|_{odd}$", released=released))
        columns = {app.t("eca_kernel.table_k", rule=name): rule for name, rule in rules.items()}
        st.caption(app.t("eca_kernel.table_caption", gamma=f"{gamma:g}", b=f"{b:g}"))
        st.dataframe(pd.DataFrame(kernel_rule_rows(gamma, b, columns, kernel_t)), hide_index=True)


rules = {app.t(f"eca_kernel.{RULE_KEYS[rule]}"): rule for rule in KERNEL_RULES.values()}
gamma, b = introduction()
selection = app.current()
model_layers = shown_model_layers(selection)
rules_chart(rules, gamma, b, model_layers, selection)
channels, example, widest = example_layer(model_layers, selection)
derivation(gamma, b, channels, example, widest)
for_researchers(rules, gamma, b)
