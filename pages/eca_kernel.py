"""ECA kernel size explorer: k as a function of C."""
import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.kinds import AttentionKind
from attnviz.modules.eca import KERNEL_RULES, OFFICIAL_RELEASED_KERNELS, kernel_t
from attnviz.viz.figures import kernel_rule_figure

st.title("ECA: the adaptive kernel size k = ψ(C)")
st.markdown(
    r"""ECA picks the 1D kernel size from the channel count: wider layers get a wider cross-channel reach.

$$k = \psi(C) = \left|\frac{\log_2 C}{\gamma} + \frac{b}{\gamma}\right|_{odd}$$

$|t|_{odd}$ is "the nearest odd number to $t$". What the code does, exactly:

* **the paper's code listing, and timm**: `t = int(abs((log2(C) + b) / gamma)); k = t if t % 2 else t + 1`
  (truncate, then bump an even value up). For $t \ge 0$ this **is** the nearest odd number with ties rounded up,
  $2\lfloor t/2 \rfloor + 1$: for every $t$ in $[2m, 2m+2)$ both give $2m+1$. The two are one curve below.
* **nearest odd, ties down**: the only reading that differs, and only where $t$ is an even integer
  ($t = 4 \to 3$ instead of 5).
* **timm**: the same rule, but never below 3.
* **the authors' repository** never computes $k$ from $C$: its ECA layer takes $k$, and its released ImageNet
  ResNets use hand-picked per-stage lists (ECA-ResNet50: 3, 5, 5, 7) that the formula does not give.
""")
c1, c2 = st.columns(2)
gamma = c1.slider("γ (gamma)", 0.5, 4.0, 2.0, 0.5, key=keys.KERNEL_GAMMA)
b = c2.slider("b", 0.0, 4.0, 1.0, 0.5, key=keys.KERNEL_B)

st.latex(rf"k = \left|\frac{{\log_2 C}}{{{gamma:g}}} + \frac{{{b:g}}}{{{gamma:g}}}\right|_{{odd}}"
         + (r"\quad(\text{the paper's } \gamma = 2,\ b = 1)" if (gamma, b) == (2.0, 1.0) else ""))
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
app.chart(st, kernel_rule_figure(KERNEL_RULES, gamma, b, OFFICIAL_RELEASED_KERNELS, model_layers), key=keys.KERNEL_RULE_CHART)
if model_layers:
    st.caption(f"Red crosses: the ECA layers of {selection.model_name} (trained with γ = 2, b = 1).")
else:
    st.caption("Pick an ECA model in the sidebar to mark its layers on the plot.")

rows = []
for channels in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
    row = {"C": channels, "t = (log2 C + b)/γ": round(kernel_t(channels, gamma, b), 3)}
    for name, rule in KERNEL_RULES.items():
        row[f"k, {name}"] = rule(channels, gamma, b)
    rows.append(row)
st.dataframe(pd.DataFrame(rows), hide_index=True)
