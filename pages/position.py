"""Position attention: click a pixel, see where it attends and who attends to it (DANet, and the spatial
self-attention found in a user's model).

The page reads as its contents, called in order at the bottom: the introduction, the note that fits the
model shown and its training, the live part (the controls, the live view and its download), the numbers (the
chosen pixel's numbers beside its map, then every pin's), the formula with this photo's numbers, the second
layer for researchers, and "switch it off". attnviz.analysis.views computes every number; the functions here
lay them out.

The live part, the numbers, the formula's numbers and the researchers' notes on the pixel are fragments
(st.fragment) that rerun alone: a pin (drawn at once by the live photo) reruns the last three, a control all
four; the module picker, the sidebar and "switch it off" rerun the page (they change the record, the model or
the photo)."""

import math
from functools import partial

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import app
from attnviz.analysis.rollout import Rollout
from attnviz.analysis.switch import kinds_of
from attnviz.analysis.tokens import HeadsMean, prefix_label, token_layout
from attnviz.analysis.views import (
    MODES,
    PositionView,
    cell_size,
    formula_pair,
    full_map_size,
    panel_views,
    position_notice,
    position_view,
    row_baseline,
    shared_colour_range,
    sum_reading,
)
from attnviz.app import keys
from attnviz.app.links import MAX_PINS
from attnviz.capture.records import (
    CrissCrossAttentionRecord,
    TokenAttentionRecord,
    WindowAttentionRecord,
    WindowEnergiesRecord,
)
from attnviz.data.camvid import CLASS_NAMES, IGNORE_INDEX
from attnviz.models.imagenet import POSITION_KINDS, TOKEN_KIND, WINDOW_KIND
from attnviz.results import as_number, class_figure, model_results
from attnviz.viz.exports import grid_csv, overlay_png
from attnviz.viz.figures import attention_map_figure, class_name
from attnviz.viz.overlays import position_overlay

t = app.t

NOTHING = "(nothing)"  # the side-by-side box's first option
OPACITY = 0.75  # the overlay's opacity until the slider moves
# The page's parts that rerun alone (st.fragment keys): the live photo with its controls, the numbers, the
# formula's numbers and the researchers' notes on the pixel. A pin reruns all but the live photo (the canvas
# draws the pin itself); a control reruns them all. The formula and the researchers' notes on the module sit
# between them, drawn once per page run: KaTeX in the browser is most of what a redrawn element costs.
LIVE_PART, NUMBERS_PART = "position_live", "position_numbers"
FORMULA_PART, RESEARCHERS_PART = "position_formula", "position_researchers"
PIN_PARTS = [NUMBERS_PART, FORMULA_PART, RESEARCHERS_PART]  # what a pin reruns
ALL_PARTS = [LIVE_PART, *PIN_PARTS]  # what a control reruns
FEW_QUERIES = 50  # below this many test queries of a class, its figure is called rough


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
    figure = t(
        "position.researchers.own_figure",
        mean=own["mean"],
        interval=interval_text(own),
        median=as_number(own.get("median")) or float("nan"),
        queries=f"{queries:,}" if as_number(queries) is not None else "?",
        per_photo=own.get("per_photo", "?"),
        purity=as_number(own.get("purity")) or 0.8,
    )
    quality = entry.get("pam_quality")
    far = quality.get("far_key_ratio") if isinstance(quality, dict) else None
    if isinstance(far, dict) and as_number(far.get("mean")) is not None:
        above = as_number(far.get("above_chance"))
        figure += t(
            "position.researchers.far_figure",
            mean=far["mean"],
            interval=interval_text(far),
            median=as_number(far.get("median")) or float("nan"),
        )
        if above is not None:
            figure += t("position.researchers.far_above", above=above)
    return t("position.researchers.model_figure", figure=figure)


def rerun_all_parts() -> None:
    """A control's callback: rerun the live photo and every part a pin reruns, not the page."""
    st.rerun(ALL_PARTS)


def pin_and_show_numbers(x: int, y: int, pins=None) -> None:
    """A pin on the live photo (which drew it already): the numbers rerun, not the photo."""
    app.take_pin(x, y, pins)
    st.rerun(PIN_PARTS)


def clear_pins() -> None:
    """The clear button: no pins, on the photo and in the numbers."""
    app.remove_pins()
    st.rerun(ALL_PARTS)


