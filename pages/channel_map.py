"""DANet channel attention: the C x C map X, clickable.

The page reads as its contents, called in order at the bottom: the introduction, the formula of the form shown, what
to notice, the live map, the chosen row (its box, numbers, the worked formula with the features it mixes), XCiT's
class attention (where CLS looks) when the model has it, DANet's fusion of its two modules by a sum (with each
branch's size on this photo), "switch it off", and the second layer for researchers. attnviz.analysis.views
summarises X and reads its rows; the functions here lay them out.

The live map and the chosen row's parts are fragments (st.fragment) that rerun alone: a click on X (marked at
once by the live map) reruns the row's parts, the channel box all of them; the sidebar and "switch it off"
rerun the page."""

from functools import partial

import numpy as np
import streamlit as st

from attnviz import app
from attnviz.analysis.tokens import class_attention_layers, class_row
from attnviz.analysis.views import ChannelMapSummary, ChannelRow, channel_energy, channel_map_summary, channel_row
from attnviz.app import keys
from attnviz.capture.records import CrossCovarianceRecord
from attnviz.kinds import AttentionKind
from attnviz.models.imagenet import XCIT_KIND
from attnviz.viz.exports import channel_map_png, vector_csv
from attnviz.viz.figures import attention_map_figure, branch_sizes_figure, feature_grid_figure, row_comparison_figure
from attnviz.viz.overlays import feature_to_image

BRANCH_SMALL = 0.05  # below this ‖βXA‖ / ‖A‖ on the photo, E is within 5% of A: the mix barely changes it
RELATED = 5  # the row's largest entries listed, as many as the live map marks (TOP_K in attention_canvas.js); the
# first is the partner in the worked formula

# The page's parts that rerun alone (st.fragment keys): X in the page, the chosen row's numbers, and the row in
# the other form (inside the researchers' layer). A click on X reruns the row's parts; the channel box all.
LIVE_PART, ROW_PART, ROW_FORMS_PART = "channel_live", "channel_row", "channel_row_forms"
ROW_PARTS = [ROW_PART, ROW_FORMS_PART]


def introduction(xcit: bool) -> None:
    """DANet's channel attention, or XCiT's cross-covariance attention where the sidebar's model is one."""
    st.title(app.t("channel_map.title_xcit" if xcit else "channel_map.title"))
    st.markdown(app.t("channel_map.intuition_xcit" if xcit else "channel_map.intuition"))


def formula(record) -> None:
    """X and E in the form the module computes (the paper's, or the official code's); XCiT's own."""
    if isinstance(record, CrossCovarianceRecord):
        st.latex(r"""\begin{aligned}
X_{cj} &= \mathrm{softmax}_j\big(\tau\,\hat q_c\cdot\hat k_j\big)\\
o_c &= \textstyle\sum_j X_{cj}\, v_j
\end{aligned}""")
        words = dict(channels=record.attention.shape[-1], head=record.head or 0, heads=record.heads)
        plain = "" if record.normalised else "_plain"  # unit-length factors: cosines; else plain dot products
        st.markdown(app.t(f"channel_map.formula_terms_xcit{plain}", temperature=record.temperature, **words))
        return
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


def what_to_notice(record, summary: ChannelMapSummary, energy: np.ndarray | None) -> None:
    """How peaked the rows are (and why, from the energies), the form, and how much the mix β XA changes the
    features on this photo (‖βXA‖ / ‖A‖, recorded at capture), with what β's sign says."""
    notice = [
        app.t(
            "channel_map.notice_one_hot"
            if summary.mostly_one_hot
            else "channel_map.notice_spread"
            if round(summary.one_hot * summary.channels) > 0
            else "channel_map.notice_spread_none",
            one_hot=summary.one_hot,
            count=round(summary.one_hot * summary.channels),
            channels=summary.channels,
        )
    ]
    if isinstance(record, CrossCovarianceRecord):  # no β, no second form: what bounds its rows is τ
        plain = "" if record.normalised else "_plain"
        notice.append(app.t(f"channel_map.notice_xcit{plain}", temperature=record.temperature))
        st.markdown(f"**{app.t('channel_map.notice_title')}** " + " ".join(notice))
        return
    if energy is not None and summary.mostly_one_hot:
        notice.append(app.t("channel_map.notice_energy", energy=float(np.abs(energy).max())))
    notice.append(app.t("channel_map.notice_paper" if record.form == "paper" else "channel_map.notice_official"))
    branch = record.branch_size()
    if branch is None:
        beta_text = "channel_map.notice_beta_alone"
    else:
        beta_text = "channel_map.notice_beta_small" if branch < BRANCH_SMALL else "channel_map.notice_beta"
    notice.append(app.t(beta_text, beta=float(record.beta), branch=branch))
    notice.append(app.t("channel_map.notice_beta_sign"))
    st.markdown(f"**{app.t('channel_map.notice_title')}** " + " ".join(notice))


