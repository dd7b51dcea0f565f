"""Attention vs attribution: for the chosen pixel, where DANet's PAM looks beside what drives its prediction.

The page reads as its contents, called in order at the bottom: the introduction, the chosen pixel on the
photo, the attention row, Grad-CAM and Integrated Gradients side by side, how far they agree, and the second
layer for researchers. attnviz.analysis.attribution computes the maps, attnviz.analysis.views the numbers."""

from functools import partial
from typing import NamedTuple

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.analysis.attribution import input_magnitude, pixel_target
from attnviz.analysis.views import agreement, attribution_cells, position_view, top_overlap_chance
from attnviz.app import keys
from attnviz.data.camvid import CLASS_NAMES
from attnviz.text import markdown_literal
from attnviz.viz.exports import grid_csv
from attnviz.viz.figures import class_name as camvid_class_name
from attnviz.viz.overlays import blend_heatmap, draw_markers

TOP_K = 20
STEPS = [8, 16, 32, 64]  # Integrated Gradients' steps on offer
t = app.t


class Layer(NamedTuple):
    """Where Grad-CAM attributes: the layer's name for captum ("": the backbone's last stage), as titled on
    the page and as named for researchers."""

    name: str
    title: str
    words: str


def introduction() -> None:
    st.title(t("attribution.title"))
    st.markdown(t("attribution.intuition"))
    st.markdown(t("attribution.notice"))


def predicted_class(selection, analysis, class_id: int) -> str:
    """The predicted class's name in the page's language (a user's model: its own name, shown literally)."""
    class_names = analysis.class_names or (CLASS_NAMES if selection.source == "camvid" else None)
    if not class_names:
        return t("attribution.class_fallback", id=class_id)
    if selection.source == "camvid" and tuple(class_names) == CLASS_NAMES:
        return camvid_class_name(class_id, app.language())
    return markdown_literal(class_names[class_id])


def attention_and_layer(selection, analysis) -> tuple[tuple[str, object] | None, Layer]:
    """((module name, record) of the attention shown, or None) and the layer Grad-CAM attributes at: a user's
    model at the input of the attention module chosen on the Position page, a shipped one at its backbone."""
    if selection.source != "user":
        return analysis.position, Layer(
            "", markdown_literal("backbone.layer4"), t("attribution.researchers.layer_backbone")
        )
    modules = analysis.spatial_attention
    chosen_module = st.session_state.get(keys.PAM_MODULE)
    position = (chosen_module, modules[chosen_module]) if chosen_module in modules else next(iter(modules.items()))
    return position, Layer(
        position[0],
        t("attribution.layer_input", module=markdown_literal(position[0])),
        t("attribution.researchers.layer_user", module=position[0].replace("`", "")),
    )


def failed(selection, key: str, error: Exception) -> None:
    """A user's model that fails under captum's hooks: say so and stop; anything else is a bug: raise."""
    if selection.source != "user":
        raise error
    st.error(t(key, error=markdown_literal(f"{type(error).__name__}: {error}", 400)))
    app.stop_page()


def grad_cam(selection, target, layer: Layer):
    """(Grad-CAM at the layer's grid, upsampled to the photo), through the server's shared pool, like every
    forward pass (attnviz.app.queueing)."""
    directory = str(app.checkpoint_dir())
    try:
        return app.pooled(
            (
                "grad-cam",
                selection.source,
                selection.model_name,
                selection.device,
                selection.image_key,
                target,
                layer.name,
            ),
            lambda: app.pixel_grad_cam(
                selection.source,
                selection.model_name,
                selection.device,
                directory,
                selection.image_key,
                selection.image,
                target,
                layer.name,
            ),
            t("attribution.cam_spinner"),
        )
    except Exception as error:  # noqa: BLE001 - a user's model may fail under captum's hooks in its own ways
        failed(selection, "attribution.cam_failed", error)


def marked(image, heatmap, opacity: float, points, **scale):
    """The photo under a heatmap, the points marked with green crosses."""
    return draw_markers(blend_heatmap(image, heatmap, opacity, **scale), points, colour=(0, 255, 0), cross=True)


def chosen_pixel(selection, cam_full, pixel, chosen: bool, name: str, class_id: int, opacity: float) -> None:
    """The photo to click under its Grad-CAM, and what the model predicts at the chosen pixel."""
    left, right = st.columns([3, 2])
    with left:
        streamlit_image_coordinates(
            marked(selection.image, cam_full, opacity, [pixel]),
            key=keys.ATTR_CLICK,
            use_column_width="always",
            cursor="crosshair",
            image_format="JPEG",
            jpeg_quality=90,
        )
        st.caption(t("attribution.photo_caption"))
    with right:
        st.markdown(
            t(
                "attribution.chosen",
                centre="" if chosen else t("attribution.centre"),
                x=pixel[0],
                y=pixel[1],
                name=name,
                id=class_id,
            )
        )


def attention_map(selection, position, pixel, opacity: float):
    """The chosen pixel's row of S over the photo; returns the row (None: the model has no attention)."""
    st.markdown(t("attribution.attention_head"))
    if position is None:
        st.info(t("attribution.no_attention", model=selection.model_name))
        return None
    module_name, record = position
    view = position_view(record, pixel, selection.image.shape[:2], "row")
    st.image(
        marked(selection.image, view.values, opacity, [view.pixel_centre]),
        caption=t("attribution.attention_caption", index=view.index, module=markdown_literal(module_name)),
    )
    return view.values


