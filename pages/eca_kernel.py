"""ECA kernel size explorer: k as a function of C.

The page reads as its contents, called in order at the bottom: the introduction with γ and b, the rules
plotted (with the shown model's ECA layers marked), the formula worked out for one C, and the second layer
for researchers (the rounding rules side by side). attnviz.modules.eca holds the rules and
attnviz.analysis.views picks and tabulates; the functions here lay them out."""

import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.analysis.views import KernelLayer, distinct_kernel_layers, kernel_rule_rows, released_kernels_text
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


def formula(gamma: float, b: float, model_layers: list[KernelLayer], selection) -> None:
    """ψ(C), worked out for the model's widest ECA layer (else a typical last stage)."""
    st.markdown(app.t("eca_kernel.formula_title"))
    st.latex(rf"k = \psi(C) = \left|\frac{{\log_2 C}}{{{gamma:g}}} + \frac{{{b:g}}}{{{gamma:g}}}\right|_{{odd}}")
    st.markdown(app.t("eca_kernel.formula_terms", odd=r"$|t|_{odd}$"))
    widest = max(model_layers, key=lambda layer: layer.channels) if model_layers else None
    if widest is not None:
        channels = widest.channels
        example = app.t("eca_kernel.example_layer", layer=widest.name, model=selection.model_name, channels=channels)
    else:
        channels = TYPICAL_CHANNELS
        example = app.t("eca_kernel.example_plain", channels=channels)
    t_value, k_value = kernel_t(channels, gamma, b), eca_kernel_size(channels, gamma, b)
    st.markdown(example)
    st.latex(
        rf"\begin{{aligned}}k = \psi({channels}) &= \left|\frac{{\log_2 {channels}}}{{{gamma:g}}} + "
        rf"\frac{{{b:g}}}{{{gamma:g}}}\right|_{{odd}}\\ &= |{t_value:.3f}|_{{odd}} = {k_value}\end{{aligned}}"
    )
    st.markdown(app.t("eca_kernel.example_terms", t=t_value, k=k_value, channels=channels))
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
formula(gamma, b, model_layers, selection)
for_researchers(rules, gamma, b)