def live_map(selection, module_name: str, record, summary: ChannelMapSummary) -> int:
    """X drawn in the browser (hovering a row picks it) and the channel box; returns the chosen channel (the
    most peaked row until one is chosen)."""
    channels = summary.channels
    app.apply_link(
        "channel",
        keys.CAM_CHANNEL,
        lambda c: 0 <= c < channels,
        convert=int,
        what=app.t("channel_map.link_channels", last=channels - 1),
    )
    if keys.CAM_CHANNEL not in st.session_state or st.session_state[keys.CAM_CHANNEL] >= channels:
        st.session_state[keys.CAM_CHANNEL] = summary.most_peaked
    st.markdown(app.t("channel_map.hover_hint"))
    app.channel_canvas(
        payload=app.channel_data(selection.source, selection.model_name, selection.image_key, module_name, record),
        version=f"{selection.source}|{selection.model_name}|{selection.image_key}|{module_name}",
        channel=st.session_state[keys.CAM_CHANNEL],
        on_channel=choose_row,
        key=keys.CAM_CANVAS,
    )
    return st.session_state[keys.CAM_CHANNEL]


def choose_row(channel: int) -> None:
    """A click on X (the live map marked the row already): only the row's parts rerun."""
    st.session_state[keys.CAM_CHANNEL] = channel
    st.rerun(ROW_PARTS)


def box_changed(box_key: str) -> None:
    """The channel box: its row becomes the chosen one, and the live map marks it too."""
    st.session_state[keys.CAM_CHANNEL] = int(st.session_state[box_key])
    st.rerun([LIVE_PART, *ROW_PARTS])


def channel_box(channels: int) -> int:
    """The chosen row as a number box (in the row's part, so that a click on X updates it without rerunning the
    map). One box per chosen row (its key names the row): a box redrawn by a part's rerun keeps the value the
    browser holds, so the box of a row chosen by a click is a new one that starts at it."""
    channel = st.session_state[keys.CAM_CHANNEL]
    box_key = keys.cam_channel_box(channel)
    st.number_input(
        app.t("channel_map.channel_input"),
        0,
        channels - 1,
        value=channel,
        key=box_key,
        step=1,
        on_change=box_changed,
        args=(box_key,),
    )
    return channel


def row_numbers(selection, row: ChannelRow) -> None:
    """The chosen row's download, its sum and the channels it mixes in most."""
    channel = row.channel
    app.download(
        st,
        app.t("channel_map.download_row", channel=channel),
        vector_csv({f"X_{channel}_j": row.values}, index_name="j"),
        f"{selection.model_name}-row{channel}-of-X.csv",
        key=keys.CAM_CSV,
    )
    st.markdown(
        app.t(
            "channel_map.row_sum",
            channel=channel,
            total=row.total,
            related=app.t("channel_map.list_separator").join(f"{j} ({row.values[j]:.3f})" for j in row.related),
        )
    )


def worked_formula(record, row: ChannelRow, energy: np.ndarray, module: str) -> None:
    """X_cj for the row's partner j with this photo's numbers, and the feature maps the row mixes."""
    channel, partner = row.channel, row.partner
    argument, log_z = record.softmax_terms(channel, partner)
    st.markdown(app.t("channel_map.numbers", channel=channel, partner=partner))
    if record.form == "paper":
        st.latex(rf"A_{{{channel}}}\cdot A_{{{partner}}} = {argument:.1f}")
    else:
        st.latex(rf"""\begin{{aligned}}
&\max_m A_{{{channel}}}\cdot A_m - A_{{{channel}}}\cdot A_{{{partner}}}\\
&= {energy[channel].max():.1f} - {energy[channel, partner]:.1f} = {argument:.1f}
\end{{aligned}}""")
    st.latex(rf"X_{{{channel},{partner}}} = \exp({argument:.1f} - {log_z:.1f}) = {row.values[partner]:.4f}")
    st.markdown(app.t("channel_map.numbers_terms", argument=argument, log_normaliser=log_z))
    most, least = record.similar_channels(channel)
    st.caption(app.t("channel_map.similar", channel=channel, most=most, least=least, partner=partner))
    features = record.features[0]
    mixed = row.related
    maps = [feature_to_image(features[channel].numpy())] + [feature_to_image(features[j].numpy()) for j in mixed]
    titles = [app.t("channel_map.feature_output", channel=channel)] + [
        app.t("channel_map.feature_mixed", channel=int(j), value=float(row.values[j])) for j in mixed
    ]
    st.markdown(app.t("channel_map.features_intro"))
    app.chart(
        st,
        feature_grid_figure(maps, titles, columns=6),
        key=keys.CAM_FEATURES,
        caption=app.figure_caption(module, app.t("figures.caption_channel", channel=channel)),
    )


