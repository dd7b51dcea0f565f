"""Overview: what attention modules do, a map of the app in teaching order, then the photo, the prediction and
the ground truth; timings and the model card for researchers at the end.

The page reads as its contents, called in order at the bottom: the introduction, then one of three bodies by
the model shown (a user's model, an ImageNet classifier from timm, a shipped CamVid model) and the second
layer for researchers. attnviz.analysis.views reads the card and sorts what was found; the functions here lay
it out."""

from functools import partial

import pandas as pd
import streamlit as st

from attnviz import app
from attnviz.analysis.forward import classes_present
from attnviz.analysis.metrics import score_prediction
from attnviz.analysis.tokens import token_layout
from attnviz.analysis.views import (
    branch_weights,
    card_rows,
    computed_modules,
    findings_rows,
    gate_planes,
    in_rows,
    recognised_by_structure,
)
from attnviz.app import keys
from attnviz.capture.recorder import split_name
from attnviz.capture.records import (
    CoordinateAttentionRecord,
    CrossCovarianceRecord,
    SpatialAttentionRecord,
    TokenAttentionRecord,
    WindowAttentionRecord,
)
from attnviz.models.checkpoint import card_summary
from attnviz.models.imagenet import input_side
from attnviz.text import markdown_literal
from attnviz.viz.exports import png_bytes
from attnviz.viz.figures import (
    branch_weights_figure,
    class_legend_html,
    coordinate_attention_figure,
    gate_planes_figure,
    layer_weights_heatmap,
    sorted_weights_figure,
    training_curve_figure,
)
from attnviz.viz.overlays import blend_classes, blend_heatmap, blend_labels

t = app.t
GATE_FORMULA = r"$\sigma(\mathrm{conv}([\mathrm{AvgPool}_c; \mathrm{MaxPool}_c]))$"

# the map of the app in teaching order: (page file, its navigation title, its line in the map)
MAP_START = [("pages/lecture.py", "lecture", ":material/school:")]
MAP_CHANNEL = [
    ("pages/eca.py", "eca", ":material/tune:"),
    ("pages/eca_kernel.py", "eca_kernel", ":material/straighten:"),
    ("pages/flexible.py", "flexible", ":material/call_split:"),
    ("pages/coord.py", "coord", ":material/grid_4x4:"),
]
MAP_DANET = [
    ("pages/position.py", "position", ":material/ads_click:"),
    ("pages/channel_map.py", "channel_map", ":material/grid_on:"),
    ("pages/attribution.py", "attribution", ":material/troubleshoot:"),
]
MAP_END = [("pages/compare.py", "compare", ":material/compare:")]


def page_links(where, pages) -> None:
    for path, name, icon in pages:
        title = t("nav.compare_modules") if name == "compare" else t(f"nav.{name}")
        where.page_link(path, label=title, icon=icon)
        where.caption(t(f"overview.map.{name}"))


def map_of_the_app() -> None:
    st.subheader(t("overview.map.title"))
    st.markdown(t("overview.map.intro"))
    page_links(st, MAP_START)
    channel, danet = st.columns(2)
    channel.markdown(f"**{t('nav.channel')}**")
    page_links(channel, MAP_CHANNEL)
    danet.markdown(f"**{t('nav.danet')}**")
    page_links(danet, MAP_DANET)
    page_links(st, MAP_END)


def model_card(selection) -> None:
    """The model card (inside the researchers' expander): its figures, the training curve, its config."""
    st.markdown(f"**{t('overview.card.title', model=markdown_literal(selection.model_name))}**")
    summary = card_summary(selection.card)
    rows = card_rows(selection.card, app.language())
    if summary["note"]:
        rows.append({t("overview.card.field"): t("overview.card.note"), t("overview.card.value"): summary["note"]})
    if rows:
        st.table(pd.DataFrame(rows), hide_index=True, hide_header=True)
    st.caption(t("overview.camvid.evaluation"))
    if summary["history"]:
        app.chart(
            st,
            training_curve_figure(
                summary["history"],
                t("overview.card.training_title", model=selection.model_name),
                language=app.language(),
            ),
            key=keys.TRAINING_CURVE,
            caption=app.figure_caption(t("overview.card.training_module")),
        )
    st.markdown(t("overview.card.config"))
    st.json(selection.card.get("config", {}), expanded=False)


