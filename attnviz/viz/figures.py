"""Plotly figures: pure functions from arrays to `go.Figure` (no Streamlit inside).

Every label is read from the [figures] catalog of attnviz.i18n in the `language` a function is given
(English by default), so a figure is a function of its arrays and its language only."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from attnviz.data.camvid import CLASS_COLOURS, CLASS_NAMES
from attnviz.i18n import DEFAULT_LANGUAGE, translate
from attnviz.modules.eca import kernel_t
from attnviz.viz.colours import CHANNEL_COLOURS, plotly_scale
from attnviz.viz.overlays import blend_heatmap, draw_markers, feature_to_image

__all__ = [
    "class_legend_html",
    "class_name",
    "layer_weights_heatmap",
    "sorted_weights_figure",
    "kernel_figure",
    "feature_grid_figure",
    "kernel_rule_figure",
    "attention_map_figure",
    "branches_figure",
    "coordinate_attention_figure",
    "coordinate_profiles_figure",
    "channel_scaling_figure",
    "weight_across_photos_figure",
    "training_curve_figure",
    "row_comparison_figure",
    "layer_summary_figure",
    "short_layer_name",
    "extreme_channels_figure",
    "with_caption",
    "caption_lines",
    "pinned_maps_figure",
    "eca_neighbourhood_figure",
    "gate_over_photo_figure",
    "branch_sizes_figure",
]

_MARGIN = dict(l=10, r=10, t=40, b=10)
_LEGEND_BELOW_PX = 130  # a legend along the bottom: ticks, axis title and two legend rows at a slide's 18 px font


def with_caption(figure: go.Figure, caption: str) -> go.Figure:
    """`figure` with `caption` (module, model, photo, pixel or channel) as its title's subtitle: drawn on the
    page and in every PNG or SVG the camera button saves, so a slide says what it shows. The top margin
    grows by the caption's line; a figure without a title gets an empty one to carry it."""
    if not caption:
        return figure
    # a title's own second line ("<br><sup>...</sup>") joins the caption: a two-line title hung from the top
    # was cut off at the figure's edge
    title, *more = str(figure.layout.title.text or "").split("<br>")
    lines = [re.sub(r"</?sup>", "", line) for line in more] + caption_lines(caption)
    margin_top = figure.layout.margin.t if figure.layout.margin.t is not None else 40
    # the title hangs from the top of the figure (by default it sits mid-margin and its subtitle ran into the
    # plot), the caption's lines under it; the top margin holds both
    needed = 8 + 22 + 14 * len(lines) + (28 if figure.layout.annotations else 10)  # subplot titles
    extra = max(needed - margin_top, 0)
    figure.update_layout(
        title=dict(
            text=title,
            y=1,
            yref="container",
            yanchor="top",
            pad=dict(t=8),
            subtitle=dict(text="<br>".join(lines), font=dict(size=11, color="#555")),
        ),
        margin=dict(t=margin_top + extra),
    )
    if figure.layout.height:
        figure.update_layout(height=figure.layout.height + extra)
    return figure


