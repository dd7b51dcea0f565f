import numpy as np
import torch

from attnviz.capture import capture
from attnviz.modules.eca import KERNEL_RULES, OFFICIAL_RELEASED_KERNELS, eca_kernel_size
from attnviz.modules.flexible import FlexibleChannelAttention
from attnviz.viz.figures import branches_figure, kernel_rule_figure, layer_weights_heatmap, sorted_weights_figure
from attnviz.viz.overlays import blend_heatmap, blend_labels


def test_kernel_rule_figure_plots_the_rules_themselves():
    fig = kernel_rule_figure(KERNEL_RULES, 2, 1, OFFICIAL_RELEASED_KERNELS, [("layer4.1.attn", 128, 5)])
    official = next(t for t in fig.data if t.name == "paper's code = nearest odd, ties up")
    for c, k in zip(official.x, official.customdata):  # the exact k (the line is drawn a little apart)
        assert k == eca_kernel_size(int(c))
    lines = [t for t in fig.data if t.mode == "lines" and t.customdata is not None]
    assert len({round(float(t.y[0] - t.customdata[0]), 6) for t in lines}) == len(lines)  # no line hides another
    assert all(abs(float(t.y[0] - t.customdata[0])) <= 0.125 for t in lines)
    released = next(t for t in fig.data if t.name == "released ECA-ResNet50")
    assert list(zip(released.x, released.y)) == OFFICIAL_RELEASED_KERNELS["ECA-ResNet50"]
    assert fig.data[-1].text == ("layer4.1.attn",)


def test_weights_figures_sort_and_pad():
    w = np.array([0.2, 0.9, 0.5])
    fig = sorted_weights_figure(w, "t")
    assert list(fig.data[0].y) == [0.9, 0.5, 0.2] and list(fig.data[0].customdata) == [1, 2, 0]
    heat = layer_weights_heatmap(["a", "b"], [w, np.array([0.1])])
    z = np.array(heat.data[0].z, dtype=float)
    assert z.shape == (2, 3) and np.isnan(z[1, 1:]).all()


def test_branches_figure_and_keep_features():
    module = FlexibleChannelAttention(16, reduction=4)
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad(), capture(module, keep_features=True) as rec:
        module(x)
    r = rec["FlexibleChannelAttention"]
    torch.testing.assert_close(r.features, x)
    fig = branches_figure(r.parts["avg_branch"][0].numpy(), r.parts["max_branch"][0].numpy(), r.weights[0].numpy(), "t")
    avg, mx, w = fig.data
    np.testing.assert_allclose(1 / (1 + np.exp(-(np.array(avg.y) + np.array(mx.y)))), w.y, rtol=1e-5)
    assert (fig.layout.yaxis2.tick0, fig.layout.yaxis2.dtick) == (0, 0.25)  # the weight axis reads 0, 0.25, ... 1
    with torch.no_grad(), capture(module) as rec:
        module(x)
    assert rec["FlexibleChannelAttention"].features is None


def test_overlays():
    image = np.full((40, 60, 3), 100, np.uint8)
    values = np.zeros((4, 6))
    values[0:3, 1:4] = 1.0  # a 3 x 3 block of cells: its middle cell keeps the block's value through the smoothing
    out = blend_heatmap(image, values, opacity=0.5)
    # the middle cell: the photo under inferno's top colour (#fcffa4) at opacity 0.5 * 1 (stored as 128 / 255: at
    # most 0.3 off on a colour, and the result rounded); where the map is 0, the photo as it was
    np.testing.assert_allclose(out[15, 25], 100 * 0.5 + np.array([252, 255, 164]) * 0.5, atol=0.3 + 0.5)
    assert (out[0, 59] == 100).all()
    label = np.full((40, 60), 11, np.uint8)
    label[:, :30] = 3
    blended = blend_labels(image, label, opacity=1.0)
    assert (blended[0, 0] == [128, 64, 128]).all() and (blended[0, 59] == 100).all()


