"""Position attention: click a pixel, see where it attends and who attends to it (DANet, and the spatial
self-attention found in a user's model)."""
import math
from functools import partial

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.app import keys
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX
from attnviz.capture.records import CrissCrossAttentionRecord
from attnviz.viz.exports import grid_csv, overlay_png
from attnviz.results import as_number, class_figure, model_results
from attnviz.app.links import MAX_PINS
from attnviz.analysis.geometry import same_place
from attnviz.analysis.views import position_view
from attnviz.viz.overlays import position_overlay
from attnviz.viz.figures import attention_map_figure, class_name

t = app.t


def interval_text(block: dict) -> str:
    """The bootstrap interval of a results.json figure in words, or "" when it has none."""
    bounds = block.get("interval")
    if isinstance(bounds, list) and len(bounds) == 2 and all(as_number(b) is not None for b in bounds):
        return t("position.researchers.interval", low=bounds[0], high=bounds[1])
    return ""


def split_figures_text(entry: dict) -> str | None:
    """The model's own-class figure over the test split, and its far-key figure, in words (None: no figure)."""
    own = entry.get("pam_own_class_ratio")
    if not isinstance(own, dict) or as_number(own.get("mean")) is None:
        return None
    queries = own.get("queries")
    figure = t("position.researchers.own_figure", mean=own["mean"], interval=interval_text(own),
               median=as_number(own.get("median")) or float("nan"),
               queries=f"{queries:,}" if as_number(queries) is not None else "?",
               per_photo=own.get("per_photo", "?"), purity=as_number(own.get("purity")) or 0.8)
    quality = entry.get("pam_quality")
    far = quality.get("far_key_ratio") if isinstance(quality, dict) else None
    if isinstance(far, dict) and as_number(far.get("mean")) is not None:
        above = as_number(far.get("above_chance"))
        figure += t("position.researchers.far_figure", mean=far["mean"], interval=interval_text(far),
                    median=as_number(far.get("median")) or float("nan"))
        if above is not None:
            figure += t("position.researchers.far_above", above=above)
    return t("position.researchers.model_figure", figure=figure)


# the radios' option values (links and tests set them), shown in the page's language by format_func
MODE_TEXTS = {"row": "where it attends (row i of S)", "column": "who attends to it (column i of S)"}
SCALE_TEXTS = {"own": "each map its own", "shared": "one for all maps shown"}
MODES, SCALES = ({text: name for name, text in texts.items()} for texts in (MODE_TEXTS, SCALE_TEXTS))
NOTHING = "(nothing)"  # the side-by-side box's first option

st.title(t("position.title"))
st.markdown(t("position.intuition"))
st.markdown(t("position.how", pins=MAX_PINS))
st.markdown(t("position.notice"))
selection, analysis = app.page_analysis(prefixes=("danet",), what=t("position.what"),
                                        needs=lambda a: bool(a.spatial_attention))
modules = analysis.spatial_attention
module_name = app.spatial_module_picker(st, modules)
record = modules[module_name]
image = selection.image
image_hw = image.shape[:2]
if record.shared_by_all_queries:
    st.info(t("position.gcnet"))
elif isinstance(record, CrissCrossAttentionRecord):
    st.info(t("position.criss_cross"))
elif record.normalisation == "dot":
    st.info(t("position.dot"))
if record.family:
    st.caption(t("position.found", family=record.family, error=record.max_error))

controls = st.columns([3, 3, 2, 2])
app.apply_link("mode", keys.PAM_MODE, MODE_TEXTS.values(), convert=MODE_TEXTS.__getitem__,
               what=t("position.link_mode"))
mode = MODES[controls[0].radio(t("position.mode_label"), list(MODE_TEXTS.values()), key=keys.PAM_MODE,
                               format_func=lambda text, tr=app.bound_t(): tr(f"position.mode_{MODES[text]}"))]
others = app.companion_panels(selection, analysis, module_name)
app.apply_link("beside", keys.PAM_COMPARE, list(others), what=t("position.link_beside"))
beside = controls[1].selectbox(
    t("position.beside_label"), [NOTHING, *others], key=keys.PAM_COMPARE, help=t("position.beside_help"),
    format_func=lambda option, tr=app.bound_t(): tr("position.beside_nothing") if option == NOTHING
    else app.companion_label(option, tr))
scale = SCALES[controls[2].radio(t("position.scale_label"), list(SCALE_TEXTS.values()), key=keys.PAM_SCALE,
                                 format_func=lambda text, tr=app.bound_t(): tr(f"position.scale_{SCALES[text]}"))]
opacity = controls[3].slider(t("position.opacity"), 0.0, 1.0, 0.75, 0.05, key=keys.PAM_OPACITY)

pins, (x, y), chosen = app.pinned_pixels(image_hw, selection.image_key, keys.PAM_CLICK)
panels = [app.main_panel(selection, module_name, record)]
if beside in others:
    panels.append(others[beside]())