def worked_formula_xcit(record: CrossCovarianceRecord, row: ChannelRow) -> None:
    """X_cj of XCiT's head for the row's largest entry, with this photo's numbers: τ, the cosine, log Z."""
    channel, partner = row.channel, row.partner
    argument, log_z = record.softmax_terms(channel, partner)
    cosine = float(record.similarity(channel)[partner])  # a cosine when `normalised`, else a dot product
    st.markdown(app.t("channel_map.numbers", channel=channel, partner=partner))
    product = rf"\tau\,\hat q_{{{channel}}}\cdot\hat k_{{{partner}}}"
    st.latex(rf"{product} = {record.temperature:.3f} \times {cosine:.4f} = {argument:.3f}")
    st.latex(rf"X_{{{channel},{partner}}} = \exp({argument:.3f} - {log_z:.3f}) = {row.values[partner]:.4f}")
    plain = "" if record.normalised else "_plain"
    st.markdown(app.t(f"channel_map.numbers_terms_xcit{plain}", argument=argument, log_normaliser=log_z))


def class_attention(analysis) -> None:
    """XCiT's last layers, class attention: only CLS asks, so each head has one row, drawn over the patches (the
    heads' mean), one chart per layer; none for a model without such layers."""
    layers = class_attention_layers(analysis.records)
    if not layers:
        return
    first = next(iter(layers.values()))[0]
    st.subheader(app.t("channel_map.class_title"))
    height, width = first.key_grid
    tokens = first.baseline  # every key token: CLS and the patches
    words = dict(layers=len(layers), heads=first.heads, height=height, width=width, tokens=tokens)
    st.markdown(app.t("channel_map.class_text", **words))
    columns = st.columns(min(len(layers), 3))
    for index, (layer, heads) in enumerate(layers.items()):
        row = class_row(heads)
        title = app.t(
            "channel_map.class_map_title", layer=layer, share=1 - float(row.sum()), ratio=float(row.max()) * tokens
        )
        figure = attention_map_figure(
            row.numpy(), title, colour_title=app.t("channel_map.class_colour"), language=app.language()
        )
        where = columns[index % len(columns)]
        caption = app.figure_caption(app.t("channel_map.class_colour"))
        app.chart(where, figure, key=keys.class_map(layer), theme=None, caption=caption)


def fusion(selection, analysis, record) -> None:
    """DANet's two modules and their sum (Fu et al., CVPR 2019, §3.4 "Attention Module Embedding with
    Networks"): each output passes through a convolution and the two are added. Each branch's size on this
    photo (‖αDSᵀ‖ / ‖A‖, ‖βXA‖ / ‖A‖, recorded at capture) is drawn where both modules recorded it. The exact
    head is stated for this project's models (attnviz.modules.danet.DANetHead); for another model, only the
    paper's description, since the app does not read how a model adds the two."""
    position = analysis.position
    pam_size = position[1].branch_size() if position is not None else None
    cam_size = record.branch_size()
    if pam_size is None or cam_size is None:
        return
    st.markdown(app.t("channel_map.fusion_title"))
    if selection.source == "camvid":
        st.latex(r"""\begin{aligned}
A_p &= f_p(F),\quad A_c = f_c(F)\\
E_{\mathrm{PAM}} &= \alpha\, D S^\top + A_p\\
E_{\mathrm{CAM}} &= \beta\, X A_c + A_c\\
Y &= \mathrm{cls}\big(g_p(E_{\mathrm{PAM}}) + g_c(E_{\mathrm{CAM}})\big)
\end{aligned}""")
        st.markdown(app.t("channel_map.fusion_project"))
    else:
        st.markdown(app.t("channel_map.fusion_other"))
    app.chart(
        st,
        branch_sizes_figure(
            {
                app.t("channel_map.fusion_pam"): pam_size,
                app.t("channel_map.fusion_cam"): cam_size,
            },
            app.t("channel_map.fusion_chart_title"),
            language=app.language(),
        ),
        key=keys.CAM_FUSION,
        caption=app.figure_caption(app.t("channel_map.fusion_module")),
    )
    st.markdown(app.t("channel_map.fusion_reading", pam=pam_size, cam=cam_size))


