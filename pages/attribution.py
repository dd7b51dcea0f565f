"""Attention vs attribution: for the chosen pixel, where DANet's PAM looks beside what drives its prediction."""
from functools import partial

import streamlit as st
import torch
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.app import keys
from attnviz.analysis.forward import feature_centre, feature_index
from attnviz.analysis.attribution import cell_mass, input_magnitude, pixel_target, rank_correlation, top_overlap
from attnviz.data.camvid import CLASS_NAMES
from attnviz.viz.exports import grid_csv
from attnviz.text import markdown_literal
from attnviz.viz.figures import class_name as camvid_class_name
from attnviz.viz.overlays import blend_heatmap, draw_markers

TOP_K = 20
t = app.t

st.title(t("attribution.title"))
st.markdown(t("attribution.intuition"))
st.markdown(t("attribution.notice"))
selection, analysis = app.page_analysis(
    prefixes=("fcn", "danet"), what=t("attribution.what"),
    needs=lambda a: a.prediction is not None and bool(a.spatial_attention))
image = selection.image
height, width = image.shape[:2]
x, y, chosen = app.chosen_pixel(keys.ATTR_CLICK, (height, width), selection.image_key)
target = pixel_target(analysis.prediction, x, y)  # (class, y, x): the chosen integer pixel
class_id = target[0]
class_names = analysis.class_names or (CLASS_NAMES if selection.source == "camvid" else None)
if not class_names:
    class_name = t("attribution.class_fallback", id=class_id)
elif selection.source == "camvid" and tuple(class_names) == CLASS_NAMES:
    class_name = camvid_class_name(class_id, app.language())
else:
    class_name = markdown_literal(class_names[class_id])
directory = str(app.checkpoint_dir())
if selection.source == "user":  # Grad-CAM at the input of the attention module chosen on the Position page
    modules = analysis.spatial_attention
    chosen_module = st.session_state.get(keys.PAM_MODULE)
    position = (chosen_module, modules[chosen_module]) if chosen_module in modules else next(iter(modules.items()))
    layer_name = position[0]
    layer_title = t("attribution.layer_input", module=markdown_literal(position[0]))
    layer_words = t("attribution.researchers.layer_user", module=position[0].replace("`", ""))
else:
    position, layer_name, layer_title = analysis.position, "", markdown_literal("backbone.layer4")
    layer_words = t("attribution.researchers.layer_backbone")
try:  # through the server's shared pool, like every forward pass (attnviz.app.queueing)
    cam_grid, cam_full = app.pooled(
        ("grad-cam", selection.source, selection.model_name, selection.device, selection.image_key, target, layer_name),
        lambda: app.pixel_grad_cam(selection.source, selection.model_name, selection.device, directory,
                                   selection.image_key, image, target, layer_name), t("attribution.cam_spinner"))
except Exception as error:  # noqa: BLE001 - a user's model may fail under captum's hooks in its own ways
    if selection.source != "user":
        raise
    st.error(t("attribution.cam_failed", error=markdown_literal(f"{type(error).__name__}: {error}", 400)))
    app.stop_page()
grid = (position[1].height, position[1].width) if position else cam_grid.shape
cam_cells = cell_mass(torch.from_numpy(cam_grid), grid).numpy()

opacity = st.slider(t("attribution.opacity"), 0.0, 1.0, 0.6, 0.05, key=keys.ATTR_OPACITY)
marker = [(x, y)]
left, right = st.columns([3, 2])
with left:
    clickable = draw_markers(blend_heatmap(image, cam_full, opacity), marker, colour=(0, 255, 0), cross=True)
    streamlit_image_coordinates(clickable, key=keys.ATTR_CLICK, use_column_width="always", cursor="crosshair",
                                image_format="JPEG", jpeg_quality=90)
    st.caption(t("attribution.photo_caption"))
with right:
    st.markdown(t("attribution.chosen", centre="" if chosen else t("attribution.centre"), x=x, y=y, name=class_name,
                  id=class_id))

columns = st.columns(3)
with columns[0]:
    st.markdown(t("attribution.attention_head"))
    if position is None:
        st.info(t("attribution.no_attention", model=selection.model_name))
        attention_row = None
    else:
        module_name, record = position
        index = feature_index(x, y, (height, width), grid)
        attention_row = record.row(index).numpy()
        centre = feature_centre(index, (height, width), grid)
        st.image(draw_markers(blend_heatmap(image, attention_row, opacity), [centre], colour=(0, 255, 0), cross=True),
                 caption=t("attribution.attention_caption", index=index, module=markdown_literal(module_name)))