payloads = [app.hover_data(selection.source, p.model_name, p.image_key, p.module, p.image.shape[:2], p.record)
            for p in panels]
live = all(p.data is not None for p in payloads)
if live:
    app.attention_canvas(
        image=image, photo_key=selection.image_key, mode=mode, opacity=opacity, scale=scale, pixel=(x, y),
        pins=pins, on_pin=app.take_pin, key=keys.PAM_CANVAS, language=app.language(),
        panels=[{**payload.data, "title": p.title if len(panels) > 1 else "", "image": p.image,
                 "image_key": p.image_key, "id": f"{selection.source}|{p.model_name}|{p.image_key}|{p.module}"}
                for payload, p in zip(payloads, panels)])
    st.caption(t("position.canvas_caption"))
else:
    too_big = next(p for p in payloads if p.data is None)
    st.info(t("position.too_big", reason=too_big.reason))
    streamlit_image_coordinates(position_overlay(image, position_view(record, (x, y), image_hw, mode), opacity), key=keys.PAM_CLICK, use_column_width="always", cursor="crosshair",
                                image_format="JPEG", jpeg_quality=90)

# ---- the server's numbers: every pin, then the chosen pixel in full
views = [[position_view(p.record, same_place(*pin, image_hw, p.image.shape[:2]), p.image.shape[:2], mode, p.label)
          for pin in pins] for p in panels]
if pins and (len(pins) > 1 or len(panels) > 1):  # one pin of one model: the chosen pixel's numbers below
    head = st.columns([6, 1])
    head[0].markdown(t("position.pins_head", count=len(pins), most=MAX_PINS))
    head[1].button(t("position.clear_pins"), key=keys.PAM_CLEAR_PINS, on_click=app.remove_pins)
    st.markdown("  \n".join(
        t(f"position.pin_{mode}", n=n, title=p.title if len(panels) > 1 else "", x=v.pixel[0], y=v.pixel[1],
          row=v.cell[0], col=v.cell[1], index=v.index, value=v.top_cells[0][2], top_row=v.top_cells[0][0],
          top_col=v.top_cells[0][1], total=v.total)
        for p, row in zip(panels, views) for n, v in enumerate(row, 1)))
    app.pins_slide(panels, views, mode, opacity)
view = views[0][-1] if pins and pins[-1] == (x, y) else position_view(record, (x, y), image_hw, mode, selection.label)
row, col = view.cell
index, values = view.index, view.values
cell_h, cell_w = image_hw[0] // view.feature_hw[0], image_hw[1] // view.feature_hw[1]

left, right = st.columns([1, 1])
with left:
    grid_name = "grid_key" if view.feature_hw != (record.height, record.width) else "grid_feature"
    st.markdown(t("position.chosen", centre="" if chosen else t("position.centre"), x=x, y=y, row=row, col=col,
                  index=index, n=view.num_pixels,
                  grid=t(f"position.{grid_name}", rows=view.feature_hw[0], cols=view.feature_hw[1])))
    alpha = record.alpha
    if alpha is not None and math.isfinite(alpha):
        st.markdown(t("position.alpha", alpha=alpha))
    if record.normalisation == "dot":
        st.markdown(t(f"position.dot_{mode}", total=view.total))
    elif mode == "row":
        keys_in_row = record.baseline
        st.markdown(t("position.row_sum", total=view.total, high=values.max(), ratio=values.max() * keys_in_row,
                      keys=keys_in_row))
    else:
        average = record.num_pixels / record.num_keys  # N / Nk: 1 unless sub-sampled
        st.markdown(t("position.column_sum", total=view.total, average=average, ratio=view.total / average))
    st.markdown(t("position.top_title") + "  \n" + "  \n".join(
        t("position.top_item", rank=rank, row=r, col=c, value=v) for rank, (r, c, v) in enumerate(view.top_cells, 1)))
    entry = model_results(app.results(), selection.model_name) if selection.source == "camvid" else {}
    shares = view.class_share
    researchers = []  # the second layer: figures over the test split, definitions, flags
    if shares is not None and shares.class_id == IGNORE_INDEX:
        st.markdown(t("position.unlabelled"))
    elif shares is not None:
        name = CLASS_NAMES[shares.class_id]
        shown = class_name(shares.class_id, app.language())
        st.markdown(t("position.class_share", name=shown, cell_h=cell_h, cell_w=cell_w, share=shares.share,
                      chance=shares.chance))
        researchers.append(t("position.researchers.class_chance", ratio=shares.ratio, name=shown))
        if math.isfinite(shares.far_key_ratio):
            researchers.append(t("position.researchers.far_key", ratio=shares.far_key_ratio))
        figure = class_figure(entry, name)
        if figure and as_number(figure.get("far_key_ratio")) is not None:
            caution = t("position.researchers.few_queries") if figure["queries"] < 50 else ""
            researchers.append(t("position.researchers.class_test", name=shown, queries=f"{figure['queries']:,}",
                                 own=figure["own_class_ratio"], far=figure["far_key_ratio"], caution=caution))
    model_figure = split_figures_text(entry)
    if model_figure and mode == "row":  # figures of rows of S: not shown beside a column
        researchers.append(model_figure)
    if selection.source == "camvid":
        models = app.catalogue()
        info = models.get(selection.model_name)
        if info is not None and info.pam_affinity > 0:
            st.info(t("position.affinity", weight=info.pam_affinity))
            researchers.append(t("position.researchers.affinity_source", weight=info.pam_affinity))
        else:
            st.caption(t("position.plain"))
            researchers.append(t("position.researchers.trained_with"))
            supervised = [n for n, i in models.items() if i.pam_affinity > 0]
            if supervised:
                app.switch_button(st, supervised[0], t("position.switch", model=supervised[0]))
    stem = f"{selection.model_name}-{mode}{index}-of-S"
    buttons = st.columns(2)
    app.download(buttons[0], t("position.overlay_png"), partial(overlay_png, image, view, opacity), f"{stem}.png",
                 key=keys.PAM_PNG)
    app.download(buttons[1], t(f"position.csv_{mode}", index=index), partial(grid_csv, values, f"S_{mode}_{index}"),
                 f"{stem}.csv", key=keys.PAM_CSV)