def introduction() -> None:
    """The title and the intuition: of DANet's position attention, or of a transformer's attention over tokens or
    in windows when the sidebar's model is one (attnviz.models.imagenet's kinds "token" and "window")."""
    selection = app.current()
    kind = {TOKEN_KIND: "_tokens", WINDOW_KIND: "_windows"}.get(selection.attention if selection else None, "")
    st.title(t(f"position.title{kind}"))
    st.markdown(t(f"position.intuition{kind}"))


def how_to_read(selection, module_name: str, record) -> None:
    """Hover or click: a map the page computes under the pointer, or one the server draws where you click."""
    payload = app.hover_data(
        selection.source, selection.model_name, selection.image_key, module_name, selection.image.shape[:2], record
    )
    st.markdown(t("position.how" if payload.data is not None else "position.how_click", pins=MAX_PINS))


def affinity_weight(selection) -> float:
    """The class-affinity loss weight a shipped model was trained with (0: none, or not a shipped model)."""
    info = app.catalogue().get(selection.model_name) if selection.source == "camvid" else None
    return info.pam_affinity if info is not None else 0.0


def what_to_notice(selection) -> None:
    """What to look for, with the note on classes that is true of the model shown."""
    if selection.attention == WINDOW_KIND:  # a row never leaves its window: "far away" cannot happen in one block
        st.markdown(t("position.notice_windows"))
        return
    fits = position_notice(selection.source, affinity_weight(selection))
    st.markdown(t("position.notice", model=t(f"position.notice_{fits}")))


def one_head(record):
    """The head whose token layout a map has: itself, a heads' mean's first head, a rollout's last layer's."""
    return record.heads[0] if isinstance(record, HeadsMean) else record.last if isinstance(record, Rollout) else record


def token_words(record) -> dict:
    """A transformer's token layout in the page's words (attnviz.analysis.tokens), of `one_head(record)`."""
    layout = token_layout(one_head(record))
    patches = t("position.patches", rows=layout.grid[0], cols=layout.grid[1])
    return dict(
        tokens=layout.tokens,
        parts=layout.parts(patches),
        prefix=" + ".join(layout.prefix) or "—",
        head=layout.head if layout.head is not None else 0,
        heads=layout.heads,
    )


def window_words(record: WindowAttentionRecord) -> dict:
    """Swin's windows in the page's words: the grid, the window, its shift and the head."""
    shifted = any(record.shift)
    return dict(
        height=record.height,
        width=record.width,
        window=f"{record.window[0]}x{record.window[1]}",
        tokens=record.window_tokens,
        shift=t("position.windows_shifted", rows=record.shift[0], cols=record.shift[1])
        if shifted
        else t("position.windows_still"),
        mask=t("position.windows_mask") if shifted else "",
        head=record.head if record.head is not None else 0,
        heads=record.heads,
    )


def prefix_share_text(record, index: int) -> str:
    """What patch `index` gives each token in front of the patches (CLS, DIST, registers)."""
    shares = record.prefix_share(index).tolist()
    names = token_layout(one_head(record)).prefix
    return t(
        "position.prefix_share",
        shares=", ".join(f"{name} {share:.4f}" for name, share in zip(names, shares)),
        keys=record.num_keys,
    )


def module_notes(record) -> None:
    """What kind of spatial attention the chosen module is, where that changes how to read it."""
    if isinstance(record, TokenAttentionRecord):
        st.info(t("position.tokens", **token_words(record)))
    elif isinstance(record, WindowAttentionRecord):
        st.info(t("position.windows", **window_words(record)))
    elif isinstance(record, HeadsMean):
        st.info(t("position.heads_mean", **token_words(record)))
    elif isinstance(record, Rollout):
        first = prefix_label(record.prefix_names[0]) if record.prefix_names else "t0"
        st.info(t("position.rollout", layers=len(record.layers), first=first, **token_words(record)))
    elif record.shared_by_all_queries:
        st.info(t("position.gcnet"))
    elif isinstance(record, CrissCrossAttentionRecord):
        st.info(t("position.criss_cross"))
    elif record.normalisation == "dot":
        st.info(t("position.dot"))
    if record.family:
        st.caption(t("position.found", family=record.family, error=record.max_error))


