"""Position attention: click a pixel, see where it attends and who attends to it (DANet, and the spatial
self-attention found in a user's model)."""
import math
from functools import partial

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.app import keys
from attnviz.app.language import language
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX
from attnviz.records import CrissCrossAttentionRecord
from attnviz.exports import grid_csv, overlay_png
from attnviz.results import as_number, class_figure, far_key_text, model_results, pam_ratio_text
from attnviz.app.links import MAX_PINS
from attnviz.geometry import same_place
from attnviz.hover import baseline_keys
from attnviz.views import position_view
from attnviz.viz.overlays import position_overlay
from attnviz.viz.figures import attention_map_figure

st.title("DANet position attention: where does a pixel look?")
st.markdown(
    r"""Every pixel of a feature map gathers features from **every** other pixel, weighted by a row of
$S = \mathrm{softmax}(B^\top C)$ ($N \times N$, $N = HW$; Fu et al., CVPR 2019). **Move the pointer over the photo**:
the map shows where the pixel under it attends (its row of $S$), computed in the page. **Click (or tap) to pin**
up to 4 points and compare them.""")
with st.expander("The formula and its notation"):
    st.markdown(
        r"""With $B$, $C$ (1x1 convs to $C/8$ channels) and $D$ (1x1 conv to $C$) of the feature map $A$,

$$S = \mathrm{softmax}(B^\top C)\ \ (N \times N,\ N = H W),\qquad E = \alpha\,(D\,S^\top) + A .$$

Row $i$ of $S$ says **where pixel $i$ attends** (it sums to 1); column $j$ says **who attends to pixel $j$**.

*Notation:* the paper writes $s_{ji} = \exp(B_i \cdot C_j) / \sum_i \exp(B_i \cdot C_j)$ with $j$ the output pixel,
i.e. $\mathrm{softmax}(C^\top B)$. Here the letters and indices are swapped so that row $i$ is the output pixel;
it is the same matrix. As in the official code, $B$ and $C$ have $C/8$ channels (the paper keeps $C$).""")
selection, analysis = app.page_analysis(prefixes=("danet",), what="position attention module",
                                        needs=lambda a: bool(a.spatial_attention))
modules = analysis.spatial_attention
app.apply_link("module", keys.PAM_MODULE, list(modules), what="no such attention module in this model")
if st.session_state.get(keys.PAM_MODULE) not in modules:
    st.session_state[keys.PAM_MODULE] = next(iter(modules))
module_name = (st.selectbox("Attention module", list(modules), key=keys.PAM_MODULE,
                            format_func=lambda n: f"{n} ({modules[n].family or modules[n].kind})")
               if len(modules) > 1 else next(iter(modules)))
record = modules[module_name]
image = selection.image
image_hw = image.shape[:2]
if getattr(record, "shared_by_all_queries", False):
    st.info("**GCNet context block** (Cao et al., 2019): one attention map, softmax over all positions of a 1x1 "
            "conv of the features, shared by every query pixel: whichever pixel you click, its row is the same "
            "map. That is GCNet's own finding: the non-local maps of trained networks are nearly the same for "
            "every query, so one map does the job at a fraction of the cost.")
elif isinstance(record, CrissCrossAttentionRecord):
    st.info("**Criss-cross attention** (CCNet, Huang et al., ICCV 2019): a pixel attends only to the pixels of "
            "its own row and column (one softmax over those H + W - 1 positions); a second pass of the module "
            "(recorded as a separate entry) lets information go round the corner.")
elif getattr(record, "normalisation", "softmax") == "dot":
    st.info("**Non-local block, dot-product form** (Wang et al., CVPR 2018): S = θᵀφ / Nₖ (Nₖ: the number of keys), no softmax, so a row "
            "need not sum to 1 and entries can be negative.")
if record.family:
    st.caption(f"Found in your model by structure as **{record.family}**; verified: its output was rebuilt from the "
               f"recorded parts to within {record.max_error:.1e} (relative).")

MODES = {"row": "where it attends (row i of S)", "column": "who attends to it (column i of S)"}
SCALES = {"own": "each map its own", "shared": "one for all maps shown"}
controls = st.columns([3, 3, 2, 2])
app.apply_link("mode", keys.PAM_MODE, MODES.values(), convert=MODES.__getitem__, what="use row or column")
mode_text = controls[0].radio("Show", list(MODES.values()), key=keys.PAM_MODE)
mode = next(m for m, text in MODES.items() if text == mode_text)
others = app.companion_panels(selection, analysis, module_name)
app.apply_link("beside", keys.PAM_COMPARE, list(others), what="no such model or module to show beside")
beside = controls[1].selectbox("Beside it, on the same pixel", ["(nothing)", *others], key=keys.PAM_COMPARE,
                               help="A second model (or another attention module of your model): the pointer "
                                    "drives both maps.")