def spatial_gates(image, gates: dict) -> None:
    """Every spatial gate over the photo (the table says each is drawn), three to a row."""
    for row in in_rows(gates.items(), 3):
        for column, (name, gate) in zip(st.columns(3), row):
            column.image(
                blend_heatmap(image, gate.map[0].numpy(), 0.6, 0, 1),
                caption=t(
                    "overview.user.gate_caption",
                    layer=markdown_literal(name),
                    rows=gate.map.shape[-2],
                    cols=gate.map.shape[-1],
                ),
            )


def coordinate_pairs(coords: dict, picker_key: str) -> None:
    """A coordinate attention's a_h and a_w (one module picked when there are several)."""
    if len(coords) > 1:
        name = st.selectbox(t("common.layer"), list(coords), key=picker_key)
        coords = {name: coords[name]}
    for name, coord in coords.items():
        app.chart(
            st,
            coordinate_attention_figure(
                coord.height_weights[0].numpy(),
                coord.width_weights[0].numpy(),
                t("overview.ca_title", layer=name),
                language=app.language(),
            ),
            key=keys.user_chart(name),
            caption=app.figure_caption(t("overview.ca_module"), t("figures.caption_layer", layer=name)),
        )


def found_by_what_they_compute(image, analysis) -> None:
    """What the dataflow reader found in modules of no known family, drawn: spatial gates over the photo,
    coordinate pairs, sigmoid channel gates (one row a layer), softmax weights over channels, over branches
    (a module picked), and gates on elements or planes."""
    found = computed_modules(analysis.records)
    if not found:
        return
    st.subheader(t("overview.user.computed_title"))
    st.markdown(t("overview.user.computed_intro"))
    if found.spatial:
        st.markdown(t("overview.user.computed_spatial"))
        spatial_gates(image, found.spatial)
    coordinate_pairs(found.coordinates, keys.USER_COMPUTED_COORD_LAYER)
    if gates := found.channel_gates:
        app.chart(
            st,
            layer_weights_heatmap(list(gates), [r.weights[0].numpy() for r in gates.values()], language=app.language()),
            key=keys.USER_CHANNEL_GATES,
            caption=app.figure_caption(t("overview.user.channel_gates_module")),
        )
    for name, record in found.channel_softmaxes.items():
        app.chart(
            st,
            sorted_weights_figure(
                record.weights[0].numpy(),
                t("overview.user.softmax_title", layer=name),
                language=app.language(),
                unit_range=False,
            ),
            key=keys.user_chart(name),
            caption=app.figure_caption(t("overview.user.softmax_module"), t("figures.caption_layer", layer=name)),
        )
    if found.branches:
        picked_module_chart(
            "branches",
            found.branches,
            keys.USER_BRANCH_LAYER,
            lambda r: f"K = {r.branches}, C = {r.channels}",
            lambda r, title: branch_weights_figure(branch_weights(r), title, language=app.language()),
        )
    if planes := found.planes:
        name = picked_module_chart(
            "planes",
            planes,
            keys.USER_GATE_LAYER,
            lambda r: " x ".join(r.axes),
            lambda r, title: gate_planes_figure(gate_planes(r), title, language=app.language()),
        )
        st.caption(planes[name].found_by.text(app.language()))


def picked_module_chart(what: str, records: dict, picker_key: str, describe, figure) -> str:
    """The "overview.user.<what>" intro, a module picked among `records` (each described by `describe`), and
    its chart (`figure(record, title)`); returns the picked module's name."""
    st.markdown(t(f"overview.user.{what}"))
    name = st.selectbox(
        t("common.layer"), list(records), key=picker_key, format_func=lambda n: f"{n}  ({describe(records[n])})"
    )
    app.chart(
        st,
        figure(records[name], t(f"overview.user.{what}_title", layer=name)),
        key=keys.user_chart(name),
        caption=app.figure_caption(t(f"overview.user.{what}_module"), t("figures.caption_layer", layer=name)),
    )
    return name