def controls(others: dict) -> tuple[str, str, str, float]:
    """(mode, what is shown beside, colour scale, opacity), from the row of controls above the photo."""
    tr = app.bound_t()  # the options' texts in this run's language, whenever Streamlit formats them
    columns = st.columns([3, 3, 2, 2])
    app.apply_link("mode", keys.PAM_MODE, MODES, what=t("position.link_mode"))
    mode = columns[0].radio(
        t("position.mode_label"),
        MODES,
        key=keys.PAM_MODE,
        format_func=lambda name: tr(f"position.mode_{name}"),  # the same labels for every map: a label that
        # changed with the map (S, the heads' mean) made Streamlit draw the radio anew with nothing chosen
        on_change=rerun_all_parts,
    )
    app.apply_link("beside", keys.PAM_COMPARE, list(others), what=t("position.link_beside"))
    beside = columns[1].selectbox(
        t("position.beside_label"),
        [NOTHING, *others],
        key=keys.PAM_COMPARE,
        help=t("position.beside_help"),
        on_change=rerun_all_parts,
        format_func=lambda option: (
            tr("position.beside_nothing") if option == NOTHING else app.companion_label(option, tr)
        ),
    )
    scale = columns[2].radio(
        t("position.scale_label"),
        ("own", "shared"),  # the canvas's names (attnviz.app.attention_canvas)
        key=keys.PAM_SCALE,
        format_func=lambda name: tr(f"position.scale_{name}"),
        on_change=rerun_all_parts,
    )
    opacity = columns[3].slider(
        t("position.opacity"), 0.0, 1.0, OPACITY, 0.05, key=keys.PAM_OPACITY, on_change=rerun_all_parts
    )
    return mode, beside, scale, opacity


def settings() -> tuple[str, str, str, float]:
    """(mode, beside, scale, opacity) as the controls (in the live part, run before) left them."""
    state = st.session_state
    return (
        state.get(keys.PAM_MODE, MODES[0]),
        state.get(keys.PAM_COMPARE, NOTHING),
        state.get(keys.PAM_SCALE, "own"),
        state.get(keys.PAM_OPACITY, OPACITY),
    )


def shown_panels(selection, module_name: str, record, others: dict, beside: str) -> list:
    """The page's panel, and the one chosen beside it."""
    return [app.main_panel(selection, module_name, record)] + ([others[beside]()] if beside in others else [])


def live_view(selection, panels, pins, pixel, mode: str, scale: str, opacity: float) -> None:
    """The photo the pointer drives (every panel's map computed in the browser), or, when a map is too big
    for the page, a clickable photo with the server's overlay."""
    payloads = [
        app.hover_data(selection.source, p.model_name, p.image_key, p.module, p.image.shape[:2], p.record)
        for p in panels
    ]
    too_big = next((payload for payload in payloads if payload.data is None), None)
    if too_big is None:
        app.attention_canvas(
            image=selection.image,
            photo_key=selection.image_key,
            mode=mode,
            opacity=opacity,
            scale=scale,
            pixel=pixel,
            pins=pins,
            on_pin=pin_and_show_numbers,
            key=keys.PAM_CANVAS,
            language=app.language(),
            panels=[
                {
                    **payload.data,
                    "title": p.title if len(panels) > 1 else "",
                    "image": p.image,
                    "image_key": p.image_key,
                    "id": f"{selection.source}|{p.model_name}|{p.image_key}|{p.module}",
                }
                for payload, p in zip(payloads, panels)
            ],
        )
        st.caption(t("position.canvas_caption"))
        return
    st.info(t("position.too_big", reason=too_big.reason))  # a Phrase: said in the page's language
    view = position_view(panels[0].record, pixel, selection.image.shape[:2], mode)
    streamlit_image_coordinates(
        position_overlay(selection.image, view, opacity),
        key=keys.PAM_CLICK,
        on_click=rerun_all_parts,
        use_column_width="always",
        cursor="crosshair",
        image_format="JPEG",
        jpeg_quality=90,
    )