def researchers_notes(record, summary: ChannelMapSummary) -> list[str]:
    """What researchers read: where the form comes from, the forms, an even row, and the cost of X."""
    if isinstance(record, CrossCovarianceRecord):
        return [
            app.t("channel_map.res_xcit", normalised=app.t(f"channel_map.res_xcit_unit_{record.normalised}")),
            app.t("channel_map.res_uniform", uniform=summary.uniform),
        ]
    notes = [
        app.t("channel_map.res_source", form=app.t(f"channel_map.form_{record.form}")),
        app.t(
            "channel_map.res_forms",
            paper=r"$\mathrm{softmax}(AA^\top)$",
            official=r"$\mathrm{softmax}(\mathrm{rowmax}(AA^\top) - AA^\top)$",
            equivalent=r"$\mathrm{softmax}(-AA^\top)$",
        ),
        app.t("channel_map.res_uniform", uniform=summary.uniform),
    ]
    if record.features is not None:
        height, width = record.features.shape[-2:]
        notes.append(
            app.t("channel_map.res_cost", channels=summary.channels, pixels=height * width, entries=summary.entries)
        )
    return notes


def other_form_row(record, row: ChannelRow, module: str) -> None:
    """The chosen row in the other form beside this one (for researchers)."""
    if record.features is not None:
        other_form = "paper" if record.form == "official" else "official"
        other = record.row(row.channel, other_form).numpy()
        form_name = {"official": app.t("channel_map.form_official"), "paper": app.t("channel_map.form_paper")}
        app.chart(
            st,
            row_comparison_figure(
                {
                    app.t("channel_map.this_form", form=form_name.get(record.form, record.form)): row.values,
                    app.t("channel_map.other_form", form=form_name[other_form]): other,
                },
                app.t("channel_map.forms_title", channel=row.channel),
                language=app.language(),
            ),
            key=keys.CAM_FORMS,
            caption=app.figure_caption(module, app.t("figures.caption_channel", channel=row.channel)),
        )
        st.caption(app.t("channel_map.forms_caption"))


@st.fragment(key=LIVE_PART)
def live_part(selection, analysis, module_name: str, record, summary: ChannelMapSummary) -> None:
    """X in the page and the view's download: a click on X does not rerun this."""
    app.continue_run(selection)
    live_map(selection, module_name, record, summary)
    if analysis.spatial_attention:
        app.view_download(selection, analysis, keys.CAM_HTML, channel=module_name)
    else:
        st.caption(app.t("channel_map.no_view_download"))
    caption = app.figure_caption(app.t("channel_map.module"), app.t("figures.caption_layer", layer=module_name))
    app.download(
        st,
        app.t("channel_map.download_x_png"),
        partial(channel_map_png, record.attention[0].numpy(), caption, app.language()),
        f"{selection.model_name}-{selection.image_key}-X-channel-attention.png",
        key=keys.CAM_PNG,
    )


@st.fragment(key=ROW_PART)
def row_part(selection, record, attention: np.ndarray, energy, module: str, record_name: str | None = None) -> None:
    """The chosen row: its box, numbers and worked formula, and the link (a click on X reruns this alone)."""
    app.continue_run(selection)
    row = channel_row(attention, channel_box(attention.shape[0]), RELATED)
    row_numbers(selection, row)
    if isinstance(record, CrossCovarianceRecord):
        worked_formula_xcit(record, row)
    elif record.features is not None:
        worked_formula(record, row, energy, module)
    app.link_params(channel=row.channel, module=record_name)  # the map, where the page offers several
    app.write_link()  # a rerun of this part alone writes the address bar itself (app.py's run did not run)


@st.fragment(key=ROW_FORMS_PART)
def row_forms_part(selection, record, attention: np.ndarray, module: str) -> None:
    """The chosen row in the other form, inside the researchers' layer (a click on X reruns this too)."""
    app.continue_run(selection)
    other_form_row(record, channel_row(attention, st.session_state[keys.CAM_CHANNEL], RELATED), module)


selection = app.current()
introduction(selection is not None and selection.attention == XCIT_KIND)
selection, analysis = app.page_analysis(
    prefixes=("danet",), what=app.t("channel_map.what"), needs=lambda a: bool(a.channel_maps), also=(XCIT_KIND,)
)
maps = analysis.channel_maps
module_name = app.channel_map_picker(st, maps)
record = maps[module_name]
attention = record.attention[0].numpy()
summary = channel_map_summary(attention)
energy = channel_energy(record.features) if record.features is not None else None
module = app.t("channel_map.module")
formula(record)
what_to_notice(record, summary, energy)
live_part(selection, analysis.view_only(), module_name, record, summary)
row_part(selection, record, attention, energy, module, module_name if len(maps) > 1 else None)
class_attention(analysis)
fusion(selection, analysis, record)
app.switch_section(selection, analysis, (AttentionKind.CAM,), context="channel_map")
with st.expander(app.t("common.for_researchers")):
    for text in researchers_notes(record, summary):
        st.markdown(text)
    row_forms_part(selection, record, attention, module)

# The parts above (st.fragment) keep this page's namespace for the session (their globals): it must not hold the
# whole analysis (the channel layers' input features, 61 MB for a 768x1024 upload) once the page has run, or
# every session keeps its own after the shared cache dropped it (python -m attnviz.load_bench, issue 31).
del analysis