def top_classes_table(where, top_classes, progress: bool) -> None:
    frame = pd.DataFrame([{"class": name, "index": index, "probability": p} for index, name, p in top_classes])
    probability = (  # narrow columns: ImageNet's long class names beside them made the table scroll sideways
        st.column_config.ProgressColumn(
            t("overview.timm.probability"), format="percent", min_value=0.0, max_value=1.0, width="small"
        )
        if progress
        else st.column_config.NumberColumn(t("overview.timm.probability"), width="small")
    )
    where.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "class": st.column_config.TextColumn(t("overview.timm.class"), width="medium"),
            "index": st.column_config.NumberColumn(t("overview.timm.index"), width="small"),
            "probability": probability,
        },
    )


def introduction() -> None:
    """What attention modules do, and the map of the app in teaching order."""
    st.title(t("overview.title"))
    st.markdown(t("overview.intuition"))
    map_of_the_app()


def user_prediction(selection, analysis) -> None:
    """A user's model: its prediction over the photo (or the photo and its top classes) and its weights."""
    left, right = st.columns([3, 2])
    if analysis.prediction is not None:
        classes = analysis.class_names
        overlay = blend_classes(selection.image, analysis.prediction, len(classes) if classes else 0)
        left.image(overlay, caption=t("overview.user.prediction", model=markdown_literal(selection.model_name)))
    else:
        left.image(selection.image, caption=t("overview.photo_caption", photo=markdown_literal(selection.image_title)))
        top_classes_table(right, analysis.top_classes, progress=False)
    right.markdown(
        t(
            "overview.user.weights",
            model=markdown_literal(selection.model_name),
            weights=markdown_literal(selection.weights_note),
        )
    )


def findings(analysis) -> None:
    """The table of the attention modules found in a user's model (or that none was), and the look-alikes."""
    st.subheader(t("overview.user.found_title"))
    if analysis.checks:
        rows = findings_rows(analysis.checks, app.language())
        # pixel widths that fit the page at 1400 px: a long check is cut with an ellipsis (hover shows it)
        widths = {"module": 150, "reader": 130, "family": 140, "map": 110, "drawn": 55, "check": 280}
        st.dataframe(
            pd.DataFrame(rows)[list(widths)],
            hide_index=True,
            column_config={
                column: st.column_config.TextColumn(t(f"overview.user.{column}"), width=width)
                for column, width in widths.items()
            },
        )
        st.caption(t("overview.user.found_caption"))
    else:
        st.info(t("overview.user.none_found"))
    if analysis.lookalikes:
        st.warning(
            t("overview.user.lookalikes", names=", ".join(markdown_literal(name) for name in analysis.lookalikes))
        )


def recognised_modules(image, analysis) -> None:
    """The modules recognised by their structure (CBAM's spatial gate, CoordAtt), drawn; what the dataflow
    reader found is drawn after them."""
    gates = recognised_by_structure(analysis.of_type(SpatialAttentionRecord))
    if gates:
        st.markdown(t("overview.user.gates", formula=GATE_FORMULA))
        spatial_gates(image, gates)
    coordinate_pairs(recognised_by_structure(analysis.of_type(CoordinateAttentionRecord)), keys.USER_COORD_LAYER)


def user_model(selection, analysis) -> None:
    """A model given with --model / --models: its prediction, what was found in it, and those modules drawn."""
    user_prediction(selection, analysis)
    findings(analysis)
    recognised_modules(selection.image, analysis)
    found_by_what_they_compute(selection.image, analysis)
    app.switchable_modules(selection, analysis)
    with st.expander(t("common.for_researchers")):
        st.caption(t("overview.user.timing", ms=analysis.forward_s * 1000, device=analysis.device))


def window_stages(windows: dict) -> dict:
    """Swin's window-attention layers in words: how many, and each stage's grid and heads (in the order run)."""
    layers: dict[str, object] = {}
    for name, record in windows.items():
        layers.setdefault(split_name(name)[0], record)
    stages: dict[tuple, int] = {}
    for record in layers.values():
        stage = (record.height, record.width, record.heads)
        stages[stage] = stages.get(stage, 0) + 1
    first = next(iter(layers.values()))
    return dict(
        layers=len(layers),
        window=f"{first.window[0]}x{first.window[1]}",
        stages=t("overview.timm.window_stage_separator").join(
            t("overview.timm.window_stage", height=h, width=w, heads=heads, layers=count)
            for (h, w, heads), count in stages.items()
        ),
    )