def pin_numbers(panels, views, pins, mode: str, opacity: float, scale: str) -> None:
    """The server's numbers for every pin of every panel (one pin of one model: the chosen pixel's, below)."""
    if not pins or (len(pins) == 1 and len(panels) == 1):
        return
    head = st.columns([6, 1])
    head[0].markdown(t("position.pins_head", count=len(pins), most=MAX_PINS))
    head[1].button(t("position.clear_pins"), key=keys.PAM_CLEAR_PINS, on_click=clear_pins)
    st.markdown(
        "  \n".join(
            t(
                f"position.pin_{mode}",
                n=n,
                title=p.title if len(panels) > 1 else "",
                x=v.pixel[0],
                y=v.pixel[1],
                row=v.cell[0],
                col=v.cell[1],
                index=v.index,
                value=v.top_cells[0][2],
                top_row=v.top_cells[0][0],
                top_col=v.top_cells[0][1],
                total=v.total,
            )
            for p, row in zip(panels, views)
            for n, v in enumerate(row, 1)
        )
    )
    app.pins_slide(panels, views, mode, opacity, scale)


def pixel_numbers(view: PositionView, record, chosen: bool) -> None:
    """The chosen pixel's cell, the sum of its row or column against even attention, its top locations (one
    Markdown block: each element a pin redraws costs the browser time)."""
    parts = []
    grid_name = "grid_key" if view.feature_hw != (record.height, record.width) else "grid_feature"
    parts.append(
        t(
            "position.chosen",
            centre="" if chosen else t("position.centre"),
            x=view.pixel[0],
            y=view.pixel[1],
            row=view.cell[0],
            col=view.cell[1],
            index=view.index,
            n=view.num_pixels,
            grid=t(f"position.{grid_name}", rows=view.feature_hw[0], cols=view.feature_hw[1]),
        )
    )
    reading = sum_reading(view, record)
    if record.normalisation == "dot":
        parts.append(t(f"position.dot_{view.mode}", total=reading.total))
    elif view.mode == "row":
        parts.append(
            t(
                "position.row_sum",
                total=reading.total,
                high=reading.largest,
                ratio=reading.largest_over_even,
                keys=reading.baseline,
            )
        )
        if isinstance(record, (TokenAttentionRecord, HeadsMean, Rollout)) and record.prefix_keys:
            parts.append(prefix_share_text(record, view.index))
    else:
        parts.append(
            t(
                "position.column_sum",
                total=reading.total,
                average=reading.column_average,
                ratio=reading.total_over_average,
            )
        )
    parts.append(
        t("position.top_title")
        + "  \n"
        + "  \n".join(
            t("position.top_item", rank=rank, row=r, col=c, value=v) for rank, (r, c, v) in enumerate(view.top_cells, 1)
        )
    )
    st.markdown("\n\n".join(parts))


def class_texts(view: PositionView, image_hw, entry: dict, windowed: bool = False) -> tuple[str, list[str]]:
    """The chosen pixel's class and the share of its row on it ("" when unknown), and the figures for
    researchers."""
    shares = view.class_share
    if shares is None:
        return "", []
    if shares.class_id == IGNORE_INDEX:
        return t("position.unlabelled"), []
    shown = class_name(shares.class_id, app.language())
    cell_h, cell_w = cell_size(image_hw, view.feature_hw)
    text = t("position.class_share", name=shown, cell_h=cell_h, cell_w=cell_w, share=shares.share, chance=shares.chance)
    if windowed:  # a Swin row reaches its window only: chance over the whole photo, or far keys, say nothing of it
        return text, []
    researchers = [t("position.researchers.class_chance", ratio=shares.ratio, name=shown)]
    if math.isfinite(shares.far_key_ratio):
        researchers.append(t("position.researchers.far_key", ratio=shares.far_key_ratio))
    figure = class_figure(entry, CLASS_NAMES[shares.class_id])
    if figure and as_number(figure.get("far_key_ratio")) is not None:
        caution = t("position.researchers.few_queries") if figure["queries"] < FEW_QUERIES else ""
        researchers.append(
            t(
                "position.researchers.class_test",
                name=shown,
                queries=f"{figure['queries']:,}",
                own=figure["own_class_ratio"],
                far=figure["far_key_ratio"],
                caution=caution,
            )
        )
    return text, researchers


def pixel_researchers(selection, view: PositionView, windowed: bool = False) -> list[str]:
    """What researchers read of the chosen pixel: its class's figures and the model's (row mode); none of the
    photo-wide ones for a row of Swin's windows (`windowed`)."""
    entry = model_entry(selection)
    researchers = class_texts(view, selection.image.shape[:2], entry, windowed)[1]
    model_figure = split_figures_text(entry)
    if model_figure and view.mode == "row":  # figures of rows of S: not shown beside a column
        researchers.append(model_figure)
    return researchers


