"""Attention vs attribution: for the chosen pixel, where DANet's PAM looks beside what drives its prediction."""
from functools import partial

import streamlit as st
import torch
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.app import keys
from attnviz.analysis import feature_centre, feature_index
from attnviz.attribution import cell_mass, input_magnitude, pixel_target, rank_correlation, top_overlap
from attnviz.data.camvid import CLASS_NAMES
from attnviz.exports import grid_csv
from attnviz.text import markdown_literal
from attnviz.viz.overlays import blend_heatmap, draw_markers

TOP_K = 20

st.title("Attention vs attribution: is attention an explanation?")
st.markdown(
    r"""A row of DANet's position map $S$ says **where the chosen pixel's features are gathered from**. It does not
say **what changes that pixel's prediction**: that is the question attribution methods answer. For the logit of
the predicted class $c$ at the chosen pixel $(y, x)$, this page computes with
[captum](https://captum.ai):

* **Grad-CAM** (Selvaraju et al., ICCV 2017) at the backbone's last stage, the layer that feeds the attention
  head: $\mathrm{ReLU}\big(\sum_k \alpha_k A_k\big)$ with $\alpha_k$ the mean gradient of the logit over
  channel $k$ of that layer. One backward pass, on every click.
* **Integrated Gradients** (Sundararajan et al., ICML 2017) on the photo itself, against a black photo:
  $(x - x')\int_0^1 \partial f(x' + t(x - x'))/\partial x\,dt$, with as many steps as you choose, when you ask.

Pick the pixel by clicking the photo (the same pixel as on the Position page).""")
selection, analysis = app.page_analysis(
    prefixes=("fcn", "danet"), what="per-pixel output and spatial attention module to attribute at",
    needs=lambda a: a.prediction is not None and bool(a.spatial_attention))
image = selection.image
height, width = image.shape[:2]
x, y, chosen = app.chosen_pixel(keys.ATTR_CLICK, (height, width), selection.image_key)
target = pixel_target(analysis.prediction, x, y)  # (class, y, x): the chosen integer pixel
class_id = target[0]
class_names = analysis.class_names or (CLASS_NAMES if selection.source == "camvid" else None)
class_name = class_names[class_id] if class_names else f"class {class_id}"
directory = str(app.checkpoint_dir())
if selection.source == "user":  # Grad-CAM at the input of the attention module chosen on the Position page
    modules = analysis.spatial_attention
    chosen_module = st.session_state.get(keys.PAM_MODULE)
    position = (chosen_module, modules[chosen_module]) if chosen_module in modules else next(iter(modules.items()))
    layer_name, layer_title = position[0], f"input of {position[0]}"
else:
    position, layer_name, layer_title = analysis.position, "", "backbone.layer4"
layer_title = markdown_literal(layer_title)
with st.spinner("Grad-CAM for this pixel…"):
    try:
        cam_grid, cam_full = app.pixel_grad_cam(selection.source, selection.model_name, selection.device, directory,
                                                selection.image_key, image, target, layer_name)
    except Exception as error:  # noqa: BLE001 - a user's model may fail under captum's hooks in its own ways
        if selection.source != "user":
            raise
        st.error(f"Grad-CAM failed on your model: {markdown_literal(f'{type(error).__name__}: {error}', 400)}")
        app.stop_page()
grid = (position[1].height, position[1].width) if position else cam_grid.shape
cam_cells = cell_mass(torch.from_numpy(cam_grid), grid).numpy()

opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key=keys.ATTR_OPACITY)
marker = [(x, y)]
left, right = st.columns([3, 2])
with left:
    clickable = draw_markers(blend_heatmap(image, cam_full, opacity), marker, colour=(0, 255, 0), cross=True)
    streamlit_image_coordinates(clickable, key=keys.ATTR_CLICK, use_column_width="always", cursor="crosshair",
                                image_format="JPEG", jpeg_quality=90)
    st.caption("Grad-CAM of the chosen pixel's predicted class over the photo. Click to choose another pixel "
               "(green cross).")
with right:
    st.markdown(f"**Chosen pixel{'' if chosen else ' (the centre until you click)'}:** x = {x:.0f}, y = {y:.0f}; "
                f"predicted **{markdown_literal(class_name)}** (class {class_id}). Attributions explain the logit of "
                "that class at that pixel.")

