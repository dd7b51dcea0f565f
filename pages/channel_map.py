"""DANet channel attention: the C x C map X, clickable."""
from functools import partial

import streamlit as st

from attnviz import app
from attnviz.app import keys
from attnviz.analysis import top_locations
from attnviz.exports import vector_csv
from attnviz.viz.figures import feature_grid_figure, row_comparison_figure
from attnviz.viz.overlays import feature_to_image

st.title("DANet channel attention: how channels mix")
st.markdown(
    r"""DANet's channel attention module (Fu et al., CVPR 2019) reshapes the feature map $A$ to $C \times N$ and
builds a $C \times C$ map from channel similarities, with no convolution at all:

$$\text{energy} = A A^\top,\qquad X = \mathrm{softmax}(\cdot),\qquad E = \beta\,(X A) + A .$$

Row $c$ of $X$ says which channels $j$ are mixed into output channel $c$. **Two forms exist**: the paper's
$X = \mathrm{softmax}(\text{energy})$ favours *similar* channels; the official code's
$X = \mathrm{softmax}(\mathrm{rowmax}(\text{energy}) - \text{energy})$ equals $\mathrm{softmax}(-\text{energy})$
(softmax ignores a per-row constant) and so favours the *least similar* channels.
Hover a row of the map (or pick a channel below) to read row $c$.""")
selection, analysis = app.page_analysis(prefixes=("danet",), what="channel attention module",
                                        needs=lambda a: a.channel_map is not None)
module_name, record = analysis.channel_map
attention = record.attention[0].numpy()
channels = attention.shape[0]

app.apply_link("channel", keys.CAM_CHANNEL, lambda c: 0 <= c < channels, convert=int,
               what=f"this model's X has channels 0 to {channels - 1}")
if keys.CAM_CHANNEL not in st.session_state or st.session_state[keys.CAM_CHANNEL] >= channels:
    st.session_state[keys.CAM_CHANNEL] = int(attention.max(1).argmax())
st.markdown(f"**Form used by this model: `{record.form}`**; β = **{record.beta:.4f}** (learned; starts at 0). "
            "**Move the pointer over X** to read a row (computed in the page); click to choose it.")
app.channel_canvas(payload=app.channel_data(selection.source, selection.model_name, selection.image_key, module_name,
                                            record),
                   version=f"{selection.source}|{selection.model_name}|{selection.image_key}|{module_name}",
                   channel=st.session_state[keys.CAM_CHANNEL], on_channel=partial(st.session_state.__setitem__,
                                                                                  keys.CAM_CHANNEL),
                   key=keys.CAM_CANVAS)
channel = st.number_input("Channel c (row of X)", 0, channels - 1, key=keys.CAM_CHANNEL, step=1)

row = attention[channel]
related = top_locations(row, 6)
app.download(st, f"Row {channel} of X (CSV)", vector_csv({f"X_{channel}_j": row}, index_name="j"),
             f"{selection.model_name}-row{channel}-of-X.csv", key=keys.CAM_CSV)
st.markdown(f"**Row c = {channel}** sums to {row.sum():.6f}; uniform would be 1/C = {1 / channels:.4f}. "
            "Most mixed-in channels: " + ", ".join(f"{j} ({row[j]:.3f})" for j in related))
if record.features is not None:
    features = record.features[0]
    other_form = "paper" if record.form == "official" else "official"
    other = record.row(channel, other_form).numpy()
    top_j = int(related[0])
    argument_j, log_z = record.softmax_terms(channel, top_j)
    shown = (r"A_{c}\cdot A_{j}" if record.form == "paper"
             else r"\max_m(A_{c}\cdot A_m) - A_{c}\cdot A_{j}")
    st.latex(rf"X_{{{channel},{top_j}}} = \mathrm{{softmax}}_j\big({shown}\big) = "
             rf"\exp({argument_j:.1f} - {log_z:.1f}) = {row[top_j]:.4f}")
    app.chart(st, row_comparison_figure({f"{record.form} form (this model)": row,
                                           f"{other_form} form, same features": other},
                                          f"Row {channel} of X in both forms"), key=keys.CAM_FORMS)
    most, least = record.similar_channels(channel)
    st.caption(f"Most similar channel to {channel} by energy A·Aᵀ (itself excluded): {most}; least similar: {least}. "
               f"Under the official form the least similar gets the largest weight.")
    maps = [feature_to_image(features[channel].numpy())] + [feature_to_image(features[j].numpy()) for j in related[:5]]
    titles = [f"c = {channel} (output)"] + [f"#{j}: X={row[j]:.3f}" for j in related[:5]]
    st.markdown("**Feature maps**: channel c and the channels mixed into it most (input A of the module):")
    app.chart(st, feature_grid_figure(maps, titles, columns=6), key=keys.CAM_FEATURES)
app.link_params(channel=channel)