def model_entry(selection) -> dict:
    """The shipped model's results.json entry ({} for other sources)."""
    return model_results(app.results(), selection.model_name) if selection.source == "camvid" else {}


def training_notes(selection) -> list[str]:
    """A shipped model's class-affinity training, or a plain DANet's lack of it with a way to the affinity
    model; returns what researchers read of it."""
    if selection.source != "camvid":
        return []
    weight = affinity_weight(selection)
    if weight > 0:
        st.info(t("position.affinity", weight=weight))
        return [t("position.researchers.affinity_source", weight=weight)]
    st.caption(t("position.plain"))
    supervised = [name for name, info in app.catalogue().items() if info.pam_affinity > 0]
    if supervised:
        app.switch_button(st, supervised[0], t("position.switch", model=supervised[0]), place="training")
    return [t("position.researchers.trained_with")]


def downloads(selection, view: PositionView, opacity: float, module_name: str) -> None:
    """The chosen pixel's map over the photo (PNG, with its colour bar and a caption) and as numbers (CSV), made
    when pressed; their names say what they are (model, photo, row or column i of S)."""
    stem = f"{selection.model_name}-{selection.image_key}-{view.mode}{view.index}-of-S"
    buttons = st.columns(2)
    app.download(
        buttons[0],
        t("position.overlay_png"),
        partial(overlay_png, selection.image, view, opacity, app.figure_caption(module_name), app.language()),
        f"{stem}.png",
        key=keys.PAM_PNG,
    )
    app.download(
        buttons[1],
        t(f"position.csv_{view.mode}", index=view.index),
        partial(grid_csv, view.values, f"S_{view.mode}_{view.index}"),
        f"{stem}.csv",
        key=keys.PAM_CSV,
    )


def chosen_pixel(selection, view: PositionView, record, chosen: bool, opacity: float, module_name: str) -> None:
    """The chosen pixel's numbers, its class, the downloads."""
    pixel_numbers(view, record, chosen)
    class_text = class_texts(view, selection.image.shape[:2], model_entry(selection))[0]
    if class_text:
        st.markdown(class_text)
    downloads(selection, view, opacity, module_name)


def attention_map(view: PositionView, views, module_name: str, scale: str, pins) -> None:
    """Row or column i as a chart, its cell and top locations marked (one colour range for every pin's map
    when asked): drawn while its toggle is on (the live photo draws the same map; the chart costs a pin 22 KB)."""
    grid = "key" if view.values_hw != view.feature_hw else "feature"
    zrange = shared_colour_range(views) if scale == "shared" and pins else None
    figure = attention_map_figure(
        view.values,
        t(f"position.map_{view.mode}", index=view.index, grid=t(f"position.resolution_{grid}")),
        marker=view.cell if view.values_hw == view.feature_hw else None,
        top=[(r, c) for r, c, _ in view.top_cells],
        zrange=zrange,
        language=app.language(),
    )
    app.chart(
        st,
        figure,
        key=keys.PAM_MAP,
        theme=None,
        width="content",
        caption=app.figure_caption(module_name, t("figures.caption_pixel", x=view.pixel[0], y=view.pixel[1])),
    )


def formula_block(tex: str, *lines: str) -> None:
    """The formula's title, the formula, and what its terms are: one block (each element costs the browser)."""
    st.markdown("\n\n".join([t("position.formula_title"), f"$$\n{tex}\n$$", *lines]))


