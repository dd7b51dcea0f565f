"""ECA kernel size explorer: k as a function of C."""

import pandas as pd
import streamlit as st

from attnviz import app
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
rules = {app.t(f"eca_kernel.{RULE_KEYS[rule]}"): rule for rule in KERNEL_RULES.values()}

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

model_layers = []
selection = app.current()
if selection is not None and selection.attention == AttentionKind.ECA:
    analysis = app.analysis_for(selection)
    if analysis is not None:
        seen = set()
        for name, rec in analysis.channel_layers((AttentionKind.ECA,)).items():
            if rec.kernel is None:
                continue
            key = (rec.channels, len(rec.kernel))
            if key not in seen:
                seen.add(key)
                model_layers.append((name, rec.channels, len(rec.kernel)))
app.chart(
    st,
    kernel_rule_figure(rules, gamma, b, OFFICIAL_RELEASED_KERNELS, model_layers, language=app.language()),
    key=keys.KERNEL_RULE_CHART,
    caption=app.figure_caption(app.t("eca_kernel.module")),
)
if model_layers:
    st.caption(app.t("eca_kernel.model_layers", model=selection.model_name))
else:
    st.caption(app.t("eca_kernel.no_model"))
st.caption(app.t("eca_kernel.released_marks"))

st.markdown(app.t("eca_kernel.formula_title"))
st.latex(rf"k = \psi(C) = \left|\frac{{\log_2 C}}{{{gamma:g}}} + \frac{{{b:g}}}{{{gamma:g}}}\right|_{{odd}}")
st.markdown(app.t("eca_kernel.formula_terms", odd=r"$|t|_{odd}$"))
if model_layers:  # the model's widest ECA layer, else a typical last stage
    layer, channels, own_k = max(model_layers, key=lambda named: named[1])
    example = app.t("eca_kernel.example_layer", layer=layer, model=selection.model_name, channels=channels)
else:
    layer, channels, own_k = None, 2048, None
    example = app.t("eca_kernel.example_plain", channels=channels)
t_value, k_value = kernel_t(channels, gamma, b), eca_kernel_size(channels, gamma, b)
st.markdown(example)
st.latex(
    rf"\begin{{aligned}}k = \psi({channels}) &= \left|\frac{{\log_2 {channels}}}{{{gamma:g}}} + "
    rf"\frac{{{b:g}}}{{{gamma:g}}}\right|_{{odd}}\\ &= |{t_value:.3f}|_{{odd}} = {k_value}\end{{aligned}}"
)
st.markdown(app.t("eca_kernel.example_terms", t=t_value, k=k_value, channels=channels))
if own_k is not None:
    st.caption(app.t("eca_kernel.example_own", layer=layer, k=own_k))

with st.expander(app.t("common.for_researchers")):
    released = "; ".join(
        f"{name}: {', '.join(str(k) for _, k in stages)}" for name, stages in OFFICIAL_RELEASED_KERNELS.items()
    )
    st.markdown(app.t("eca_kernel.rounding", odd=r"$|t|_{odd}$", released=released))
    rows = []
    for channels in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        row = {"C": channels, "t = (log2 C + b)/γ": round(kernel_t(channels, gamma, b), 3)}
        for name, rule in rules.items():
            row[app.t("eca_kernel.table_k", rule=name)] = rule(channels, gamma, b)
        rows.append(row)
    st.caption(app.t("eca_kernel.table_caption", gamma=f"{gamma:g}", b=f"{b:g}"))
    st.dataframe(pd.DataFrame(rows), hide_index=True)