scale_text = controls[2].radio("Colour scale", list(SCALES.values()), key=keys.PAM_SCALE)
scale = next(k for k, text in SCALES.items() if text == scale_text)
opacity = controls[3].slider("Overlay opacity", 0.0, 1.0, 0.75, 0.05, key=keys.PAM_OPACITY)

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
        pins=pins, on_pin=app.take_pin, key=keys.PAM_CANVAS, language=language(),
        panels=[{**payload.data, "title": p.title if len(panels) > 1 else "", "image": p.image,
                 "image_key": p.image_key, "id": f"{selection.source}|{p.model_name}|{p.image_key}|{p.module}"}
                for payload, p in zip(payloads, panels)])
    st.caption("Green cross: the pixel under the pointer (or the last pin); cyan circles: its 5 largest values; "
               "white numbers: the pins. Colour shows only where attention is high.")
else:
    too_big = next(p for p in payloads if p.data is None)
    st.info(f"This model's attention is too big to compute in the page ({too_big.reason}): click the photo and "
            "the server computes the map.")
    streamlit_image_coordinates(position_overlay(image, position_view(record, (x, y), image_hw, mode), opacity), key=keys.PAM_CLICK, use_column_width="always", cursor="crosshair",
                                image_format="JPEG", jpeg_quality=90)

# ---- the server's numbers: every pin, then the chosen pixel in full
views = [[position_view(p.record, same_place(*pin, image_hw, p.image.shape[:2]), p.image.shape[:2], mode, p.label)
          for pin in pins] for p in panels]
if pins and (len(pins) > 1 or len(panels) > 1):  # one pin of one model: the chosen pixel's numbers below
    head = st.columns([6, 1])
    head[0].markdown(f"**Pinned points** ({len(pins)} of {MAX_PINS}; a new click replaces the oldest). Their maps are "
                     "drawn under the photo; the server's numbers:")
    head[1].button("Clear pins", key=keys.PAM_CLEAR_PINS, on_click=app.remove_pins)
    st.markdown("  \n".join(
        f"{n}. {p.title if len(panels) > 1 else ''} x = {v.pixel[0]}, y = {v.pixel[1]} → row {v.cell[0]}, column "
        f"{v.cell[1]} (i = {v.index}): largest {v.top_cells[0][2]:.4f} at row {v.top_cells[0][0]}, col "
        f"{v.top_cells[0][1]}; {mode} sum {v.total:.4f}"
        for p, row in zip(panels, views) for n, v in enumerate(row, 1)))
view = views[0][-1] if pins and pins[-1] == (x, y) else position_view(record, (x, y), image_hw, mode, selection.label)
row, col = view.cell
index, values = view.index, view.values