def formula_header(record) -> None:
    """The formula and its terms named, and the size of the branch α scales on this photo: the same for every
    pixel, so drawn once per page run, not on every pin."""
    if record.normalisation != "softmax":
        return
    if isinstance(record, TokenAttentionRecord):
        tokens = (
            r"\begin{aligned} S_{ij} &= \frac{\exp(q_i^\top k_j / \sqrt{d})}{Z_i} \\"
            r" Z_i &= \sum_{m \in \text{all tokens}} \exp(q_i^\top k_m / \sqrt{d}) \\"
            r" o_i &= \sum_j S_{ij}\, v_j \end{aligned}"
        )
        formula_block(tokens, t("position.formula_tokens", **token_words(record)))
        return
    if isinstance(record, WindowAttentionRecord):
        windows = (
            r"\begin{aligned} S_{ij} &= \frac{\exp(q_i^\top k_j / \sqrt{d} + B_{ij})}{Z_i} \\"
            r" Z_i &= \sum_{m \in \text{window}(i)} \exp(q_i^\top k_m / \sqrt{d} + B_{im}) \\"
            r" o_i &= \sum_{j \in \text{window}(i)} S_{ij}\, v_j \end{aligned}"
        )
        formula_block(windows, t("position.formula_windows", **window_words(record)))
        return
    general = (
        r"\begin{aligned} S_{ij} &= \frac{\exp(B_i^\top C_j)}{Z_i} \\ Z_i &= \sum_m \exp(B_i^\top C_m) \\"
        r" E_i &= \alpha \sum_j S_{ij}\, D_j + A_i \end{aligned}"
    )
    lines = [t("position.formula_names")]
    if record.alpha is not None and math.isfinite(record.alpha):
        branch = record.branch_size()  # ‖α D Sᵀ‖ / ‖A‖ on this photo: what α alone cannot say
        lines.append(
            t("position.alpha" if branch is not None else "position.alpha_alone", alpha=record.alpha, branch=branch)
        )
    formula_block(general, *lines)


def formula_numbers(view: PositionView, record, image_hw) -> None:
    """The formula's terms for the chosen pixel and the key it weights most (or, for a column, the query that
    weights it most), with this photo's numbers."""
    keys = row_baseline(record, view)  # a Swin row cut by the shift mask spreads over fewer keys
    pair = formula_pair(view, keys, image_hw)
    if pair is None or record.normalisation != "softmax":
        return
    i, j = pair.query, pair.key
    (i_row, i_col), (j_row, j_col) = pair.query_cell, pair.key_cell
    tokens, windows = isinstance(record, TokenAttentionRecord), isinstance(record, WindowAttentionRecord)
    energy = rf"q_{{{i}}}^\top k_{{{j}}} / \sqrt{{d}}" if tokens or windows else rf"B_{{{i}}}^\top C_{{{j}}}"
    energy += rf" + B_{{{i},{j}}}" if windows else ""
    energies = rf"\begin{{aligned}} {energy} &= {pair.energy:.3f} \\ \log Z_{{{i}}} &= {pair.log_z:.3f} \end{{aligned}}"
    lines = [
        t(f"position.formula_{view.mode}", i=i, j=j, i_row=i_row, i_col=i_col, j_row=j_row, j_col=j_col),
        t(
            "position.formula_cells",
            cell_h=pair.key_cell_size[0],
            cell_w=pair.key_cell_size[1],
            j_row=j_row,
            j_col=j_col,
            width=pair.key_grid[1],
            j=j,
        ),
        f"$$\n{energies}\n$$",
    ]
    st.markdown("\n\n".join(lines))  # one block: each element a pin redraws costs the browser time
    st.latex(rf"S_{{{i},{j}}} = e^{{{pair.energy:.3f} - {pair.log_z:.3f}}} = {pair.entry:.4f}")
    st.markdown(
        t(
            "position.formula_numbers_tokens"
            if tokens
            else "position.formula_numbers_windows"
            if windows
            else "position.formula_numbers",
            energy=pair.energy,
            log_z=pair.log_z,
            entry=pair.entry,
            ratio=pair.even_ratio,
            keys=keys,
        )
    )


def rollout_prefix_map(record: Rollout, module_name: str) -> None:
    """The first prefix token's row of the rollout (CLS's in a ViT) over the patch grid: the map that papers and
    tools show as "the rollout" (Abnar & Zuidema, ACL 2020)."""
    name = prefix_label(record.prefix_names[0]) if record.prefix_names else "t0"
    figure = attention_map_figure(
        record.prefix_row(0).numpy(),
        t("position.rollout_prefix_title", name=name),
        colour_title="R",
        language=app.language(),
    )
    app.chart(st, figure, key=keys.ROLLOUT_MAP, theme=None, width="content", caption=app.figure_caption(module_name))


