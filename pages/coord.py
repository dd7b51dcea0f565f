"""Coordinate Attention: one channel's row and column weights, and their product over the photo."""
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.app import keys
from attnviz.kinds import AttentionKind
from attnviz.records import CoordinateAttentionRecord
from attnviz.views import coordinate_view, most_varied_channel
from attnviz.viz.figures import coordinate_profiles_figure
from attnviz.viz.overlays import blend_heatmap, draw_markers

st.title("Coordinate Attention: where, by rows and by columns")
st.markdown(
    r"""Coordinate Attention (Hou et al., CVPR 2021) pools every channel along each row and along each column
separately, so it keeps *where* things are: one weight per row, $a^h_c(i)$, one per column, $a^w_c(j)$, and each
feature is scaled by their product:

$$y_c(i, j) = x_c(i, j)\cdot a^h_c(i)\cdot a^w_c(j).$$

Pick a channel, then click the photo to read the factor at a pixel.""")
selection, analysis = app.page_analysis(attention=(AttentionKind.CA,), what="Coordinate Attention layers",
                                        needs=lambda a: bool(a.of_type(CoordinateAttentionRecord)))
layers = analysis.of_type(CoordinateAttentionRecord)
names = list(layers)
layer = app.layer_picker(names, keys.CA_LAYER, format_func=lambda n: f"{n}  (C = {layers[n].height_weights.shape[1]})")
record = layers[layer]
channels = record.height_weights.shape[1]
app.apply_link("channel", keys.CA_CHANNEL, lambda c: 0 <= c < channels, convert=int,
               what=f"this layer has channels 0 to {channels - 1}")
if st.session_state.get(keys.CA_CHANNEL) is None or st.session_state[keys.CA_CHANNEL] >= channels:
    st.session_state[keys.CA_CHANNEL] = most_varied_channel(record)
channel = st.number_input("Channel c", 0, channels - 1, key=keys.CA_CHANNEL, step=1,
                          help="It starts at the channel whose factor varies most over the photo.")
image = selection.image
x, y, chosen = app.chosen_pixel(keys.CA_CLICK, image.shape[:2], selection.image_key)
view = coordinate_view(record, channel, (x, y), image.shape[:2])
row, col = view.cell

left, right = st.columns([1, 1])
with left:
    h, w = image.shape[:2]
    centre = ((col + 0.5) * w / view.product.shape[1], (row + 0.5) * h / view.product.shape[0])
    overlay = draw_markers(blend_heatmap(image, view.product, 0.6, vmin=0.0, vmax=1.0), [centre],
                           colour=(0, 255, 0), cross=True)
    streamlit_image_coordinates(overlay, key=keys.CA_CLICK, use_column_width="always", cursor="crosshair",
                                image_format="JPEG", jpeg_quality=90)
    st.caption(f"a_h · a_w of channel {channel} over the photo (inferno, 0 to 1): bright bands are rows and columns "
               "the channel keeps, dark ones it turns down. Green cross: the chosen cell.")
with right:
    app.chart(st, coordinate_profiles_figure(view.height_weights, view.width_weights, view.cell,
                                             f"Channel {channel} of {layer}"), key=keys.CA_PROFILES)
a_h, a_w, product = view.at_cell
st.markdown(f"**{'Chosen pixel' if chosen else 'The centre (until you click)'}:** x = {x}, y = {y} → feature row "
            f"{row}, column {col}.")
st.latex(rf"y_{{{channel}}}({row}, {col}) = x_{{{channel}}}({row}, {col})\cdot a^h_{{{channel}}}({row})\cdot "
         rf"a^w_{{{channel}}}({col}) = x_{{{channel}}}({row}, {col})\cdot {a_h:.4f}\cdot {a_w:.4f} = "
         rf"{product:.4f}\cdot x_{{{channel}}}({row}, {col})")
st.markdown(f"Over the photo this channel's factor runs from {view.product.min():.4f} to {view.product.max():.4f}: "
            "because it is a product of one row weight and one column weight, it can only paint bands and their "
            "crossings, never an arbitrary shape. That is how the module encodes position at almost no cost.")
with st.expander("For researchers"):
    st.markdown("As in the official code, a_h and a_w come from one shared 1x1 conv (to max(8, C/r) channels), "
                "batch norm and h-swish over the concatenated row and column poolings, then one 1x1 conv and a "
                "sigmoid each. The weights shown are this photo's: they change from photo to photo, since the "
                "poolings do.")
app.link_params(layer=layer, channel=channel, x=x if chosen else None, y=y if chosen else None)