with right:
    grid = "key" if view.values_hw != view.feature_hw else "feature"
    zrange = ((min(0.0, *(float(v.values.min()) for r in views for v in r)),
               max(float(v.values.max()) for r in views for v in r)) if scale == "shared" and pins else None)  # as the pins
    app.chart(st, attention_map_figure(values, t(f"position.map_{mode}", index=index,
                                                 grid=t(f"position.resolution_{grid}")),
                                       marker=(row, col) if view.values_hw == view.feature_hw else None,
                                       top=[(r, c) for r, c, _ in view.top_cells], zrange=zrange,
                                       language=app.language()),
              key=keys.PAM_MAP, theme=None, width="content",
              caption=app.figure_caption(module_name, t("figures.caption_pixel", x=x, y=y)))

# ---- the formula, its terms named, with this photo's numbers for the largest value shown
if view.formula is not None and record.normalisation == "softmax":
    query_index, key_index, energy, log_z, s_entry = view.formula
    st.markdown(t("position.formula_title"))
    st.latex(r"\begin{aligned} S_{ij} &= \frac{\exp(B_i^\top C_j)}{Z_i} \\ Z_i &= \sum_m \exp(B_i^\top C_m) \\"
             r" E_i &= \alpha \sum_j S_{ij}\, D_j + A_i \end{aligned}")
    st.markdown(t("position.formula_names"))
    top_row, top_col = view.top_cells[0][:2]
    (i_row, i_col), (j_row, j_col) = ((row, col), (top_row, top_col)) if mode == "row" else ((top_row, top_col), (row, col))
    key_hw = view.values_hw if mode == "row" else view.feature_hw  # the grid j lies on (the key grid)
    st.markdown(t(f"position.formula_{mode}", i=query_index, j=key_index, i_row=i_row, i_col=i_col, j_row=j_row,
                  j_col=j_col))
    st.markdown(t("position.formula_cells", cell_h=image_hw[0] // key_hw[0], cell_w=image_hw[1] // key_hw[1],
                  j_row=j_row, j_col=j_col, width=key_hw[1], j=key_index))
    st.latex(rf"\begin{{aligned}} B_{{{query_index}}}^\top C_{{{key_index}}} &= {energy:.3f} \\"
             rf" \log Z_{{{query_index}}} &= {log_z:.3f} \end{{aligned}}")
    st.latex(rf"S_{{{query_index},{key_index}}} = e^{{{energy:.3f} - {log_z:.3f}}} = {s_entry:.4f}")
    keys_in_row = record.baseline
    st.markdown(t("position.formula_numbers", energy=energy, log_z=log_z, entry=s_entry, ratio=s_entry * keys_in_row,
                  keys=keys_in_row))
num_keys = record.num_keys
with st.expander(t("common.for_researchers")):
    st.markdown("\n\n".join([
        t("position.researchers.notation", s_formula=r"$S = \mathrm{softmax}(B^\top C)$",
          e_formula=r"$E = \alpha\,(D\,S^\top) + A$",
          paper_entry=r"$s_{ji} = \exp(B_i \cdot C_j) / \sum_i \exp(B_i \cdot C_j)$",
          paper_matrix=r"$\mathrm{softmax}(C^\top B)$"),
        *researchers,
        t("position.researchers.complexity", n=record.num_pixels, keys=num_keys,
          total=f"{record.num_pixels * num_keys:,}")]))
app.link_params(x=x, y=y, mode=mode,
                pins=app.pins_text(pins) if len(pins) > 1 else None,
                module=module_name if len(modules) > 1 else None, beside=beside if beside in others else None)
