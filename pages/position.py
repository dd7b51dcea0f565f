"""DANet position attention: click a pixel, see where it attends and who attends to it."""
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import appstate
from attnviz.analysis import attention_share_on_class, feature_centre, feature_index, top_locations
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX
from attnviz.exports import grid_csv, png_bytes
from attnviz.quality import far_key_own_class_ratio
from attnviz.results import as_number, class_figure, far_key_text, model_results, pam_ratio_text
from attnviz.viz.figures import attention_map_figure
from attnviz.viz.overlays import blend_heatmap, draw_markers

st.title("DANet position attention: where does a pixel look?")
st.markdown(
    r"""DANet's position attention module (Fu et al., CVPR 2019) lets every pixel of a feature map gather features
from **every** other pixel. With $B$, $C$ (1x1 convs to $C/8$ channels) and $D$ (1x1 conv to $C$) of the feature map $A$,

$$S = \mathrm{softmax}(B^\top C)\ \ (N \times N,\ N = H W),\qquad E = \alpha\,(D\,S^\top) + A .$$

Row $i$ of $S$ says **where pixel $i$ attends** (it sums to 1); column $j$ says **who attends to pixel $j$**.
Click the photo to choose pixel $i$.

*Notation:* the paper writes $s_{ji} = \exp(B_i \cdot C_j) / \sum_i \exp(B_i \cdot C_j)$ with $j$ the output pixel,
i.e. $\mathrm{softmax}(C^\top B)$. Here the letters and indices are swapped so that row $i$ is the output pixel;
it is the same matrix. As in the official code, $B$ and $C$ have $C/8$ channels (the paper keeps $C$).""")
selection, analysis = appstate.page_analysis(prefixes=("danet",), what="position attention module")
module_name, record = analysis.position
image = selection.image
height, width = image.shape[:2]
feature_hw = (record.height, record.width)

MODES = {"row": "where it attends (row i of S)", "column": "who attends to it (column i of S)"}
appstate.apply_link("mode", "pam_mode", MODES.values(), convert=MODES.__getitem__, what="use row or column")
mode = st.radio("Show", list(MODES.values()), horizontal=True, key="pam_mode")
opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="pam_opacity")

x, y, chosen = appstate.chosen_pixel("pam_click", (height, width))
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
    part = "row" if is_row else "column"
    stem = f"{selection.model_name}-{part}{index}-of-S"
    buttons = st.columns(2)
    appstate.download(buttons[0], "Overlay (PNG)", png_bytes(overlay), f"{stem}.png", key="pam_png")
    appstate.download(buttons[1], f"{part.capitalize()} {index} of S (CSV)", grid_csv(values, f"S_{part}_{index}"),
                      f"{stem}.csv", key="pam_csv")
with right:
    st.markdown(f"**Chosen pixel{'' if chosen else ' (the centre until you click)'}:** x = {x:.0f}, y = {y:.0f} in the photo → feature pixel row {row}, column {col} "
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
            far = far_key_own_class_ratio(values[None], label, [index], [cls])[0]
            st.markdown(f"The chosen pixel is **{CLASS_NAMES[cls]}**. **{share:.1%}** of its attention falls on "
                        f"{CLASS_NAMES[cls]} pixels, which cover {chance:.1%} of the labelled photo "
                        f"(**{share / chance if chance else float('nan'):.1f}x chance**); over far keys only "
                        f"(its nearest 10% of cells dropped) **{far:.1f}x chance**. A high first figure with a far "
                        "figure near 1 means the pixel looks at its neighbourhood, not at its class.")
    entry = model_results(appstate.results(), selection.model_name)
    model_figure, far_figure = pam_ratio_text(entry), far_key_text(entry)
    if model_figure:
        st.markdown(f"**This model over the whole test split:** {model_figure}"
                    + (f"; {far_figure}" if far_figure else "") + ".")
    if selection.label is not None and is_row and cls != IGNORE_INDEX:
        figure = class_figure(entry, CLASS_NAMES[cls])
        if figure and as_number(figure.get("far_key_ratio")) is not None:
            caution = (" Few test queries of this class: a rough figure." if figure["queries"] < 50 else "")
            st.markdown(f"**{CLASS_NAMES[cls]} queries of the test split** ({figure['queries']:,}): own-class "
                        f"{figure['own_class_ratio']:.2f}x, far-key {figure['far_key_ratio']:.2f}x chance on "
                        f"average.{caution}")
    models = appstate.catalogue()
    info = models.get(selection.model_name)
    if info is not None and info.pam_affinity > 0:
        st.info(f"**PAM supervised with class affinity** (weight {info.pam_affinity:g}): in training, an extra loss "
                "pulled each row of S towards the pixels of the query's own class (the affinity-loss idea of "
                "Context Prior, Yu et al., CVPR 2020). Its attention groups classes because it was taught to.")
    else:
        st.caption("Plain DANet: S was learned only through the segmentation loss. Trained on 367 photos, it is "
                   "weakly tied to the classes; a model trained with `--pam-affinity` is taught to group them.")
        supervised = [n for n, i in models.items() if i.pam_affinity > 0]
        if supervised:
            appstate.switch_button(st, supervised[0], f"Compare: the same pixel with {supervised[0]}")
# the formula with this photo's numbers, for the largest value shown
j = top[0]
query_index, key_index = (index, j) if is_row else (j, index)
energy, log_z, entry = record.entry(query_index, key_index)
st.latex(rf"S_{{{query_index},{key_index}}} = \frac{{\exp(B_{{{query_index}}}^\top C_{{{key_index}}})}}"
         rf"{{\sum_m \exp(B_{{{query_index}}}^\top C_m)}} = \exp({energy:.3f} - {log_z:.3f}) = {entry:.4f}")
appstate.chart(st, attention_map_figure(values, f"{'Row' if is_row else 'Column'} {index} of S at feature resolution "
                                     f"({module_name})", marker=(row, col),
                                     top=[divmod(t, record.width) for t in top]), key="pam_map", theme=None)
st.caption(f"S is never built: the app keeps B and C of this photo and computes one row or column per click "
           f"(O(N·C/8)); the full S would be {record.num_pixels}² = {record.num_pixels ** 2:,} numbers.")
appstate.write_link(x=x, y=y, mode="row" if is_row else "column")