columns = st.columns(3)
with columns[0]:
    st.markdown("**Attention: row i of S**")
    if position is None:
        st.info(f"{selection.model_name} has no position attention (an FCN head): there is no attention row to "
                "compare. Pick a DANet model to see both.")
        attention_row = None
    else:
        module_name, record = position
        index = feature_index(x, y, (height, width), grid)
        attention_row = record.row(index).numpy()
        centre = feature_centre(index, (height, width), grid)
        st.image(draw_markers(blend_heatmap(image, attention_row, opacity), [centre], colour=(0, 255, 0), cross=True),
                 caption=f"where feature pixel {index} attends ({markdown_literal(module_name)})")
with columns[1]:
    st.markdown(f"**Grad-CAM** ({layer_title})")
    st.image(draw_markers(blend_heatmap(image, cam_grid, opacity), marker, colour=(0, 255, 0), cross=True),
             caption=f"{cam_grid.shape[0]}x{cam_grid.shape[1]} grid, ReLU applied")
    app.download(st, "Grad-CAM grid (CSV)", partial(grid_csv, cam_grid, "grad_cam"),
                 f"{selection.model_name}-gradcam-x{x}-y{y}.csv", key=keys.ATTR_CAM_CSV)
with columns[2]:
    st.markdown("**Integrated Gradients** (input)")
    steps = st.select_slider("Steps", [8, 16, 32, 64], value=32, key=keys.ATTR_IG_STEPS,
                             help="More steps: a closer approximation of the integral, and a longer wait "
                                  "(each step is a forward and a backward pass).")
    request = (selection.model_name, selection.image_key, target, steps)
    asked = st.session_state.setdefault(keys.ATTR_IG_REQUESTS, set())
    if st.button("Compute Integrated Gradients", key=keys.ATTR_IG_RUN, disabled=request in asked):
        asked.add(request)
    ig_cells = None
    if request in asked:
        with st.spinner(f"Integrated Gradients, {steps} steps…"):
            try:
                ig = app.pixel_integrated_gradients(selection.source, selection.model_name, selection.device,
                                                    directory, selection.image_key, image, target, steps)
            except Exception as error:  # noqa: BLE001 - as for Grad-CAM
                if selection.source != "user":
                    raise
                st.error(f"Integrated Gradients failed on your model: "
                         f"{markdown_literal(f'{type(error).__name__}: {error}', 400)}")
                app.stop_page()
        magnitude, clip = input_magnitude(ig)
        ig_cells = cell_mass(torch.from_numpy(ig), grid).numpy()
        st.image(draw_markers(blend_heatmap(image, magnitude, opacity, vmin=0, vmax=clip),
                              marker, colour=(0, 255, 0), cross=True),
                 caption="|attribution| summed over RGB (colour scale clipped at the 99.5th percentile)")
    else:
        st.caption("Not computed yet for this pixel: press the button.")

st.subheader("Do they agree?")
if attention_row is None:
    st.caption("Agreement needs an attention row: pick a DANet model.")
elif attention_row.shape != tuple(grid):
    st.caption(f"The attention row lies on the module's {attention_row.shape[0]}x{attention_row.shape[1]} key grid "
               f"(sub-sampled keys), the attributions on the {grid[0]}x{grid[1]} query grid: no cell-by-cell "
               "comparison.")
else:
    rows = [("Grad-CAM", cam_cells)] + ([("Integrated Gradients", ig_cells)] if ig_cells is not None else [])
    for title, cells in rows:
        st.markdown(f"Attention row vs **{title}** over the {grid[0]}x{grid[1]} feature grid: rank correlation "
                    f"(Spearman) **{rank_correlation(attention_row, cells):+.2f}**, top-{TOP_K} cells shared "
                    f"**{top_overlap(attention_row, cells, TOP_K):.0%}**.")
    st.caption("Rank correlation +1: both order the cells the same way; 0: unrelated; −1: opposite. The top-20 "
               "overlap counts how many of the 20 cells the attention row weights most are also among the 20 "
               "cells with the most attribution (by chance: about 20/N).")
st.markdown(
    """**Why they can disagree.** Attention weights are one intermediate step: S mixes the *value* features of
the pixels it attends to, the result is scaled by α and added to the input, and later layers can amplify or
ignore it, so a large weight on a pixel whose features barely move the logit contributes little. Many different
attention maps can also give the same prediction. Jain and Wallace ("Attention is not Explanation", NAACL 2019)
found attention often uncorrelated with gradient-based importance; Wiegreffe and Pinter ("Attention is not not
Explanation", EMNLP 2019) showed that whether attention explains depends on the model and the test. Attribution
methods answer a different question, each with its own assumptions: Grad-CAM is coarse and class-specific,
Integrated Gradients depends on its baseline (here a black photo).""")
app.link_params(x=x, y=y)
