"""DANet channel attention: the C x C map X, clickable."""

from functools import partial

import numpy as np
import streamlit as st

from attnviz import app
from attnviz.analysis.forward import top_locations
from attnviz.app import keys
from attnviz.viz.exports import vector_csv
from attnviz.viz.figures import feature_grid_figure, row_comparison_figure
from attnviz.viz.overlays import feature_to_image

language = app.language()
st.title(app.t("channel_map.title"))
st.markdown(app.t("channel_map.intuition"))
selection, analysis = app.page_analysis(
    prefixes=("danet",), what=app.t("channel_map.what"), needs=lambda a: a.channel_map is not None
)
module_name, record = analysis.channel_map
attention = record.attention[0].numpy()
channels = attention.shape[0]
module = app.t("channel_map.module")

if record.form == "paper":
    st.latex(r"""\begin{aligned}
X_{cj} &= \mathrm{softmax}_j\big(A_c\cdot A_j\big)\\
E &= \beta\, XA + A
\end{aligned}""")
else:
    st.latex(r"""\begin{aligned}
X_{cj} &= \mathrm{softmax}_j\big(\max_m A_c\cdot A_m\\
&\qquad\qquad - A_c\cdot A_j\big)\\
E &= \beta\, XA + A
\end{aligned}""")
st.markdown(app.t("channel_map.formula_terms"))

one_hot = float(np.mean(attention.max(1) > 0.99))
notice = [
    app.t(
        "channel_map.notice_one_hot" if one_hot >= 0.5 else "channel_map.notice_spread",
        one_hot=one_hot,
        channels=channels,
    )
]
energy = None
if record.features is not None:
    flat = record.features[0].flatten(1).double()
    energy = (flat @ flat.T).numpy()
    if one_hot >= 0.5:
        notice.append(app.t("channel_map.notice_energy", energy=float(np.abs(energy).max())))
notice.append(app.t("channel_map.notice_paper" if record.form == "paper" else "channel_map.notice_official"))
notice.append(
    app.t(
        "channel_map.notice_beta_small" if abs(record.beta) < 0.1 else "channel_map.notice_beta",
        beta=float(record.beta),
    )
)
st.markdown(f"**{app.t('channel_map.notice_title')}** " + " ".join(notice))

app.apply_link(
    "channel",
    keys.CAM_CHANNEL,
    lambda c: 0 <= c < channels,
    convert=int,
    what=app.t("channel_map.link_channels", last=channels - 1),
)
if keys.CAM_CHANNEL not in st.session_state or st.session_state[keys.CAM_CHANNEL] >= channels:
    st.session_state[keys.CAM_CHANNEL] = int(attention.max(1).argmax())
st.markdown(app.t("channel_map.hover_hint"))
app.channel_canvas(
    payload=app.channel_data(selection.source, selection.model_name, selection.image_key, module_name, record),
    version=f"{selection.source}|{selection.model_name}|{selection.image_key}|{module_name}",
    channel=st.session_state[keys.CAM_CHANNEL],
    on_channel=partial(st.session_state.__setitem__, keys.CAM_CHANNEL),
    key=keys.CAM_CANVAS,
)
channel = st.number_input(app.t("channel_map.channel_input"), 0, channels - 1, key=keys.CAM_CHANNEL, step=1)

row = attention[channel]
related = top_locations(row, 6)
app.download(
    st,
    app.t("channel_map.download_row", channel=channel),
    vector_csv({f"X_{channel}_j": row}, index_name="j"),
    f"{selection.model_name}-row{channel}-of-X.csv",
    key=keys.CAM_CSV,
)
st.markdown(
    app.t(
        "channel_map.row_sum",
        channel=channel,
        total=float(row.sum()),
        related=app.t("channel_map.list_separator").join(f"{j} ({row[j]:.3f})" for j in related),
    )
)
researchers = [
    app.t("channel_map.res_source", form=record.form),
    app.t(
        "channel_map.res_forms",
        paper=r"$\mathrm{softmax}(AA^\top)$",
        official=r"$\mathrm{softmax}(\mathrm{rowmax}(AA^\top) - AA^\top)$",
        equivalent=r"$\mathrm{softmax}(-AA^\top)$",
    ),
    app.t("channel_map.res_uniform", uniform=1 / channels),
]
channel_caption = app.t("figures.caption_channel", channel=channel)
if record.features is not None:
    features = record.features[0]
    top_j = int(related[0])
    argument_j, log_z = record.softmax_terms(channel, top_j)
    st.markdown(app.t("channel_map.numbers", channel=channel, partner=top_j))
    if record.form == "paper":
        st.latex(rf"A_{{{channel}}}\cdot A_{{{top_j}}} = {argument_j:.1f}")
    else:
        st.latex(rf"""\begin{{aligned}}
&\max_m A_{{{channel}}}\cdot A_m - A_{{{channel}}}\cdot A_{{{top_j}}}\\
&= {energy[channel].max():.1f} - {energy[channel, top_j]:.1f} = {argument_j:.1f}
\end{{aligned}}""")
    st.latex(rf"X_{{{channel},{top_j}}} = \exp({argument_j:.1f} - {log_z:.1f}) = {row[top_j]:.4f}")
    st.markdown(app.t("channel_map.numbers_terms", argument=argument_j, log_normaliser=log_z))
    most, least = record.similar_channels(channel)
    st.caption(app.t("channel_map.similar", channel=channel, most=most, least=least, partner=top_j))
    maps = [feature_to_image(features[channel].numpy())] + [feature_to_image(features[j].numpy()) for j in related[:5]]
    titles = [app.t("channel_map.feature_output", channel=channel)] + [
        app.t("channel_map.feature_mixed", channel=int(j), value=float(row[j])) for j in related[:5]
    ]
    st.markdown(app.t("channel_map.features_intro"))
    app.chart(
        st,
        feature_grid_figure(maps, titles, columns=6),
        key=keys.CAM_FEATURES,
        caption=app.figure_caption(module, channel_caption),
    )
    height, width = features.shape[-2:]
    researchers.append(
        app.t("channel_map.res_cost", channels=channels, pixels=height * width, entries=channels * channels)
    )

with st.expander(app.t("common.for_researchers")):
    for text in researchers:
        st.markdown(text)
    if record.features is not None:
        other_form = "paper" if record.form == "official" else "official"
        other = record.row(channel, other_form).numpy()
        form_name = {"official": app.t("channel_map.form_official"), "paper": app.t("channel_map.form_paper")}
        app.chart(
            st,
            row_comparison_figure(
                {
                    app.t("channel_map.this_form", form=form_name.get(record.form, record.form)): row,
                    app.t("channel_map.other_form", form=form_name[other_form]): other,
                },
                app.t("channel_map.forms_title", channel=channel),
                language=language,
            ),
            key=keys.CAM_FORMS,
            caption=app.figure_caption(module, channel_caption),
        )
        st.caption(app.t("channel_map.forms_caption"))
app.link_params(channel=channel)