def researchers_notes(record, model_notes: list[str]) -> None:
    """The researchers' layer of the module and model (the notation, the model's training, the cost of S, the
    normalisers); the chosen pixel's part is `pixel_researchers_part`, drawn inside the same expander."""
    transformer = isinstance(record, (TokenAttentionRecord, HeadsMean, Rollout, WindowAttentionRecord))
    complexity = t(
        "position.researchers.complexity", n=record.num_pixels, keys=record.num_keys, total=f"{full_map_size(record):,}"
    )
    st.markdown(
        "\n\n".join(
            [
                t("position.researchers.rollout", n=record.num_pixels + record.prefix_keys)
                if isinstance(record, Rollout)
                else t("position.researchers.tokens", row=r"$\exp(q_i^\top k_j / \sqrt{d} - \log Z_i)$")
                if isinstance(record, (TokenAttentionRecord, HeadsMean))
                else t(
                    "position.researchers.windows",
                    how=t(
                        "position.researchers.windows_softmax"
                        if isinstance(record, WindowEnergiesRecord)
                        else "position.researchers.windows_sdpa"
                    ),
                    n=record.num_pixels,
                )
                if isinstance(record, WindowAttentionRecord)
                else t(
                    "position.researchers.notation",
                    s_formula=r"$S = \mathrm{softmax}(B^\top C)$",
                    e_formula=r"$E = \alpha\,(D\,S^\top) + A$",
                    paper_entry=r"$s_{ji} = \exp(B_i \cdot C_j) / \sum_i \exp(B_i \cdot C_j)$",
                    paper_matrix=r"$\mathrm{softmax}(C^\top B)$",
                ),
                *model_notes,
                *([] if transformer else [complexity]),  # DANet's B and C: a transformer's text says its own
                *(
                    [t("position.researchers.normalisers")]
                    if record.columns_use_recorded_normalisers and not transformer
                    else []
                ),
            ]
        )
    )


def remembered_views(panels, pins, image_hw, mode: str) -> list[list[PositionView]]:
    """panel_views, each pin's view kept in the session until the panels, photo or mode change: a new pin
    computes its own view only (a view is a row of S with its statistics, a few ms each)."""
    views = _kept_views(panels, image_hw, mode)
    missing = [pin for pin in pins if pin not in views]
    for pin, row in zip(missing, zip(*panel_views(panels, missing, image_hw, mode))) if missing else ():
        views[pin] = row
    for pin in [pin for pin in views if pin not in pins]:
        del views[pin]  # only the pins shown are kept
    return [[views[pin][k] for pin in pins] for k in range(len(panels))]


def _kept_views(panels, image_hw, mode: str) -> dict:
    """The session's pin -> (view per panel) for these panels (their records by identity), photo size and mode;
    a new, empty one when any of them changed."""
    context = (tuple(_panel_id(p) for p in panels), image_hw, mode)
    kept = st.session_state.get(keys.PAM_VIEWS)
    if kept is None or kept[0] != context:
        kept = (context, {})
        st.session_state[keys.PAM_VIEWS] = kept
    return kept[1]


def chosen_view(selection, module_name: str, record) -> tuple[PositionView, list, tuple[int, int], bool]:
    """(the chosen pixel's view in full, the pins, the pixel, whether one was chosen), as the controls left the
    mode: what each part that a pin reruns starts from (the numbers' part computed it first when it is a pin)."""
    mode = settings()[0]
    image_hw = selection.image.shape[:2]
    pins, pixel, chosen = app.pinned_pixels(image_hw, selection.image_key, keys.PAM_CLICK)
    main = app.main_panel(selection, module_name, record)
    kept = st.session_state.get(keys.PAM_VIEWS)
    if kept is not None and kept[0][1:] == (image_hw, mode) and kept[0][0][0] == _panel_id(main) and pixel in kept[1]:
        return kept[1][pixel][0], pins, pixel, chosen
    return centre_view(selection, module_name, record, pixel, mode), pins, pixel, chosen


def centre_view(selection, module_name: str, record, pixel: tuple[int, int], mode: str) -> PositionView:
    """The view of a pixel that is not a pin (the photo's centre until one is chosen), shared by every session
    (attnviz.app.resources.pixel_view): a class opening a photo reads its centre once."""
    image = selection.image
    return app.pixel_view(
        selection.source,
        selection.model_name,
        selection.image_key,
        module_name,
        tuple(pixel),
        mode,
        selection.label is not None,
        record,
        image.shape[:2],
        selection.label,
    )


def _panel_id(panel) -> tuple:
    return (panel.model_name, panel.image_key, panel.module, id(panel.record))