def grad_cam_map(selection, layer: Layer, cam_grid, pixel, opacity: float) -> None:
    st.markdown(t("attribution.cam_head", layer=layer.title))
    st.image(
        marked(selection.image, cam_grid, opacity, [pixel]),
        caption=t("attribution.cam_caption", rows=cam_grid.shape[0], cols=cam_grid.shape[1]),
    )
    app.download(
        st,
        t("attribution.cam_csv"),
        partial(grid_csv, cam_grid, "grad_cam"),
        f"{selection.model_name}-gradcam-x{pixel[0]}-y{pixel[1]}.csv",
        key=keys.ATTR_CAM_CSV,
    )


def integrated_gradients_map(selection, target, pixel, opacity: float):
    """Integrated Gradients once its button asks for them; returns (the steps chosen, the attribution or
    None while not asked)."""
    st.markdown(t("attribution.ig_head"))
    steps = st.select_slider(
        t("attribution.steps"), STEPS, value=32, key=keys.ATTR_IG_STEPS, help=t("attribution.steps_help")
    )
    request = (selection.model_name, selection.image_key, target, steps)
    asked = st.session_state.setdefault(keys.ATTR_IG_REQUESTS, set())
    # asked before this run draws the button (on_click), so that it is greyed out while IG runs
    st.button(
        t("attribution.ig_button"), key=keys.ATTR_IG_RUN, disabled=request in asked, on_click=asked.add, args=(request,)
    )
    if request not in asked:
        st.caption(t("attribution.ig_waiting"))
        return steps, None
    directory = str(app.checkpoint_dir())
    try:  # a progress bar over its steps and a Cancel button, which stops it within one internal batch
        ig = app.pooled(
            (
                "integrated-gradients",
                selection.source,
                selection.model_name,
                selection.device,
                selection.image_key,
                target,
                steps,
            ),
            lambda control: app.pixel_integrated_gradients(
                selection.source,
                selection.model_name,
                selection.device,
                directory,
                selection.image_key,
                selection.image,
                target,
                steps,
                _control=control,
            ),
            t("attribution.ig_spinner", steps=steps),
            stoppable=True,
            cancel=(t("attribution.ig_cancel"), keys.ATTR_IG_CANCEL, partial(asked.discard, request)),
        )
    except Exception as error:  # noqa: BLE001 - as for Grad-CAM
        failed(selection, "attribution.ig_failed", error)
    magnitude, clip = input_magnitude(ig)
    st.image(
        marked(selection.image, magnitude, opacity, [pixel], vmin=0, vmax=clip), caption=t("attribution.ig_caption")
    )
    return steps, ig


def how_far_they_agree(attention_row, grid, attributions: dict) -> None:
    """Each attribution map against the attention row, cell by cell on the attention's grid."""
    st.subheader(t("attribution.agree_title"))
    if attention_row is None:
        st.caption(t("attribution.agree_needs_row"))
        return
    if attention_row.shape != tuple(grid):
        st.caption(
            t(
                "attribution.agree_key_grid",
                key_rows=attention_row.shape[0],
                key_cols=attention_row.shape[1],
                rows=grid[0],
                cols=grid[1],
            )
        )
        return
    for name, attribution in attributions.items():
        found = agreement(attention_row, attribution_cells(attribution, grid), TOP_K)
        st.markdown(
            t(
                "attribution.agree",
                title=t(f"attribution.{name}_name"),
                rows=grid[0],
                cols=grid[1],
                rho=found.rho,
                k=TOP_K,
                overlap=found.overlap,
            )
        )
    st.caption(t("attribution.agree_caption", k=TOP_K))


def for_researchers(layer: Layer, steps: int, grid) -> None:
    with st.expander(t("common.for_researchers")):
        st.markdown(
            "\n\n".join(
                [
                    t("attribution.researchers.methods"),
                    t(
                        "attribution.researchers.grad_cam",
                        layer=layer.words,
                        formula=r"$\mathrm{ReLU}\big(\sum_k \alpha_k A_k\big)$",
                    )
                    + "\n"
                    + t(
                        "attribution.researchers.ig",
                        steps=steps,
                        formula=r"$(x - x')\int_0^1 \partial f(x' + t(x - x'))/\partial x\,dt$",
                    ),
                    t(
                        "attribution.researchers.statistics",
                        rows=grid[0],
                        cols=grid[1],
                        k=TOP_K,
                        chance=top_overlap_chance(grid, TOP_K),
                        cells=grid[0] * grid[1],
                    ),
                    t("attribution.researchers.literature"),
                ]
            )
        )


introduction()
selection, analysis = app.page_analysis(
    prefixes=("fcn", "danet"),
    what=t("attribution.what"),
    needs=lambda a: a.prediction is not None and bool(a.spatial_attention),
)
x, y, chosen = app.chosen_pixel(keys.ATTR_CLICK, selection.image.shape[:2], selection.image_key)
target = pixel_target(analysis.prediction, x, y)  # (class, y, x): the chosen integer pixel
position, layer = attention_and_layer(selection, analysis)
cam_grid, cam_full = grad_cam(selection, target, layer)
grid = (position[1].height, position[1].width) if position else cam_grid.shape  # the grid maps are compared on
opacity = st.slider(t("attribution.opacity"), 0.0, 1.0, 0.6, 0.05, key=keys.ATTR_OPACITY)
chosen_pixel(selection, cam_full, (x, y), chosen, predicted_class(selection, analysis, target[0]), target[0], opacity)
columns = st.columns(3)
with columns[0]:
    attention_row = attention_map(selection, position, (x, y), opacity)
with columns[1]:
    grad_cam_map(selection, layer, cam_grid, (x, y), opacity)
with columns[2]:
    steps, ig = integrated_gradients_map(selection, target, (x, y), opacity)
how_far_they_agree(attention_row, grid, {"cam": cam_grid} | ({"ig": ig} if ig is not None else {}))
st.markdown(t("attribution.why"))
for_researchers(layer, steps, grid)
app.link_params(x=x, y=y)