def _display_width(text: str) -> int:
    """Columns `text` takes in a proportional font, roughly: a CJK character two, anything else one."""
    return sum(2 if "\u2e80" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" else 1 for ch in text)


def caption_lines(caption: str, width: int = 52) -> list[str]:
    """`caption`'s " · "-separated parts on lines of at most about `width` columns (Plotly does not wrap a
    subtitle; a phone's chart is about 55 columns of 11 px text wide). A part longer than a line keeps its
    own line."""
    lines: list[str] = []
    for part in caption.split(" · "):
        if lines and _display_width(lines[-1]) + 3 + _display_width(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def _labels(language: str) -> Callable[..., str]:
    """The figure label `key` of the [figures] catalog in `language`, filled with its values."""
    return lambda key, **values: translate(f"figures.{key}", language, **values)


def class_name(class_id: int, language: str = DEFAULT_LANGUAGE) -> str:
    """A CamVid class's name in `language` ("Pedestrian", "行人")."""
    return translate(f"classes.{CLASS_NAMES[class_id]}", language)


def _legend_ids(class_ids: Sequence[int] | None) -> list[int]:
    return (
        list(range(len(CLASS_NAMES)))
        if class_ids is None
        else sorted(set(int(c) for c in class_ids if 0 <= c < len(CLASS_NAMES)))
    )


def class_legend_html(class_ids: Sequence[int] | None = None, language: str = DEFAULT_LANGUAGE) -> str:
    """The class legend as HTML swatches that wrap onto more lines on a narrow screen (a figure's fixed row of
    labels collided on a phone)."""
    import html

    items = []
    for class_id in _legend_ids(class_ids):
        r, g, b = CLASS_COLOURS[class_id]
        items.append(
            f'<span style="display:inline-flex;align-items:center;gap:.35em;margin:0 .9em .3em 0;'
            f'white-space:nowrap"><span style="width:1em;height:1em;border:1px solid #000;'
            f'background:rgb({r},{g},{b})"></span>{html.escape(class_name(class_id, language))}</span>'
        )
    return f'<div style="display:flex;flex-wrap:wrap;font-size:.9rem">{"".join(items)}</div>'


def layer_weights_heatmap(
    layer_names: Sequence[str],
    weights: Sequence[np.ndarray],
    selected: str | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> go.Figure:
    """Layers x channels: each row one layer's channel weights (rows of different widths padded with gaps)."""
    width = max(len(w) for w in weights)
    grid = np.full((len(weights), width), np.nan, dtype=np.float32)
    for row, w in enumerate(weights):
        grid[row, : len(w)] = w
    t = _labels(language)
    labels = [f"{name} (C={len(w)})" for name, w in zip(layer_names, weights)]
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            y=labels,
            x=list(range(width)),
            colorscale=plotly_scale(CHANNEL_COLOURS),
            zmin=0,
            zmax=1,
            colorbar=dict(title=t("weight")),
            hovertemplate="%{y}<br>" + t("channel") + " %{x}: w = %{z:.3f}<extra></extra>",
        )
    )
    if selected in layer_names:
        row = list(layer_names).index(selected)
        fig.add_shape(
            type="rect",
            x0=-0.5,
            x1=len(weights[row]) - 0.5,
            y0=row - 0.5,
            y1=row + 0.5,
            line=dict(color="red", width=2),
        )
    fig.update_layout(
        title=t("layer_heatmap_title"),
        margin=_MARGIN,
        height=max(260, 28 * len(weights) + 90),
        xaxis_title=t("channel"),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def sorted_weights_figure(
    weights: np.ndarray, title: str, language: str = DEFAULT_LANGUAGE, unit_range: bool = True
) -> go.Figure:
    """One layer's channel weights, largest first. `unit_range`: the axis and colours run 0 to 1 (gates); else
    0 to the largest weight (softmax weights over C channels, about 1/C each, would be flat on a 0-1 axis)."""
    t = _labels(language)
    largest = float(np.nanmax(weights)) if np.isfinite(weights).any() else 1.0
    top = 1.0 if unit_range else max(largest, 1e-12)
    order = np.argsort(-weights)
    fig = go.Figure(
        go.Bar(
            x=list(range(len(weights))),
            y=weights[order],
            customdata=order,
            marker_color=weights[order],
            marker_colorscale=plotly_scale(CHANNEL_COLOURS),
            marker_cmin=0,
            marker_cmax=top,
            hovertemplate=t("rank") + " %{x}: " + t("channel") + " %{customdata}<br>w = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        margin=_MARGIN,
        height=320,
        xaxis_title=t("channels_sorted"),
        yaxis_title=t("weight") + " ω_c",  # the formulas' symbol
        yaxis_range=[0, top],
    )
    return fig


def kernel_figure(kernel: np.ndarray, language: str = DEFAULT_LANGUAGE, title: str | None = None) -> go.Figure:
    """An ECA layer's 1D kernel κ, one bar per channel offset (`title`: by default "the layer's 1D kernel")."""
    t = _labels(language)
    k = len(kernel)
    offsets = list(range(-(k // 2), k // 2 + 1))
    fig = go.Figure(
        go.Bar(
            x=offsets,
            y=kernel,
            marker_color=["#d62728" if v < 0 else "#1f77b4" for v in kernel],
            hovertemplate=t("offset") + " %{x}: %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or t("kernel_title", k=k),
        margin=_MARGIN,
        height=280,
        xaxis=dict(title=t("kernel_offset"), dtick=1),
        yaxis_title=t("weight"),
    )
    return fig


def feature_grid_figure(
    maps: Sequence[np.ndarray], titles: Sequence[str], columns: int = 4, colorscale: str = "Gray"
) -> go.Figure:
    """Small multiples of 2D maps (e.g. feature channels), each with its own colour range."""
    rows = max(1, math.ceil(len(maps) / columns))
    fig = make_subplots(
        rows=rows, cols=columns, subplot_titles=list(titles), horizontal_spacing=0.02, vertical_spacing=0.12
    )
    for i, m in enumerate(maps):
        fig.add_trace(
            go.Heatmap(
                z=m, colorscale=colorscale, showscale=False, hovertemplate="y %{y}, x %{x}: %{z:.3f}<extra></extra>"
            ),
            row=i // columns + 1,
            col=i % columns + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    aspect = maps[0].shape[0] / maps[0].shape[1] if maps else 0.75
    fig.update_layout(margin=dict(l=5, r=5, t=40, b=5), height=int(rows * (900 / columns) * aspect) + 60)
    return fig


def kernel_rule_figure(
    rules: dict[str, Callable[[int], int]],
    gamma: float,
    b: float,
    released: dict[str, list[tuple[int, int]]],
    model_layers: Sequence[tuple[str, int, int]] = (),
    c_min: int = 8,
    c_max: int = 4096,
    language: str = DEFAULT_LANGUAGE,
) -> go.Figure:
    """k against C (log2 axis) for each rule at (gamma, b); released per-stage lists; the model's own layers."""
    t = _labels(language)
    channels = np.unique(np.round(np.logspace(np.log2(c_min), np.log2(c_max), 400, base=2)).astype(int))
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    # rules that agree would hide each other: each line is drawn a little apart (k + offset), the hover and the
    # table give the exact k
    offsets = np.linspace(-0.12, 0.12, len(rules)) if len(rules) > 1 else [0.0]
    for (name, rule), dash, offset in zip(rules.items(), dashes, offsets):
        ks = np.array([rule(int(c), gamma, b) for c in channels])
        fig.add_trace(
            go.Scatter(
                x=channels,
                y=ks + offset,
                customdata=ks,
                name=name,
                mode="lines",
                line=dict(shape="hv", dash=dash, width=3),
                hovertemplate="C = %{x}<br>k = %{customdata}<extra>" + name + "</extra>",
            )
        )
    unrounded = [kernel_t(int(c), gamma, b) for c in channels]
    fig.add_trace(
        go.Scatter(
            x=channels,
            y=unrounded,
            name=t("kernel_t"),
            mode="lines",
            line=dict(color="grey", width=1),
            hovertemplate="C = %{x}<br>t = %{y:.3f}<extra></extra>",
        )
    )
    symbols = ["diamond", "square", "triangle-up"]
    for (name, stages), symbol in zip(released.items(), symbols):
        fig.add_trace(
            go.Scatter(
                x=[c for c, _ in stages],
                y=[k for _, k in stages],
                name=t("released", name=name),
                mode="markers",
                marker=dict(size=13, symbol=symbol, line=dict(width=1, color="black")),
                hovertemplate="C = %{x}<br>k = %{y}<extra>" + name + "</extra>",
            )
        )
    if model_layers:
        fig.add_trace(
            go.Scatter(
                x=[c for _, c, _ in model_layers],
                y=[k for _, _, k in model_layers],
                name=t("model_eca_layers"),
                mode="markers",
                marker=dict(size=11, color="red", symbol="x"),
                text=[n for n, _, _ in model_layers],
                hovertemplate="%{text}<br>C = %{x}, k = %{y}<extra></extra>",
            )
        )
    fig.update_layout(
        title=dict(
            text=t("kernel_rule_title", gamma=f"{gamma:g}", b=f"{b:g}")
            + "<br><sup>"
            + t("kernel_rule_subtitle")
            + "</sup>"
        ),
        margin=dict(l=10, r=10, t=60, b=10),
        height=480,
        xaxis=dict(
            type="log",
            title=t("channels_log"),
            tickvals=[2**i for i in range(3, 13)],
            ticktext=[str(2**i) for i in range(3, 13)],
        ),
        yaxis=dict(title="k", dtick=2),
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


def attention_map_figure(
    values: np.ndarray,
    title: str,
    marker: tuple[int, int] | None = None,
    top: Sequence[tuple[int, int]] = (),
    zrange: tuple[float, float] | None = None,
    colour_title: str = "S",
    language: str = DEFAULT_LANGUAGE,
) -> go.Figure:
    """A feature-resolution map (h, w) with exact values on hover; marker / top as (row, col).

    The axes hold the whole grid (-0.5 .. n - 0.5, so a marker in row 0 or the last column is not cut),
    the ranks are the markers' hover text (labels on the map overlapped at neighbouring cells), the
    colour bar sits against the map, and `zrange` fixes the colour range (a scale shared with other maps).
    Built from one dict (one validation pass, not one per update call): it is redrawn on every click."""
    t = _labels(language)
    height, width = values.shape[-2:]
    heat = dict(
        type="heatmap",
        z=values,
        colorscale=plotly_scale(),
        colorbar=dict(title=dict(text=colour_title, side="right"), thickness=14, x=1.0, xpad=4),
        hovertemplate=t("row") + " %{y}, " + t("col") + " %{x}<br>%{z:.5f}<extra></extra>",
    )
    if zrange is not None:
        heat.update(zmin=zrange[0], zmax=zrange[1])
    data = [heat]
    if top:
        data.append(
            dict(
                type="scatter",
                x=[c for _, c in top],
                y=[r for r, _ in top],
                mode="markers",
                text=[t("top", rank=i + 1) for i in range(len(top))],
                name=t("top_attended"),
                hovertemplate="%{text}: " + t("row") + " %{y}, " + t("col") + " %{x}<extra></extra>",
                marker=dict(size=10, color="rgba(0,0,0,0)", line=dict(color="cyan", width=2)),
            )
        )
    if marker is not None:
        data.append(
            dict(
                type="scatter",
                x=[marker[1]],
                y=[marker[0]],
                mode="markers",
                name=t("chosen_pixel"),
                hovertemplate=t("chosen") + ": " + t("row") + " %{y}, " + t("col") + " %{x}<extra></extra>",
                marker=dict(size=14, symbol="x", color="lime", line=dict(color="black", width=1)),
            )
        )
    # a fixed size that fits the map's aspect: the colour bar then sits against the map (a stretched figure
    # centred the constrained map and left the bar at the far edge); shown with width="content"
    plot_height = 290
    layout = dict(
        title=dict(text=title),
        margin=dict(l=50, r=10, t=40, b=40),
        height=plot_height + 80,
        width=max(int(plot_height * width / height) + 150, 360),
        showlegend=False,
        xaxis=dict(range=[-0.5, width - 0.5], constrain="domain", title=t("col")),
        yaxis=dict(range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain", title=t("row")),
    )
    return go.Figure(dict(data=data, layout=layout))


def branches_figure(
    avg_branch: np.ndarray, max_branch: np.ndarray, weights: np.ndarray, title: str, language: str = DEFAULT_LANGUAGE
) -> go.Figure:
    """Per channel (sorted by final weight): MLP(avg) and MLP(max) logits, and ω = sigmoid(sum)."""
    t = _labels(language)
    order = np.argsort(-weights)
    x = list(range(len(weights)))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=x,
            y=avg_branch[order],
            name="MLP(AvgPool F)",
            customdata=order,
            marker_color="#1f77b4",
            hovertemplate=t("channel") + " %{customdata}<br>" + t("avg_branch") + " %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=max_branch[order],
            name="MLP(MaxPool F)",
            customdata=order,
            marker_color="#ff7f0e",
            hovertemplate=t("channel") + " %{customdata}<br>" + t("max_branch") + " %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=weights[order],
            name="ω = σ(avg + max)",
            mode="lines",
            customdata=order,
            line=dict(color="black", width=2),
            hovertemplate=t("channel") + " %{customdata}<br>ω = %{y:.4f}<extra></extra>",
        ),
        secondary_y=True,
    )
    # the legend in one or two rows along the figure's bottom edge (the container's, not the plot's: placed
    # under the plot in its fraction it ran into the axis title and off the edge of an exported PNG at a
    # slide's font size), in a bottom margin that holds the ticks, the axis title and both rows
    fig.update_layout(
        title=title,
        barmode="relative",
        margin=dict(l=70, r=70, t=40, b=_LEGEND_BELOW_PX),
        height=380 + _LEGEND_BELOW_PX - _MARGIN["b"],
        xaxis_title=t("channels_sorted"),
        legend=dict(orientation="h", x=0.01, xanchor="left", xref="container", y=0, yanchor="bottom", yref="container"),
    )
    fig.update_yaxes(title_text=t("branch_logit"), secondary_y=False)
    # ticks of its own (0, 0.25, ... 1), not ones aligned to the logit axis's grid (0.088, 0.686, ...)
    fig.update_yaxes(
        title_text=t("weight") + " ω",
        range=[0, 1],
        tickmode="linear",
        tick0=0,
        dtick=0.25,
        showgrid=False,
        secondary_y=True,
    )
    return fig


def coordinate_attention_figure(
    height_weights: np.ndarray, width_weights: np.ndarray, title: str, language: str = DEFAULT_LANGUAGE
) -> go.Figure:
    """Coordinate attention: a_h (C x H) above a_w (C x W), one colour bar: stacked, so that it fits a narrow
    column (side by side, the titles and ticks overlapped on the Compare page)."""
    t = _labels(language)
    fig = make_subplots(rows=2, cols=1, subplot_titles=[t("ca_heights"), t("ca_widths")], vertical_spacing=0.16)
    fig.add_trace(
        go.Heatmap(
            z=height_weights,
            coloraxis="coloraxis",
            hovertemplate=t("channel") + " %{y}, " + t("row") + " %{x}: %{z:.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Heatmap(
            z=width_weights,
            coloraxis="coloraxis",
            hovertemplate=t("channel") + " %{y}, " + t("column") + " %{x}: %{z:.3f}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_xaxes(title_text=t("row") + " h", row=1, col=1)
    fig.update_xaxes(title_text=t("column") + " w", row=2, col=1)
    fig.update_yaxes(title_text=t("channel"), tickformat="d")
    fig.update_layout(
        title=dict(text=title, y=0.98),
        margin=dict(l=10, r=10, t=70, b=10),
        height=480,
        coloraxis=dict(colorscale=plotly_scale(CHANNEL_COLOURS), cmin=0, cmax=1, colorbar=dict(thickness=12, xpad=4)),
    )
    return fig


def branch_weights_figure(weights: np.ndarray, title: str, language: str = DEFAULT_LANGUAGE) -> go.Figure:
    """Softmax weights over K branches per channel (SKNet, ResNeSt, PSA): branches x channels, 0 to 1; each
    column sums to 1, so a column all of one colour means the branches share that channel equally."""
    t = _labels(language)
    branches, channels = weights.shape
    fig = go.Figure(
        go.Heatmap(
            z=weights,
            x=list(range(channels)),
            y=[t("branch", k=k) for k in range(branches)],
            colorscale=plotly_scale(CHANNEL_COLOURS),
            zmin=0,
            zmax=1,
            colorbar=dict(title=dict(text=t("weight"), side="right"), thickness=12, xpad=4),
            hovertemplate="%{y}, " + t("channel") + " %{x}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=dict(text=title, y=0.98),
        margin=_MARGIN,
        height=max(220, 36 * branches + 150),
        xaxis_title=t("channel"),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def gate_planes_figure(planes: Sequence, title: str, language: str = DEFAULT_LANGUAGE) -> go.Figure:
    """Planes of a gate or of softmax weights (attnviz.analysis.views.GatePlane) side by side on one colour
    scale (the range of all of them, shown by one colour bar), each titled by what it is; axes by name."""
    t = _labels(language)

    def plane_title(plane) -> str:
        if plane.descriptor is not None:
            return t("gate_descriptor", k=plane.descriptor)
        return t("gate_mean_over", axis=plane.mean_over) if plane.mean_over else ""

    if not planes:
        raise ValueError("no plane to draw")
    finite = np.concatenate([p.values[np.isfinite(p.values)].ravel() for p in planes])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    columns = min(len(planes), 4)
    rows = math.ceil(len(planes) / columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[plane_title(p) for p in planes],
        horizontal_spacing=0.06,
        vertical_spacing=0.12,
    )
    for index, plane in enumerate(planes):
        row, col = divmod(index, columns)
        y_name, x_name = plane.axes
        fig.add_trace(
            go.Heatmap(
                z=plane.values,
                coloraxis="coloraxis",
                hovertemplate=(f"{y_name} %{{y}}, {x_name} %{{x}}: %{{z:.4f}}<extra></extra>"),
            ),
            row=row + 1,
            col=col + 1,
        )
        fig.update_xaxes(title_text=t("feature_axis", axis=x_name), row=row + 1, col=col + 1)
        fig.update_yaxes(title_text=t("feature_axis", axis=y_name), autorange="reversed", row=row + 1, col=col + 1)
    fig.update_layout(
        title=dict(text=title, y=0.98),
        margin=dict(l=10, r=10, t=80, b=10),
        height=170 + 230 * rows,
        coloraxis=dict(
            colorscale=plotly_scale(),
            cmin=low,
            cmax=high,
            colorbar=dict(title=dict(text=t("weight"), side="right"), thickness=12, xpad=4),
        ),
    )
    return fig


def coordinate_profiles_figure(
    height_weights: np.ndarray,
    width_weights: np.ndarray,
    cell: tuple[int, int],
    title: str,
    language: str = DEFAULT_LANGUAGE,
) -> go.Figure:
    """One channel's a_h (one weight per feature row) and a_w (one per column) as profiles, the chosen cell's
    row and column marked."""
    t = _labels(language)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=[t("ca_row_profile"), t("ca_column_profile")], horizontal_spacing=0.1
    )
    for col, (values, mark, axis) in enumerate(
        ((height_weights, cell[0], t("row")), (width_weights, cell[1], t("column"))), 1
    ):
        fig.add_trace(
            go.Scatter(
                x=list(range(len(values))),
                y=values,
                mode="lines+markers",
                marker=dict(size=4),
                hovertemplate=axis + " %{x}: %{y:.4f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=[mark],
                y=[values[mark]],
                mode="markers",
                showlegend=False,
                marker=dict(size=12, symbol="x", color="lime", line=dict(color="black", width=1)),
                hovertemplate=t("chosen") + " " + axis + " %{x}: %{y:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text=t("feature_axis", axis=axis), tickformat="d", row=1, col=col)
    fig.update_yaxes(range=[0, 1], title_text=t("weight"), row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=60, b=10), height=300)
    return fig


def channel_scaling_figure(
    before: np.ndarray, after: np.ndarray, weight: float, channel: int, language: str = DEFAULT_LANGUAGE
) -> go.Figure:
    """x_c beside ω_c · x_c on ONE colour scale, so that the weight's effect is what changes between them."""
    t = _labels(language)
    low, high = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.04,
        subplot_titles=[t("scaling_before", channel=channel), f"ω·x = {weight:.3f} · x_{channel}"],
    )
    for col, values in enumerate((before, after), 1):
        fig.add_trace(
            go.Heatmap(
                z=values,
                coloraxis="coloraxis",
                hovertemplate=t("row") + " %{y}, " + t("col") + " %{x}: %{z:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    fig.update_layout(
        coloraxis=dict(colorscale="Gray", cmin=low, cmax=high, colorbar=dict(thickness=12, xpad=4)),
        margin=dict(l=5, r=5, t=40, b=5),
        height=300,
    )
    return fig


def weight_across_photos_figure(
    weights: dict[str, float], channel: int, layer: str, language: str = DEFAULT_LANGUAGE
) -> go.Figure:
    """One channel's weight on each of a few photos: channel attention depends on the photo."""
    names = list(weights)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[weights[n] for n in names],
            text=[f"{weights[n]:.3f}" for n in names],
            textposition="outside",
            hovertemplate="%{x}: ω = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=_labels(language)("across_photos_title", channel=channel, layer=layer, count=len(names)),
        yaxis=dict(range=[0, 1.1], title="ω"),
        margin=_MARGIN,
        height=280,
    )
    return fig


def training_curve_figure(history: Sequence[dict], title: str = "", language: str = DEFAULT_LANGUAGE) -> go.Figure:
    t = _labels(language)
    epochs = [h["epoch"] for h in history]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=epochs, y=[h["loss"] for h in history], name=t("train_loss"), mode="lines"))
    val = [(h["epoch"], h["val_miou"]) for h in history if "val_miou" in h]
    if val:
        fig.add_trace(
            go.Scatter(x=[e for e, _ in val], y=[v for _, v in val], name=t("val_miou"), mode="lines+markers"),
            secondary_y=True,
        )
    fig.update_layout(
        title=title or t("training"), margin=_MARGIN, height=300, xaxis=dict(title=t("epoch"), tickformat="d")
    )
    fig.update_yaxes(title_text=t("loss"), secondary_y=False)
    fig.update_yaxes(title_text="mIoU", range=[0, 1], secondary_y=True)
    return fig


def row_comparison_figure(rows: dict[str, np.ndarray], title: str, language: str = DEFAULT_LANGUAGE) -> go.Figure:
    """Several rows of a channel map over the same channel axis, as grouped bars."""
    t = _labels(language)
    fig = go.Figure()
    for name, values in rows.items():
        fig.add_trace(
            go.Bar(
                x=list(range(len(values))),
                y=values,
                name=name,
                hovertemplate=t("channel") + " %{x}: %{y:.4f}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        title=title,
        barmode="group",
        margin=_MARGIN,
        height=320,
        xaxis_title=t("channel") + " j",
        yaxis_title="X[c, j]",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def short_layer_name(name: str) -> str:
    """'backbone.layer3.1.attn.channel' -> 'L3.1'."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("layer") and i + 1 < len(parts):
            return f"L{part[5:]}.{parts[i + 1]}"
    return name


def layer_summary_figure(
    layer_names: Sequence[str], weights: Sequence[np.ndarray], title: str = "", language: str = DEFAULT_LANGUAGE
) -> go.Figure:
    """One box per layer: the distribution of its channel weights (compact, for side-by-side views)."""
    fig = go.Figure()
    for name, w in zip(layer_names, weights):
        fig.add_trace(
            go.Box(
                y=w,
                name=short_layer_name(name),
                boxpoints=False,
                marker_color="#2a788e",
                hovertemplate=f"{name}<br>%{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        margin=dict(l=10, r=10, t=40, b=10),
        height=260,
        showlegend=False,
        yaxis=dict(title=_labels(language)("channel_weight"), range=[0, 1]),
    )
    return fig


def extreme_channels_figure(features: np.ndarray, weights: np.ndarray, count: int) -> go.Figure:
    """Feature maps (C, h, w) of the `count` most (top row) and least (bottom row) weighted channels."""
    order = np.argsort(-weights)
    chosen = list(order[:count]) + list(order[-count:])
    return feature_grid_figure(
        [feature_to_image(features[c]) for c in chosen], [f"#{c} w={weights[c]:.2f}" for c in chosen], columns=count
    )


def _data_url(image: np.ndarray, width: int) -> str:
    """An RGB uint8 image scaled to `width` pixels, as a PNG data URL (a slide's raster panel)."""
    import base64

    import cv2

    height = max(1, round(image.shape[0] * width / image.shape[1]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("the panel could not be encoded")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _range_text(low: float, high: float) -> str:
    return f"{low:.2g} – {high:.3g}"


def pinned_maps_figure(
    rows: Sequence[tuple[str, np.ndarray, Sequence[tuple[str, np.ndarray, tuple[float, float]]]]],
    opacity: float = 0.75,
    colour_title: str = "S",
    panel_width: int = 320,
    language: str = DEFAULT_LANGUAGE,
    scale: str = "shared",
) -> go.Figure:
    """Pinned points as one multi-panel figure, for a slide: one row per model or photo shown side by side,
    one column per pin. `rows`: (row title, photo (H, W, 3), [(panel title, map (h, w), pin (x, y) in the
    photo)]). Each panel is the photo with its map laid over it as the live canvas draws it (blend_heatmap: colour
    and opacity grow with the value, so the photo shows where attention is low) and the pin as a green cross; the
    panels are rasters (PNG) inside the figure, so the SVG stays small.

    `scale` is the Position page's choice, as its canvas applies it (attention_canvas.js, drawPins): "shared", every
    map on ONE range (from 0, or the lowest value when below 0, to the highest) with its colour bar, so that panels
    compare; "own", each map on its own range (its lowest to its highest value), stated under its title, the bar
    running from each map's lowest to its highest. Each panel's plot is exactly the photo's size at `panel_width`,
    hung from its title (no gap under a title)."""
    if scale not in ("shared", "own"):
        raise ValueError(f"unknown colour scale {scale!r}")
    if not rows or not any(panels for _, _, panels in rows):
        raise ValueError("no pinned maps to draw")
    t = _labels(language)
    values = [m for _, _, panels in rows for _, m, _ in panels]
    low, high = min(0.0, min(float(np.nanmin(m)) for m in values)), max(float(np.nanmax(m)) for m in values)
    high = high if high > low else low + 1.0
    columns = max(len(panels) for _, _, panels in rows)
    titles = []
    for row_title, _, panels in rows:
        for column in range(columns):
            if column >= len(panels):
                titles.append("")
                continue
            lines = ([row_title] if row_title else []) + [panels[column][0]]
            if scale == "own":
                own = panels[column][1]
                lines.append(t("pins_own_range", name=colour_title, range=_range_text(*_own_range(own))))
            titles.append("<br>".join(lines))
    # the geometry in pixels: each panel's plot `panel_width` wide and the photo's height, the title's lines
    # (12 px font) in the space above it (the top margin for the first row, the spacing between rows after)
    aspect = rows[0][1].shape[0] / rows[0][1].shape[1]
    panel_height = round(panel_width * aspect)
    gap, bar_space = 12, 110
    title_lines = (1 if any(title for title, _, _ in rows) else 0) + 1 + (scale == "own")
    title_space = 16 * title_lines + 6
    plot_width = columns * panel_width + (columns - 1) * gap
    plot_height = len(rows) * panel_height + (len(rows) - 1) * title_space
    fig = make_subplots(
        rows=len(rows),
        cols=columns,
        subplot_titles=titles,
        horizontal_spacing=gap / plot_width if columns > 1 else 0.0,
        vertical_spacing=title_space / plot_height if len(rows) > 1 else 0.0,
    )
    fig.update_annotations(font_size=12)
    for r, (_, photo, panels) in enumerate(rows, 1):
        for c, (_, values_map, (x, y)) in enumerate(panels, 1):
            vmin, vmax = (low, high) if scale == "shared" else _own_range(values_map)
            blended = draw_markers(
                blend_heatmap(photo, values_map, opacity, vmin=vmin, vmax=vmax),
                [(x, y)],
                colour=(0, 255, 0),
                radius=max(6, photo.shape[1] // 60),
                cross=True,
            )
            fig.add_trace(go.Image(source=_data_url(blended, panel_width), hoverinfo="skip"), row=r, col=c)
    # the colour bar: a transparent two-value heatmap on the colour axis every panel was drawn with
    bar_low, bar_high = (low, high) if scale == "shared" else (0.0, 1.0)
    fig.add_trace(
        go.Heatmap(z=[[bar_low, bar_high]], coloraxis="coloraxis", opacity=0, hoverinfo="skip", showscale=True),
        row=1,
        col=1,
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, constraintoward="top")
    colorbar = dict(title=dict(text=colour_title, side="right"), thickness=14)
    if scale == "own":
        colorbar.update(
            title=dict(text=t("pins_own_bar", name=colour_title), side="right"),
            tickvals=[0.0, 1.0],
            ticktext=[t("pins_own_low"), t("pins_own_high")],
        )
    top = 10 + title_space
    fig.update_layout(
        coloraxis=dict(colorscale=plotly_scale(), cmin=bar_low, cmax=bar_high, colorbar=colorbar),
        margin=dict(l=5, r=bar_space, t=top, b=5),
        width=plot_width + 5 + bar_space,
        height=plot_height + top + 5,
        showlegend=False,
    )
    return fig


def _own_range(values: np.ndarray) -> tuple[float, float]:
    """A map's own colour range, as the live canvas's "each map its own": its lowest to its highest value."""
    return float(np.nanmin(values)), float(np.nanmax(values))


NEIGHBOUR = "#ff7f0e"  # the chosen channel's k neighbours (the terms of its sum)
OTHER_CHANNELS = "#c7c7c7"


def _neighbourhood_window(channels: int, channel: int, half: int, around: int) -> np.ndarray:
    """The channel indices an ECA neighbourhood figure shows: `around` on each side of `channel` within the
    layer, widened to the whole neighbourhood where it reaches into the padding (indices below 0 or from C)."""
    low = min(max(channel - around, 0), channel - half)
    high = max(min(channel + around, channels - 1), channel + half)
    return np.arange(low, high + 1)


def eca_neighbourhood_figure(
    neighbourhoods, channel: int, title: str, language: str = DEFAULT_LANGUAGE, around: int | None = None
) -> go.Figure:
    """How ECA's weight ω_c comes from channel c's k neighbours (Wang et al., CVPR 2020, eq. 4), in four rows
    over the same channel axis, in the channels' own order (sorting would scatter a neighbourhood): the
    averages y, the kernel κ laid at c, their products κ_j · y_{c+j}, and every channel's ω, with c's
    neighbourhood shaded through all four. `neighbourhoods`: attnviz.analysis.views.EcaNeighbourhoods. Beyond
    either end of the channel axis the averages are the padding's zeros, drawn as empty places. Hover a weight
    for its sum and σ."""
    t = _labels(language)
    offsets, half = neighbourhoods.offsets, len(neighbourhoods.offsets) // 2
    channels = len(neighbourhoods.sums)
    around = max(3 * len(offsets), 16) if around is None else around
    shown = _neighbourhood_window(channels, channel, half, around)
    inside = (shown >= 0) & (shown < channels)
    pooled = np.zeros(len(shown))
    pooled[inside] = neighbourhoods.values[shown[inside], half]  # y_c' is the middle of c's own window
    weights = np.full(len(shown), np.nan)
    weights[inside] = neighbourhoods.weights[shown[inside]]
    sums = np.full(len(shown), np.nan)
    sums[inside] = neighbourhoods.sums[shown[inside]]
    terms = channel + offsets
    total, weight = float(neighbourhoods.sums[channel]), float(neighbourhoods.weights[channel])
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=[
            t("eca_pooled"),
            t("eca_kernel_at", channel=channel),
            t("eca_products", total=total),
            t("eca_weights", channel=channel, total=total, weight=weight),
        ],
    )
    is_term = np.isin(shown, terms)
    fig.add_trace(
        go.Bar(
            x=shown,
            y=pooled,
            marker_color=np.where(is_term, NEIGHBOUR, OTHER_CHANNELS).tolist(),
            hovertemplate=t("channel") + " %{x}: y = %{y:.4f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=terms,
            y=neighbourhoods.kernel,
            customdata=offsets,
            marker_color=["#d62728" if v < 0 else "#1f77b4" for v in neighbourhoods.kernel],
            hovertemplate="κ<sub>%{customdata}</sub> = %{y:.4f}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=terms,
            y=neighbourhoods.products[channel],
            customdata=np.stack([offsets, neighbourhoods.kernel, neighbourhoods.values[channel]], 1),
            marker_color=NEIGHBOUR,
            hovertemplate="κ<sub>%{customdata[0]}</sub> · y<sub>%{x}</sub> = %{customdata[1]:.4f} · "
            "%{customdata[2]:.4f} = %{y:.4f}<extra></extra>",
        ),
        row=3,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=shown,
            y=weights,
            customdata=sums,
            marker_color=np.where(shown == channel, NEIGHBOUR, "#2a788e").tolist(),
            hovertemplate="ω<sub>%{x}</sub> = σ(%{customdata:.3f}) = %{y:.4f}<extra></extra>",
        ),
        row=4,
        col=1,
    )
    fig.add_vrect(x0=channel - half - 0.5, x1=channel + half + 0.5, fillcolor=NEIGHBOUR, opacity=0.12, line_width=0)
    fig.update_annotations(font_size=12)
    fig.update_xaxes(range=[shown[0] - 0.5, shown[-1] + 0.5])
    fig.update_xaxes(title_text=t("channel") + " c", row=4, col=1)
    fig.update_yaxes(title_text="y", row=1, col=1)
    fig.update_yaxes(title_text="κ", row=2, col=1)
    fig.update_yaxes(title_text="κ·y", row=3, col=1)
    fig.update_yaxes(title_text="ω_c", range=[0, 1], row=4, col=1)
    fig.update_layout(title=title, margin=dict(l=50, r=10, t=60, b=40), height=620, showlegend=False, bargap=0.15)
    return fig


def gate_over_photo_figure(
    photo: np.ndarray,
    gate: np.ndarray,
    title: str,
    colour_title: str = "M_s",
    opacity: float = 0.75,
    panel_width: int = 640,
    language: str = DEFAULT_LANGUAGE,
) -> go.Figure:
    """A spatial gate (h, w) laid over the photo (H, W, 3) as the live canvas lays a map
    (attnviz.viz.overlays.blend_heatmap), on the gate's OWN range, lowest to highest, with a colour bar that
    says so: a gate of 0.978 to 1.000 then shows where it is lower, and the bar's ticks how narrow its range
    is. The first trace is an invisible heatmap over the photo at the gate's resolution, for the colour bar and
    the exact value on hover; the photo with the gate is a raster under it."""
    t = _labels(language)
    low, high = float(np.nanmin(gate)), float(np.nanmax(gate))
    blended = blend_heatmap(photo, gate, opacity, vmin=low, vmax=high)
    width = min(panel_width, photo.shape[1])
    height = max(1, round(photo.shape[0] * width / photo.shape[1]))
    rows, cols = gate.shape[-2:]
    heat = go.Heatmap(
        z=gate,
        x=(np.arange(cols) + 0.5) * width / cols - 0.5,
        y=(np.arange(rows) + 0.5) * height / rows - 0.5,
        customdata=np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), -1),
        colorscale=plotly_scale(),
        zmin=low,
        zmax=high if high > low else low + 1e-12,
        opacity=0,
        colorbar=dict(title=dict(text=colour_title, side="right"), thickness=14, xpad=4, tickformat=".4f"),
        hovertemplate=t("row")
        + " %{customdata[1]}, "
        + t("col")
        + " %{customdata[0]}<br>"
        + colour_title
        + " = %{z:.5f}<extra></extra>",
    )
    fig = go.Figure([heat, go.Image(source=_data_url(blended, width), hoverinfo="skip")])
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(
        title=title, margin=dict(l=5, r=10, t=50, b=5), width=width + 110, height=height + 70, showlegend=False
    )
    return fig


def branch_sizes_figure(sizes: dict[str, float], title: str, language: str = DEFAULT_LANGUAGE) -> go.Figure:
    """The size of each attention branch before a sum, relative to the features it is added to (DANet's
    ‖α D Sᵀ‖ / ‖A‖ and ‖β X A‖ / ‖A‖, attnviz.capture.records.branch_ratios), one horizontal bar each, with its
    number."""
    names = list(sizes)
    values = [sizes[n] for n in names]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            text=[f"{v:.3f}" for v in values],
            textposition="outside",
            marker_color=["#1f77b4", "#ff7f0e", "#2ca02c"][: len(names)] or None,
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        margin=dict(l=10, r=30, t=50, b=40),
        height=120 + 45 * len(names),
        xaxis=dict(title=_labels(language)("branch_over_input"), range=[0, max(values + [0.05]) * 1.25]),
        yaxis=dict(autorange="reversed"),
    )
    return fig
