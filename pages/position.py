"""DANet position attention: click a pixel, see where it attends and who attends to it."""
import numpy as np
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import appstate
from attnviz.analysis import attention_share_on_class, feature_centre, feature_index, top_locations
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR
from attnviz.results import model_results, pam_ratio_text, read_results
from attnviz.viz.figures import attention_map_figure
from attnviz.viz.overlays import blend_heatmap, draw_markers

st.title("DANet position attention: where does a pixel look?")
st.markdown(
    r"""DANet's position attention module (Fu et al., CVPR 2019) lets every pixel of a feature map gather features
from **every** other pixel. With $B$, $C$ (1x1 convs to $C/8$ channels) and $D$ (1x1 conv to $C$) of the feature map $A$,

$$S = \mathrm{softmax}(B^\top C)\ \ (N \times N,\ N = H W),\qquad E = \alpha\,(D\,S^\top) + A .$$

Row $i$ of $S$ says **where pixel $i$ attends** (it sums to 1); column $j$ says **who attends to pixel $j$**.
Click the photo to choose pixel $i$.""")
selection, analysis = appstate.page_analysis(prefixes=("danet",), what="position attention module")
module_name, record = analysis.position
image = selection.image
height, width = image.shape[:2]
feature_hw = (record.height, record.width)

mode = st.radio("Show", ["where it attends (row i of S)", "who attends to it (column i of S)"], horizontal=True,
                key="pam_mode")
opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="pam_opacity")

click = st.session_state.get("pam_click")
if click and click.get("width") and click.get("height"):
    x = float(np.clip(click["x"] * width / click["width"], 0, width - 1))
    y = float(np.clip(click["y"] * height / click["height"], 0, height - 1))
else:
    x, y = width / 2, height / 2
index = feature_index(x, y, (height, width), feature_hw)
row, col = divmod(index, record.width)
is_row = mode.startswith("where")
values = (record.row(index) if is_row else record.column(index)).numpy()
top = top_locations(values, 5)

overlay = blend_heatmap(image, values, opacity)
overlay = draw_markers(overlay, [feature_centre(t, (height, width), feature_hw) for t in top], colour=(0, 255, 255))
overlay = draw_markers(overlay, [feature_centre(index, (height, width), feature_hw)], colour=(0, 255, 0), cross=True)

left, right = st.columns([3, 2])
with left:
    streamlit_image_coordinates(overlay, key="pam_click", use_column_width="always", cursor="crosshair")
    st.caption("Click anywhere on the photo. Green cross: the chosen pixel; cyan circles: the 5 largest values.")
with right:
    st.markdown(f"**Chosen pixel{'' if click else ' (the centre until you click)'}:** x = {x:.0f}, y = {y:.0f} in the photo → feature pixel row {row}, column {col} "
                f"(index i = {index} of N = {record.num_pixels}, a {record.height}x{record.width} map).")
    st.markdown(f"**α = {record.alpha:.4f}** (learned; starts at 0): the attention output enters as "
                f"α·(D Sᵀ) + A.")
    if is_row:
        st.markdown(f"Row i sums to **{values.sum():.6f}**. Largest weight {values.max():.4f} "
                    f"= {values.max() * record.num_pixels:.1f}x the uniform 1/N.")
    else:
        st.markdown(f"Column i sums to **{values.sum():.3f}** (on average a column sums to 1): pixel i receives "
                    f"{values.sum():.2f}x the average attention.")
    listing = []
    for rank, t in enumerate(top, 1):
        r, c = divmod(t, record.width)
        listing.append(f"{rank}. row {r}, col {c}: {values.flat[t]:.4f}")
    st.markdown("**Top locations:**  \n" + "  \n".join(listing))
    if selection.label is not None and is_row:
        label = selection.label
        cls = int(label[int(y), int(x)])
        if cls == IGNORE_INDEX:
            st.markdown("The chosen pixel is unlabelled in the ground truth.")
        else:
            share, chance = attention_share_on_class(values, label, cls)
            st.markdown(f"The chosen pixel is **{CLASS_NAMES[cls]}**. **{share:.1%}** of its attention falls on "
                        f"{CLASS_NAMES[cls]} pixels, which cover {chance:.1%} of the labelled photo "
                        f"(**{share / chance if chance else float('nan'):.1f}x chance**).")
    model_figure = pam_ratio_text(model_results(read_results(DEFAULT_CHECKPOINT_DIR / "results.json"),
                                                selection.model_name))
    if model_figure:
        st.markdown(f"**This model over the whole test split:** {model_figure}.")
    info = appstate.catalogue().get(selection.model_name)
    if info is not None and info.pam_affinity > 0:
        st.info(f"**PAM supervised with class affinity** (weight {info.pam_affinity:g}): in training, an extra loss "
                "pulled each row of S towards the pixels of the query's own class (the affinity-loss idea of "
                "Context Prior, Yu et al., CVPR 2020). Its attention groups classes because it was taught to.")
    else:
        st.caption("Plain DANet: S was learned only through the segmentation loss. Trained on 367 photos, it is "
                   "weakly tied to the classes; a model trained with `--pam-affinity` is taught to group them.")
# the formula with this photo's numbers, for the largest value shown
j = top[0]
query_index, key_index = (index, j) if is_row else (j, index)
energy = float(record.query[0, query_index] @ record.key[0, key_index])
log_z = float(record.log_normaliser[0, query_index])
st.latex(rf"S_{{{query_index},{key_index}}} = \frac{{\exp(B_{{{query_index}}}^\top C_{{{key_index}}})}}"
         rf"{{\sum_m \exp(B_{{{query_index}}}^\top C_m)}} = \exp({energy:.3f} - {log_z:.3f}) = {np.exp(energy - log_z):.4f}")
st.plotly_chart(attention_map_figure(values, f"{'Row' if is_row else 'Column'} {index} of S at feature resolution "
                                     f"({module_name})", marker=(row, col),
                                     top=[divmod(t, record.width) for t in top]), key="pam_map", theme=None)
st.caption(f"S is never built: the app keeps B and C of this photo and computes one row or column per click "
           f"(O(N·C/8)); the full S would be {record.num_pixels}² = {record.num_pixels ** 2:,} numbers.")