left, right = st.columns([1, 1])
with left:
    grid_kind = "key " if view.feature_hw != (record.height, record.width) else ""
    st.markdown(f"**Chosen pixel{'' if chosen else ' (the centre until you click)'}:** x = {x}, y = {y} in the "
                f"photo → feature pixel row {row}, column {col} (index i = {index} of N = {view.num_pixels}, a "
                f"{view.feature_hw[0]}x{view.feature_hw[1]} {grid_kind}map).")
    alpha = getattr(record, "alpha", None)
    if alpha is not None and math.isfinite(alpha):
        st.markdown(f"**α = {alpha:.4f}**: how much of the attention output is added back, E = α·(D Sᵀ) + A. It "
                    "is learned and starts at 0; small or negative values are common: the network chooses how "
                    "much to use.")
    if getattr(record, "normalisation", "softmax") == "dot":
        st.markdown(f"{mode.capitalize()} i sums to **{view.total:.4f}** (dot-product form: rows need not sum "
                    "to 1).")
    elif mode == "row":
        keys_in_row = baseline_keys(record)
        st.markdown(f"Row i sums to **{view.total:.6f}**. Largest weight {values.max():.4f} "
                    f"= {values.max() * keys_in_row:.1f}x the uniform 1/{keys_in_row}.")
    else:
        average = record.num_pixels / getattr(record, "num_keys", record.num_pixels)  # N / Nk: 1 unless sub-sampled
        st.markdown(f"Column i sums to **{view.total:.3f}** (on average a column sums to {average:g}): pixel i "
                    f"receives {view.total / average:.2f}x the average attention.")
    st.markdown("**Top locations:**  \n" + "  \n".join(f"{rank}. row {r}, col {c}: {v:.4f}"
                                                      for rank, (r, c, v) in enumerate(view.top_cells, 1)))
    entry = model_results(app.results(), selection.model_name) if selection.source == "camvid" else {}
    shares = view.class_share
    researchers = []  # the second layer: figures over the test split, definitions, flags
    if shares is not None and shares.class_id == IGNORE_INDEX:
        st.markdown("The chosen pixel is unlabelled in the ground truth.")
    elif shares is not None:
        name = CLASS_NAMES[shares.class_id]
        st.markdown(f"The chosen pixel is **{name}** (its label is read at the photo pixel; S works on cells of "
                    f"{image_hw[0] // view.feature_hw[0]}x{image_hw[1] // view.feature_hw[1]} pixels). "
                    f"**{shares.share:.1%}** of its attention falls on {name} pixels, which cover {shares.chance:.1%} "
                    f"of the labelled photo: **{shares.ratio:.1f}x** what attending at random would give.")
        if math.isfinite(shares.far_key_ratio):
            researchers.append(f"Over far keys only (the query's nearest 10% of cells dropped) this pixel's own-class "
                               f"share is **{shares.far_key_ratio:.1f}x chance**. A high first figure with a far figure "
                               "near 1 means the pixel looks at its neighbourhood, not at its class.")
        figure = class_figure(entry, name)
        if figure and as_number(figure.get("far_key_ratio")) is not None:
            caution = " Few test queries of this class: a rough figure." if figure["queries"] < 50 else ""
            researchers.append(f"**{name} queries of the test split** ({figure['queries']:,}): own-class "
                               f"{figure['own_class_ratio']:.2f}x, far-key {figure['far_key_ratio']:.2f}x chance on "
                               f"average.{caution}")
    model_figure, far_figure = pam_ratio_text(entry), far_key_text(entry)
    if model_figure and mode == "row":  # figures of rows of S: not shown beside a column
        researchers.append(f"**This model over the whole test split:** {model_figure}"
                           + (f"; {far_figure}" if far_figure else "") + ".")
    if selection.source == "camvid":
        models = app.catalogue()
        info = models.get(selection.model_name)
        if info is not None and info.pam_affinity > 0:
            st.info(f"**PAM supervised with class affinity** (weight {info.pam_affinity:g}): in training, an extra loss "
                    "pulled each row of S towards the pixels of the query's own class (the affinity-loss idea of "
                    "Context Prior, Yu et al., CVPR 2020). Its attention groups classes because it was taught to.")
        else:
            st.caption("Plain DANet: S was learned only through the segmentation loss, from 367 photos, so it is "
                       "weakly tied to the classes; the affinity model was taught to group them.")
            researchers.append("The affinity model was trained with `python -m attnviz.train --pam-affinity` (its "
                               "model card gives the settings).")
            supervised = [n for n, i in models.items() if i.pam_affinity > 0]
            if supervised:
                app.switch_button(st, supervised[0], f"Switch to {supervised[0]} (the same pixel)")
    stem = f"{selection.model_name}-{mode}{index}-of-S"
    buttons = st.columns(2)
    app.download(buttons[0], "Overlay (PNG)", partial(overlay_png, image, view, opacity), f"{stem}.png",
                 key=keys.PAM_PNG)
    app.download(buttons[1], f"{mode.capitalize()} {index} of S (CSV)", partial(grid_csv, values, f"S_{mode}_{index}"),
                 f"{stem}.csv", key=keys.PAM_CSV)
with right:
    grid = "key" if view.values_hw != view.feature_hw else "feature"
    zrange = ((min(0.0, *(float(v.values.min()) for r in views for v in r)),
               max(float(v.values.max()) for r in views for v in r)) if scale == "shared" and pins else None)  # as the pins
    app.chart(st, attention_map_figure(values, f"{mode.capitalize()} {index} of S at {grid} resolution",
                                       marker=(row, col) if view.values_hw == view.feature_hw else None,
                                       top=[(r, c) for r, c, _ in view.top_cells], zrange=zrange),
              key=keys.PAM_MAP, theme=None, width="content")
# the formula with this photo's numbers, for the largest value shown
if view.formula is not None and getattr(record, "normalisation", "softmax") == "softmax":
    query_index, key_index, energy, log_z, s_entry = view.formula
    st.latex(rf"S_{{{query_index},{key_index}}} = \frac{{\exp(B_{{{query_index}}}^\top C_{{{key_index}}})}}"
             rf"{{\sum_m \exp(B_{{{query_index}}}^\top C_m)}} = \exp({energy:.3f} - {log_z:.3f}) = {s_entry:.4f}")
num_keys = getattr(record, "num_keys", record.num_pixels)
researchers.append(f"S is never built: the page keeps B and C of this photo and computes one row or column per pointer "
                   f"move (O(N·C/8)); the full S would be {record.num_pixels} x {num_keys} = "
                   f"{record.num_pixels * num_keys:,} numbers.")
with st.expander("For researchers: figures over the test split, definitions, how it is computed"):
    st.markdown("\n\n".join(researchers))
app.link_params(x=x, y=y, mode=mode,
                pins=app.pins_text(pins) if len(pins) > 1 else None,
                module=module_name if len(modules) > 1 else None, beside=beside if beside in others else None)
