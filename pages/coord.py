"""Coordinate Attention: one channel's row and column weights, and their product over the photo.

The page reads as its contents, called in order at the bottom: the introduction, the layer and channel
picked, what to notice, the product over the photo beside the two profiles, the chosen cell's formula with
this photo's numbers, and the second layer for researchers. attnviz.analysis.views computes the factors;
the functions here lay them out."""

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.analysis.views import CoordinateView, cell_middle, coordinate_view, most_varied_channel
from attnviz.app import keys
from attnviz.capture.records import CoordinateAttentionRecord
from attnviz.kinds import AttentionKind
from attnviz.viz.figures import coordinate_profiles_figure
from attnviz.viz.overlays import blend_heatmap, draw_markers


def introduction() -> None:
    st.title(app.t("coord.title"))
    st.markdown(app.t("coord.intuition"))
    st.latex(r"y_c(i, j) = x_c(i, j)\cdot a^h_c(i)\cdot a^w_c(j)")
    st.markdown(app.t("coord.instruction"))


def controls(layers: dict) -> tuple[str, int]:
    """(layer, channel): the layer box and the channel box (the most varied channel until one is chosen)."""
    # names and notation only, the same in every language (a label that changed with the language would no
    # longer match the value the browser holds for the select box)
    layer = app.layer_picker(
        list(layers), keys.CA_LAYER, format_func=lambda n: f"{n}  (C = {layers[n].height_weights.shape[1]})"
    )
    record = layers[layer]
    channels = record.height_weights.shape[1]
    app.apply_link(
        "channel",
        keys.CA_CHANNEL,
        lambda c: 0 <= c < channels,
        convert=int,
        what=app.t("coord.channel_range", last=channels - 1),
    )
    if st.session_state.get(keys.CA_CHANNEL) is None or st.session_state[keys.CA_CHANNEL] >= channels:
        st.session_state[keys.CA_CHANNEL] = most_varied_channel(record)
    channel = st.number_input(
        app.t("common.channel"), 0, channels - 1, key=keys.CA_CHANNEL, step=1, help=app.t("coord.channel_help")
    )
    return layer, channel


def what_to_notice(view: CoordinateView) -> None:
    """How far the channel's factor a_h · a_w ranges over the map."""
    lowest, highest = float(view.product.min()), float(view.product.max())
    st.markdown(app.t("coord.notice", channel=view.channel, lowest=lowest, highest=highest))


def product_on_photo(image, view: CoordinateView) -> None:
    """a_h · a_w over the photo, the chosen cell marked; a click picks a pixel."""
    centre = cell_middle(view.cell, image.shape[:2], view.product.shape)
    overlay = draw_markers(
        blend_heatmap(image, view.product, 0.6, vmin=0.0, vmax=1.0), [centre], colour=(0, 255, 0), cross=True
    )
    streamlit_image_coordinates(
        overlay, key=keys.CA_CLICK, use_column_width="always", cursor="crosshair", image_format="JPEG", jpeg_quality=90
    )
    st.caption(app.t("coord.photo_caption", channel=view.channel))


def profiles(view: CoordinateView, layer: str) -> None:
    """a_h and a_w of the channel, the chosen row and column marked."""
    channel = view.channel
    detail = " · ".join(
        (app.t("figures.caption_layer", layer=layer), app.t("figures.caption_channel", channel=channel))
    )
    app.chart(
        st,
        coordinate_profiles_figure(
            view.height_weights,
            view.width_weights,
            view.cell,
            app.t("coord.profiles_title", channel=channel, layer=layer),
            language=app.language(),
        ),
        key=keys.CA_PROFILES,
        caption=app.figure_caption(app.t("coord.module"), detail),
    )


def formula(view: CoordinateView, pixel: tuple[int, int], chosen: bool) -> None:
    """The chosen cell's output as its input times a_h · a_w, with this photo's numbers."""
    channel, (row, col) = view.channel, view.cell
    a_h, a_w, product = view.at_cell
    st.markdown(app.t("coord.chosen" if chosen else "coord.centre", x=pixel[0], y=pixel[1], row=row, col=col))
    # four short lines: the whole product did not fit a phone's width
    st.latex(
        rf"\begin{{aligned}}y_{{{channel}}}({row}, {col}) &= "
        rf"x_{{{channel}}}({row}, {col})\cdot a^h_{{{channel}}}({row})\\ "
        rf"&\qquad\cdot a^w_{{{channel}}}({col})\\ &= x_{{{channel}}}({row}, {col})\cdot {a_h:.4f}\cdot {a_w:.4f}\\ "
        rf"&= {product:.4f}\cdot x_{{{channel}}}({row}, {col})\end{{aligned}}"
    )
    st.markdown(app.t("coord.terms", row=row, col=col, a_h=a_h, a_w=a_w, product=product))


def for_researchers() -> None:
    with st.expander(app.t("common.for_researchers")):
        st.markdown(app.t("coord.researchers"))


introduction()
selection, analysis = app.page_analysis(
    attention=(AttentionKind.CA,), what=app.t("coord.what"), needs=lambda a: bool(a.of_type(CoordinateAttentionRecord))
)
layers = analysis.of_type(CoordinateAttentionRecord)
layer, channel = controls(layers)
image = selection.image
x, y, chosen = app.chosen_pixel(keys.CA_CLICK, image.shape[:2], selection.image_key)
view = coordinate_view(layers[layer], channel, (x, y), image.shape[:2])
what_to_notice(view)
left, right = st.columns([1, 1])
with left:
    product_on_photo(image, view)
with right:
    profiles(view, layer)
formula(view, (x, y), chosen)
app.switch_section(selection, analysis, (AttentionKind.CA,), context="coord")
for_researchers()
app.link_params(layer=layer, channel=channel, x=x if chosen else None, y=y if chosen else None)
