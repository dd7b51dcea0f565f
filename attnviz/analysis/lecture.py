"""The guided lecture: the article's seven modules in its order, each with this photo's numbers.

The article the project grew from is a Chinese lecture in two parts: SE, CBAM and Coordinate
Attention (part one); then ECA, DANet's 空间注意力模块 (position attention, PAM) and 通道注意力模块 (channel
attention, CAM), then 柔性注意力 ("flexible" attention, CBAM's channel branch). The lecture follows it step by
step: SE, CBAM, CA, ECA, PAM, CAM, flexible. Each step is shown on the shipped model that
teaches it (`STEP_MODELS`) and names the terms of its formula with the numbers of the photo at hand
(`step_numbers`, computed from the captured records only: the tests rebuild each number independently).

What differs from the papers is what differs in the modules themselves (see attnviz/modules/); the
numbers are read at the last layer of each kind, whose weights vary most from photo to photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attnviz.analysis.views import position_view, telling_channel
from attnviz.capture.records import ChannelMapRecord, CoordinateAttentionRecord, SpatialAttentionRecord
from attnviz.i18n import Phrase
from attnviz.kinds import AttentionKind
from attnviz.modules.eca import eca_formula_terms
from attnviz.modules.se import pre_sigmoid

__all__ = [
    "STEPS",
    "STEP_MODELS",
    "STEP_COMPANIONS",
    "FORMULAS",
    "StepNumbers",
    "convention_key",
    "step_numbers",
    "far_key_median",
    "flexible_example",
    "pam_sentences",
]

STEPS = ("se", "cbam", "ca", "eca", "pam", "cam", "flexible")
STEP_MODELS = {
    "se": "fcn-se",
    "cbam": "fcn-cbam",
    "ca": "fcn-ca",
    "eca": "fcn-eca",
    "pam": "danet-eca-affinity",
    "cam": "danet-eca",
    "flexible": "fcn-flexible",
}
# the model drawn beside a step's own, on the same pixel: the PAM step's affinity-trained DANet (which groups a
# class because its loss told it to) beside the plain DANet it was fine-tuned from (segmentation loss only)
STEP_COMPANIONS = {"pam": "danet-eca"}

# each step's formula (LaTeX, the same in every language), one equation per line so that a phone's 390 px
# column holds it (python -m attnviz.screenshots measures it)
FORMULAS = {
    "se": r"\begin{gathered} z_c = \frac{1}{HW}\sum_{h,w} x_{c,h,w} \\ \omega = \sigma\big(W_2\,\delta(W_1 z)\big) \\ "
    r"\tilde x_c = \omega_c\, x_c \end{gathered}",
    "cbam": r"\begin{aligned} M_c &= \sigma\big(\mathrm{MLP}(\mathrm{Avg}(F)) + \mathrm{MLP}(\mathrm{Max}(F))\big) \\ "
    r"M_s &= \sigma\big(f^{7\times 7}([\mathrm{Avg}_c(F');\ \mathrm{Max}_c(F')])\big) \end{aligned}",
    "ca": r"y_c(i, j) = x_c(i, j)\cdot a^h_c(i)\cdot a^w_c(j)",
    "eca": r"\begin{gathered} \omega_c = \sigma\Big(\sum_{j=-(k-1)/2}^{(k-1)/2} \kappa_j\, y_{c+j}\Big) \\ "
    r"k = \Big|\frac{\log_2 C}{\gamma} + \frac{b}{\gamma}\Big|_{\mathrm{odd}} \end{gathered}",
    "flexible": r"\begin{aligned} \omega = \sigma\big(&\mathrm{MLP}(\mathrm{AvgPool}(F)) \\ "
    r"&+ \mathrm{MLP}(\mathrm{MaxPool}(F))\big) \end{aligned}",
    # the article's (and the paper's) notation: s_ji is position i's share in position j's output, normalised
    # over i; the code's S_ij is the same map with B and C named the other way round (convention_key says so)
    "pam": r"\begin{gathered} s_{ji} = \frac{\exp(B_i\cdot C_j)}{\sum_{i=1}^{N} \exp(B_i\cdot C_j)} \\ "
    r"E_j = \alpha \sum_{i=1}^{N} s_{ji} D_i + A_j \end{gathered}",
    # X in both forms: the article's softmax(A Aᵀ) (x_ji), then the official code's softmax(rowmax − energy) (X′)
    "cam": r"\begin{gathered} x_{ji} = \frac{\exp(A_i\cdot A_j)}{\sum_{i=1}^{C} \exp(A_i\cdot A_j)} \\ "
    r"X'_{cj} = \mathrm{softmax}_j\big(\max_m (AA^\top)_{cm} - (AA^\top)_{cj}\big) \\ "
    r"E_j = \beta \sum_{i=1}^{C} x_{ji} A_i + A_j \end{gathered}",
}


def convention_key(step: str, numbers) -> str | None:
    """The catalog key of the sentence that relates step `step`'s formula (the article's notation) to the
    code's, or None where they agree. PAM: the code's S_ij = exp(B_i·C_j) / Σ_j exp(B_i·C_j), normalised over j,
    is the article's s with B and C named the other way round (attnviz.modules.danet). CAM: which of the two
    forms of X the shipped model uses (`numbers.terms["form"]`, its ChannelMapRecord's form)."""
    if step == "pam":
        return "lecture.pam.convention"
    if step == "cam":
        return f"lecture.cam.form_{numbers.terms['form']}"
    return None


@dataclass(frozen=True)
class StepNumbers:
    """The layer a step reads and its formula's terms by name (floats and ints, this photo's)."""

    layer: str
    terms: dict


def _saturated(weights: np.ndarray) -> float:
    """The share of channel weights near 0 or 1 (below 0.05 or above 0.95): a gate that switches channels."""
    return float(np.mean((weights < 0.05) | (weights > 0.95)))


def _last(records: dict, what: str):
    if not records:
        raise ValueError(f"this model has no {what}")
    return list(records.items())[-1]


def far_key_median(card: dict) -> float | None:
    """A DANet's test-split median of the far-key own-class ratio (attnviz.evaluate's pam_quality: the share of
    a row of S on the query's class over far keys, / chance), from its model card; None where it was not
    measured."""
    block = card.get("evaluation", {}).get("pam_quality", {}).get("far_key_ratio", {})
    median = block.get("median") if isinstance(block, dict) else None
    return float(median) if isinstance(median, (int, float)) else None


def step_numbers(
    step: str,
    analysis,
    pixel: tuple[int, int] | None = None,
    label: np.ndarray | None = None,
    channel: int | None = None,
) -> StepNumbers:
    """The named terms of step `step`'s formula for the analysed photo; `pixel` (x, y): the PAM step's query
    pixel and the CA step's point (default: the photo's centre); `label`: the photo's classes, for the PAM
    step's own-class ratios (NaN without one); `channel`: the SE and flexible steps' example channel (default:
    the most weighted; attnviz.analysis.views.telling_channel picks one that shows the gate at work)."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}, got {step!r}")
    height, width = analysis.image.shape[:2]
    x, y = pixel if pixel is not None else (width // 2, height // 2)
    if step in ("se", "flexible"):
        kind = AttentionKind.SE if step == "se" else AttentionKind.FLEXIBLE
        name, record = _last(analysis.channel_layers((kind,)), f"{kind} layer")
        w = record.weights[0].double().numpy()
        c = int(w.argmax()) if channel is None else int(channel)
        terms = {
            "channel": c,
            "channels": int(w.size),
            "weight": float(w[c]),
            "logit": pre_sigmoid(float(w[c])),
            "lowest": float(w.min()),
            "median": float(np.median(w)),
            "highest": float(w.max()),
            "saturated": _saturated(w),
        }
        if step == "se":
            terms["pooled"] = float(record.parts["pooled"][0, c])
        else:
            terms["avg_branch"] = float(record.parts["avg_branch"][0, c])
            terms["max_branch"] = float(record.parts["max_branch"][0, c])
            terms["sum"] = terms["avg_branch"] + terms["max_branch"]  # w = sigmoid(sum)
        return StepNumbers(name, terms)
    if step == "cbam":
        name, gate = _last(analysis.of_type(SpatialAttentionRecord), "CBAM spatial gate")
        _, channel = _last(analysis.channel_layers((AttentionKind.FLEXIBLE,)), "CBAM channel gate")
        m = gate.map[0].double().numpy()
        w = channel.weights[0].double().numpy()
        return StepNumbers(
            name,
            {
                "gate_lowest": float(m.min()),
                "gate_mean": float(m.mean()),
                "gate_highest": float(m.max()),
                "channels": int(w.size),
                "saturated": _saturated(w),
            },
        )
    if step == "ca":
        name, record = _last(analysis.of_type(CoordinateAttentionRecord), "coordinate attention layer")
        a_h, a_w = record.height_weights[0].double().numpy(), record.width_weights[0].double().numpy()
        product = a_h[:, :, None] * a_w[:, None, :]
        c = int(product.reshape(product.shape[0], -1).std(1).argmax())  # the channel whose gate varies most
        row, col = y * a_h.shape[1] // height, x * a_w.shape[1] // width
        return StepNumbers(
            name,
            {
                "channel": c,
                "row": row,
                "col": col,
                "a_h": float(a_h[c, row]),
                "a_w": float(a_w[c, col]),
                "product": float(a_h[c, row] * a_w[c, col]),
                "product_lowest": float(product[c].min()),
                "product_highest": float(product[c].max()),
            },
        )
    if step == "eca":
        layers = {
            n: r
            for n, r in analysis.channel_layers((AttentionKind.ECA,)).items()
            if r.kernel is not None and "pooled" in r.parts
        }
        name, record = _last(layers, "ECA layer")
        w = record.weights[0].double().numpy()
        c = int(w.argmax())
        terms, total = eca_formula_terms(record.kernel, record.parts["pooled"][0], c, record.kernel_bias)
        return StepNumbers(
            name,
            {
                "channel": c,
                "channels": int(w.size),
                "k": len(terms),
                "sum": float(total),
                "weight": float(w[c]),
                "kernel": [t[0] for t in terms],
                "inputs": [t[1] for t in terms],
            },
        )
    if step == "pam":
        name, record = analysis.position
        view = position_view(record, (x, y), (height, width), label=label)
        query, key, energy, log_z, entry = view.formula
        top_row, top_col, _ = view.top_cells[0]
        share = view.class_share
        return StepNumbers(
            name,
            {
                "query": query,
                "key": key,
                "energy": energy,
                "log_normaliser": log_z,
                "entry": entry,
                "uniform": 1 / record.num_keys,
                "ratio": entry * record.num_keys,
                "alpha": float(record.alpha),
                "branch": float("nan") if record.branch_size() is None else record.branch_size(),  # ‖α D Sᵀ‖ / ‖A‖
                "row": view.cell[0],
                "col": view.cell[1],
                "key_row": top_row,
                "key_col": top_col,
                "num_pixels": record.num_pixels,
                "own_ratio": share.ratio if share is not None else float("nan"),
            },
        )
    name, record = _last(analysis.of_type(ChannelMapRecord), "DANet channel attention")
    attention = record.attention[0].double().numpy()
    c = int(attention.max(1).argmax())
    j = int(attention[c].argmax())
    argument, log_z = record.softmax_terms(c, j)
    return StepNumbers(
        name,
        {
            "channel": c,
            "partner": j,
            "argument": argument,
            "log_normaliser": log_z,
            "entry": float(attention[c, j]),
            "beta": float(record.beta),
            "branch": float("nan") if record.branch_size() is None else record.branch_size(),  # ‖β X A‖ / ‖A‖
            "form": record.form,
            "symbol": "X′" if record.form == "official" else "x",  # FORMULAS["cam"]'s name for this form
            "channels": int(attention.shape[0]),
            "one_hot": float(np.mean(attention.max(1) > 0.99)),
        },
    )


def flexible_example(analysis, numbers: StepNumbers, across: dict[str, np.ndarray]):
    """(numbers, sentence) of the flexible step, for the Lecture page and the deck alike: the numbers on a
    channel whose weight is neither saturated here nor constant over the sample photos `across` ({photo: the
    layer's weights}; attnviz.analysis.views.telling_channel) with the Phrase that shows it, or, when no channel
    is, the most weighted channel's `numbers` and the Phrase that says so; without photos, no Phrase (None)."""
    if not across:
        return numbers, None
    weights = analysis.records[numbers.layer].weights[0].double().numpy()
    table = np.stack(list(across.values()))
    channel = telling_channel(weights, table)
    if channel is None:
        return numbers, Phrase.of("lecture.flexible.no_example", layer=numbers.layer, photos=len(across))
    sentence = Phrase.of(
        "lecture.flexible.example",
        channel=channel,
        weight=float(weights[channel]),
        photo_lowest=float(table[:, channel].min()),
        photo_highest=float(table[:, channel].max()),
        photos=len(across),
    )
    return step_numbers("flexible", analysis, channel=channel), sentence


def pam_sentences(plain, affinity, cards: dict[str, dict], pixel=None, label=None) -> tuple[Phrase, ...]:
    """The PAM step's paragraph on its two models (plain DANet, the class-affinity DANet), for the Lecture page
    and the deck alike: which is which and what the affinity loss is, their test-split far-key medians (from
    `cards`, {model: model card}) and the own-class ratios at `pixel` (default: the photo's centre) of the
    photo labelled `label`; each sentence only where its numbers exist."""
    sentences = [Phrase.of("lecture.pam.which", plain=plain.model_name, affinity=affinity.model_name)]
    medians = [far_key_median(cards.get(a.model_name, {})) for a in (plain, affinity)]
    if None not in medians:
        sentences.append(Phrase.of("lecture.pam.medians", plain=medians[0], affinity=medians[1]))
    ratios = [step_numbers("pam", a, pixel=pixel, label=label).terms["own_ratio"] for a in (plain, affinity)]
    if not any(math.isnan(r) for r in ratios):  # the pixel is labelled
        sentences.append(Phrase.of("lecture.pam.this_pixel", plain=ratios[0], affinity=ratios[1]))
    return tuple(sentences)