with columns[1]:
    st.markdown(t("attribution.cam_head", layer=layer_title))
    st.image(draw_markers(blend_heatmap(image, cam_grid, opacity), marker, colour=(0, 255, 0), cross=True),
             caption=t("attribution.cam_caption", rows=cam_grid.shape[0], cols=cam_grid.shape[1]))
    app.download(st, t("attribution.cam_csv"), partial(grid_csv, cam_grid, "grad_cam"),
                 f"{selection.model_name}-gradcam-x{x}-y{y}.csv", key=keys.ATTR_CAM_CSV)
with columns[2]:
    st.markdown(t("attribution.ig_head"))
    steps = st.select_slider(t("attribution.steps"), [8, 16, 32, 64], value=32, key=keys.ATTR_IG_STEPS,
                             help=t("attribution.steps_help"))
    request = (selection.model_name, selection.image_key, target, steps)
    asked = st.session_state.setdefault(keys.ATTR_IG_REQUESTS, set())
    # asked before this run draws the button (on_click), so that it is greyed out while IG runs
    st.button(t("attribution.ig_button"), key=keys.ATTR_IG_RUN, disabled=request in asked, on_click=asked.add,
              args=(request,))
    ig_cells = None
    if request in asked:
        try:   # a progress bar over its steps and a Cancel button, which stops it within one internal batch
            ig = app.pooled(
                ("integrated-gradients", selection.source, selection.model_name, selection.device, selection.image_key,
                 target, steps),
                lambda control: app.pixel_integrated_gradients(selection.source, selection.model_name,
                                                               selection.device, directory, selection.image_key,
                                                               image, target, steps, _control=control),
                t("attribution.ig_spinner", steps=steps), stoppable=True,
                cancel=(t("attribution.ig_cancel"), keys.ATTR_IG_CANCEL, partial(asked.discard, request)))
        except Exception as error:  # noqa: BLE001 - as for Grad-CAM
            if selection.source != "user":
                raise
            st.error(t("attribution.ig_failed", error=markdown_literal(f"{type(error).__name__}: {error}", 400)))
            app.stop_page()
        magnitude, clip = input_magnitude(ig)
        ig_cells = cell_mass(torch.from_numpy(ig), grid).numpy()
        st.image(draw_markers(blend_heatmap(image, magnitude, opacity, vmin=0, vmax=clip),
                              marker, colour=(0, 255, 0), cross=True),
                 caption=t("attribution.ig_caption"))
    else:
        st.caption(t("attribution.ig_waiting"))

st.subheader(t("attribution.agree_title"))
if attention_row is None:
    st.caption(t("attribution.agree_needs_row"))
elif attention_row.shape != tuple(grid):
    st.caption(t("attribution.agree_key_grid", key_rows=attention_row.shape[0], key_cols=attention_row.shape[1],
                 rows=grid[0], cols=grid[1]))
else:
    rows = [("cam", cam_cells)] + ([("ig", ig_cells)] if ig_cells is not None else [])
    for name, cells in rows:
        st.markdown(t("attribution.agree", title=t(f"attribution.{name}_name"), rows=grid[0], cols=grid[1],
                      rho=rank_correlation(attention_row, cells), k=TOP_K,
                      overlap=top_overlap(attention_row, cells, TOP_K)))
    st.caption(t("attribution.agree_caption", k=TOP_K))
st.markdown(t("attribution.why"))
cells = int(grid[0] * grid[1])
with st.expander(t("common.for_researchers")):
    st.markdown("\n\n".join([
        t("attribution.researchers.methods"),
        t("attribution.researchers.grad_cam", layer=layer_words,
          formula=r"$\mathrm{ReLU}\big(\sum_k \alpha_k A_k\big)$") + "\n" +
        t("attribution.researchers.ig", steps=steps,
          formula=r"$(x - x')\int_0^1 \partial f(x' + t(x - x'))/\partial x\,dt$"),
        t("attribution.researchers.statistics", rows=grid[0], cols=grid[1], k=TOP_K, chance=min(TOP_K, cells) / cells,
          cells=cells),
        t("attribution.researchers.literature")]))
app.link_params(x=x, y=y)