def imagenet_classifier(selection, analysis) -> None:
    """An ImageNet classifier from timm: the photo, its top five classes, and the pages that show its layers."""
    left, right = st.columns([3, 2])
    left.image(selection.image, caption=t("overview.photo_caption", photo=markdown_literal(selection.image_title)))
    tokens = analysis.of_type(TokenAttentionRecord)
    windows = analysis.of_type(WindowAttentionRecord)
    channels = analysis.of_type(CrossCovarianceRecord)
    with right:
        st.markdown(t("overview.timm.top5", model=selection.model_name))
        top_classes_table(st, analysis.top_classes, progress=True)
        if channels:  # XCiT: its channel maps; its class attention (CLS alone asks) is no map of the photo
            first = next(iter(channels.values()))
            layers = len({split_name(name)[0] for name in channels})
            class_layers = len({split_name(name)[0] for name in tokens})
            size = first.attention.shape[-1]
            words = dict(layers=layers, heads=first.heads, size=size, class_layers=class_layers)
            st.caption(t("overview.timm.xcit_layers", weights=selection.weights_note, **words))
        elif windows and not tokens:
            st.caption(t("overview.timm.window_layers", weights=selection.weights_note, **window_stages(windows)))
        elif tokens:
            first = next(iter(tokens.values()))
            layout = token_layout(first)
            patches = t("position.patches", rows=layout.grid[0], cols=layout.grid[1])
            layers = len({split_name(name)[0] for name in tokens})
            words = dict(layers=layers, heads=layout.heads, tokens=layout.tokens, parts=layout.parts(patches))
            st.caption(t("overview.timm.token_layers", weights=selection.weights_note, **words))
        else:
            st.caption(
                t(
                    "overview.timm.layers",
                    weights=selection.weights_note,
                    count=len(analysis.channel_layers()),
                    attention=selection.attention.upper(),
                )
            )
    if channels:
        st.markdown(t("overview.timm.xcit_pages"))
    elif tokens or windows:
        st.markdown(t("overview.timm.window_pages" if windows and not tokens else "overview.timm.token_pages"))
    else:
        st.markdown(t("overview.timm.pages"))
    with st.expander(t("common.for_researchers")):
        if tokens or windows or channels:
            size, ms = input_side(selection.model_name), analysis.forward_s * 1000
            st.caption(t("overview.timm.token_details", size=size, ms=ms, device=analysis.device))
        else:
            st.caption(t("overview.timm.details", ms=analysis.forward_s * 1000, device=analysis.device))


def segmentation(selection, analysis) -> None:
    """A shipped CamVid model: the photo, the prediction (with its download), the ground truth and the
    photo's scores, and the legend of the classes shown."""
    st.subheader(t("overview.camvid.photo_title"))
    if selection.label is not None:
        st.markdown(t("overview.camvid.notice"))
    columns = st.columns(3 if selection.label is not None else 2)
    columns[0].image(
        selection.image, caption=t("overview.photo_caption", photo=markdown_literal(selection.image_title))
    )
    prediction_overlay = blend_labels(selection.image, analysis.prediction)
    columns[1].image(prediction_overlay, caption=t("overview.camvid.prediction_caption", model=selection.model_name))
    app.download(
        columns[1],
        t("overview.camvid.prediction_png"),
        partial(png_bytes, prediction_overlay),
        f"{selection.model_name}-prediction.png",
        key=keys.PREDICTION_PNG,
    )
    if selection.label is not None:
        columns[2].image(blend_labels(selection.image, selection.label), caption=t("overview.camvid.truth_caption"))
        scores = score_prediction(analysis.prediction, selection.label)
        st.markdown(t("overview.camvid.scores", accuracy=scores["pixel_accuracy"], miou=scores["miou"]))
    st.html(class_legend_html(classes_present(analysis.prediction, selection.label), app.language()))


def for_researchers(selection, analysis) -> None:
    """The forward pass's timing and the model card."""
    with st.expander(t("common.for_researchers")):
        st.caption(
            t(
                "overview.camvid.timing",
                ms=analysis.forward_s * 1000,
                device=analysis.device,
                width=selection.image.shape[1],
                height=selection.image.shape[0],
            )
        )
        model_card(selection)


introduction()
selection, analysis = app.page_analysis()
if selection.source == "user":
    user_model(selection, analysis)
    app.stop_page()
if analysis.top_classes is not None:
    imagenet_classifier(selection, analysis)
    app.stop_page()
segmentation(selection, analysis)
for_researchers(selection, analysis)