def test_coordinate_attention_figure_stacks_both_profiles_on_one_scale():
    from attnviz.viz.figures import coordinate_attention_figure

    a_h, a_w = np.random.default_rng(0).random((8, 5)), np.random.default_rng(1).random((8, 7))
    fig = coordinate_attention_figure(a_h, a_w, "layer")
    assert [np.shape(t.z) for t in fig.data] == [(8, 5), (8, 7)]
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}  # one colour bar, 0..1
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1]  # a_h above a_w, not beside it


def test_class_names_in_every_language_and_a_legend_that_wraps():
    from attnviz.data.camvid import CLASS_NAMES
    from attnviz.viz.figures import class_legend_html, class_name

    assert [class_name(i) for i in range(len(CLASS_NAMES))] == list(CLASS_NAMES)
    assert class_name(CLASS_NAMES.index("Pedestrian"), "zh") == "行人"
    legend = class_legend_html([9, 3, 3, 99], "zh")
    assert "flex-wrap:wrap" in legend and legend.count("nowrap") == 2  # Road and Pedestrian, once each
    assert legend.index("道路") < legend.index("行人")


def test_a_caption_wraps_at_its_separators_and_grows_the_figure():
    import plotly.graph_objects as go

    from attnviz.viz.figures import caption_lines, with_caption

    caption = "SE: Squeeze-and-Excitation · model fcn-se · photo 0001TP_008550 · layer backbone.layer4.1.attn"
    lines = caption_lines(caption)
    assert " · ".join(lines) == caption and len(lines) == 2 and all(len(line) <= 52 for line in lines)
    assert caption_lines("压缩-激励（SE）通道注意力 · 模型 fcn-se · 照片 0001TP_008550") == [
        "压缩-激励（SE）通道注意力 · 模型 fcn-se",
        "照片 0001TP_008550",
    ]  # a CJK character counts two
    figure = with_caption(go.Figure(layout=dict(height=300, margin=dict(t=40))), caption)
    assert figure.layout.title.subtitle.text == "<br>".join(lines)
    assert figure.layout.title.yref == "container" and figure.layout.title.yanchor == "top"
    assert figure.layout.margin.t == 8 + 22 + 14 * 2 + 10  # title, two caption lines, a gap: all in the margin
    assert figure.layout.height == 300 + figure.layout.margin.t - 40


def test_a_titles_second_line_joins_the_caption():
    import plotly.graph_objects as go

    from attnviz.viz.figures import with_caption

    figure = with_caption(
        go.Figure(layout=dict(title=dict(text="k against C<br><sup>lines apart</sup>"))), "ECA · model m"
    )
    assert figure.layout.title.text == "k against C"
    assert figure.layout.title.subtitle.text == "lines apart<br>ECA · model m"


def test_branch_weights_and_gate_planes_figures_hold_the_values_on_one_scale():
    from attnviz.analysis.views import GatePlane
    from attnviz.viz.figures import branch_weights_figure, gate_planes_figure, sorted_weights_figure

    weights = np.array([[0.2, 0.9, 0.5], [0.8, 0.1, 0.5]])
    fig = branch_weights_figure(weights, "sk", language="zh")
    assert np.array_equal(np.asarray(fig.data[0].z), weights) and list(fig.data[0].y) == ["分支 0", "分支 1"]
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0, 1)
    planes = [
        GatePlane(np.full((2, 3), 0.25), ("H", "W"), descriptor=0),
        GatePlane(np.full((2, 3), 0.75), ("H", "W"), descriptor=1),
    ]
    fig = gate_planes_figure(planes, "gate")
    assert len(fig.data) == 2 and (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.25, 0.75)
    assert [a.text for a in fig.layout.annotations][:2] == ["descriptor k = 0", "descriptor k = 1"]
    softmax = np.array([0.01, 0.03, 0.02])  # softmax weights over C channels: the axis runs to their largest
    fig = sorted_weights_figure(softmax, "x", unit_range=False)
    assert list(fig.data[0].y) == [0.03, 0.02, 0.01] and tuple(fig.layout.yaxis.range) == (0, 0.03)