@st.fragment(key=LIVE_PART)
def live_part(selection, analysis, module_name: str, record, others: dict) -> None:
    """The controls, the live photo and its download: what a control changes. A fragment: its payload is not
    sent again while it reruns (attnviz.app.attention_canvas), and a pin does not rerun it."""
    app.continue_run(selection)
    mode, beside, scale, opacity = controls(others)
    pins, pixel, _ = app.pinned_pixels(selection.image.shape[:2], selection.image_key, keys.PAM_CLICK)
    panels = shown_panels(selection, module_name, record, others, beside)
    live_view(selection, panels, pins, pixel, mode, scale, opacity)
    app.view_download(selection, analysis, keys.PAM_HTML, module_name, panels[1:], mode)


@st.fragment(key=NUMBERS_PART)
def numbers_part(selection, module_name: str, record, others: dict, several_modules: bool) -> None:
    """What a pin changes first: the chosen pixel's numbers and map, every pin's numbers, and the link. A fragment:
    a pin reruns this (and the two small parts below) alone."""
    app.continue_run(selection)
    mode, beside, scale, opacity = settings()
    image_hw = selection.image.shape[:2]
    pins, pixel, chosen = app.pinned_pixels(image_hw, selection.image_key, keys.PAM_CLICK)
    panels = shown_panels(selection, module_name, record, others, beside)
    views = remembered_views(panels, pins, image_hw, mode)
    view = views[0][-1] if pins and pins[-1] == pixel else centre_view(selection, module_name, record, pixel, mode)
    if st.toggle(t("position.map_chart"), key=keys.PAM_MAP_CHART, help=t("position.map_chart_help")):
        left, right = st.columns([1, 1])
        with left:
            chosen_pixel(selection, view, record, chosen, opacity, module_name)
        with right:
            attention_map(view, views, module_name, scale, pins)
    else:  # the live photo above draws the map: the numbers take the page's width
        chosen_pixel(selection, view, record, chosen, opacity, module_name)
    pin_numbers(panels, views, pins, mode, opacity, scale)  # after the newest pin's own numbers, which show first
    app.link_params(
        x=pixel[0],
        y=pixel[1],
        mode=mode,
        pins=app.pins_text(pins) if len(pins) > 1 else None,
        beside=beside if beside in others else None,
        module=module_name if several_modules else None,
    )
    app.write_link()  # a rerun of this part alone writes the address bar itself (app.py's run did not run)


@st.fragment(key=FORMULA_PART)
def formula_part(selection, module_name: str, record) -> None:
    """The formula's numbers for the chosen pixel (a pin reruns this alone; the formula itself is above it)."""
    app.continue_run(selection)
    formula_numbers(chosen_view(selection, module_name, record)[0], record, selection.image.shape[:2])


@st.fragment(key=RESEARCHERS_PART)
def pixel_researchers_part(selection, module_name: str, record) -> None:
    """What researchers read of the chosen pixel (a pin reruns this alone, inside the researchers' layer)."""
    app.continue_run(selection)
    windowed = isinstance(record, WindowAttentionRecord)
    notes = pixel_researchers(selection, chosen_view(selection, module_name, record)[0], windowed)
    if notes:
        st.markdown("\n\n".join(notes))


introduction()
selection, analysis = app.page_analysis(
    prefixes=("danet",), what=t("position.what"), needs=lambda a: bool(a.spatial_attention), also=POSITION_KINDS
)
what_to_notice(selection)
model_notes = training_notes(selection)
modules = analysis.spatial_attention
module_name = app.spatial_module_picker(st, modules)
record = modules[module_name]
how_to_read(selection, module_name, record)
module_notes(record)
others = app.companion_panels(selection, analysis, module_name)
live_part(selection, analysis.view_only(), module_name, record, others)
numbers_part(selection, module_name, record, others, several_modules=len(modules) > 1)
formula_header(record)
formula_part(selection, module_name, record)
with st.expander(t("common.for_researchers")):
    researchers_notes(record, model_notes)
    if isinstance(record, Rollout) and record.prefix_keys:
        rollout_prefix_map(record, module_name)
    pixel_researchers_part(selection, module_name, record)
app.switch_section(selection, analysis, kinds_of(modules), context="position")

# The parts above (st.fragment) keep this page's namespace for the session (their globals): it must not hold the
# whole analysis (the channel layers' input features, 61 MB for a 768x1024 upload) once the page has run, or
# every session keeps its own after the shared cache dropped it (python -m attnviz.load_bench, issue 31).
del analysis
