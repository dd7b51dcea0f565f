"""The lecture as slides: python -m attnviz.deck --photo Seq05VD_f00540 --language zh --out deck.pdf

One PDF page per lecture step (attnviz.analysis.lecture.STEPS, in the article's order), landscape 16:9: the
step's title, its figure on the step's shipped model (STEP_MODELS; the PAM step beside its companion, plain
DANet), the Lecture page's texts (the catalogs' lecture.* keys, attnviz.i18n) with this photo's numbers
(step_numbers), the formula typeset by KaTeX, and a caption that says what the page is: step, model, photo.
The document is HTML (attnviz.viz.deck_html) printed by Debian's Chromium (attnviz.browser); nothing is
downloaded and no new system software is needed.

What differs from the page: the figures are static. The PAM step shows the row of S of the photo's centre
pixel (the page's starting pixel) for both models, each map on its own colour scale as on the page; the CAM
step shows X whole, with the row the numbers read marked, where the page lets the pointer pick a row.
`deck_pdf(photo, language)` returns the bytes, for a download button.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from attnviz.analysis.forward import Analysis, analyse
from attnviz.analysis.lecture import (
    FORMULAS,
    STEP_COMPANIONS,
    STEP_MODELS,
    STEPS,
    StepNumbers,
    flexible_example,
    pam_sentences,
    step_numbers,
)
from attnviz.analysis.views import eca_neighbourhoods, position_view
from attnviz.browser import chromium
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import LANGUAGES, Phrase, translate
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR, CheckpointError, list_checkpoints, load_checkpoint
from attnviz.viz.deck_html import FONT_STACK, SLIDE_PX, SlideContent, deck_document
from attnviz.viz.figures import (
    attention_map_figure,
    branches_figure,
    eca_neighbourhood_figure,
    pinned_maps_figure,
    sorted_weights_figure,
    with_caption,
)

__all__ = [
    "DeckError",
    "LectureRun",
    "StepContent",
    "run_lecture",
    "step_figures",
    "slides",
    "render_pdfs",
    "deck_pdfs",
    "deck_pdf",
    "deck_file_name",
    "photo_stem",
    "main",
]

# the flexible step's example channel changes across the first sample photos, as on the Lecture page
# (attnviz.app.guards.layer_weights_on_photos, count 4)
EXAMPLE_PHOTOS = 4
FIGURE_BOX = (640, 540)  # the figure column of a slide (attnviz.viz.deck_html's .figures), in CSS pixels
PAM_PANEL_WIDTH = 240  # two maps of a 4:3 photo stacked in the box, each with its titles above


class DeckError(ValueError):
    """A photo, model or page the deck cannot make, said in one line."""


@dataclass(frozen=True)
class StepContent:
    """One step on this photo: its model's analysis and numbers, the companion's analysis (PAM: plain DANet)
    and the sentences the page adds after what to notice (the flexible example, which PAM model is which)."""

    step: str
    analysis: Analysis
    numbers: StepNumbers
    companion: Analysis | None = None
    sentences: tuple[Phrase, ...] = ()
    extra: tuple[Phrase, ...] = ()  # a paragraph of its own (PAM: which is which, the medians, this pixel)


@dataclass(frozen=True)
class LectureRun:
    """The lecture's steps on one photo, in no language yet."""

    photo: str
    image: np.ndarray
    pixel: tuple[int, int]  # (x, y): the PAM and CA steps' pixel, the photo's centre
    steps: tuple[StepContent, ...]
    credit: Phrase


def _load(name: str, directory: Path):
    try:
        return load_checkpoint(name, directory)
    except CheckpointError as error:
        raise DeckError(f"{name}: {error}") from None


def _weights_on_samples(model, name: str, layer: str, known: dict[str, Analysis]) -> dict[str, np.ndarray]:
    """{photo: layer `layer`'s channel weights} of model `name` on the first sample photos."""
    found = {}
    for photo in list_samples()[:EXAMPLE_PHOTOS]:
        analysis = known.get(photo) or analyse(model, load_sample(photo).image, name)
        found[photo] = analysis.records[layer].weights[0].double().numpy()
    return found


def run_lecture(
    photo: str,
    image: np.ndarray | None = None,
    label: np.ndarray | None = None,
    checkpoints: Path = DEFAULT_CHECKPOINT_DIR,
) -> LectureRun:
    """Every step's model (and the PAM step's companion) run once on `photo`: a sample's name, whose photo
    and labels are loaded, or the title of `image` ((H, W, 3) uint8, e.g. an upload; `label` optional)."""
    if image is None:
        if photo not in list_samples():
            raise DeckError(f"no sample photo {photo!r} (samples: {', '.join(list_samples())})")
        sample = load_sample(photo)
        image, label = sample.image, sample.label
    names = list(dict.fromkeys([*STEP_MODELS.values(), *STEP_COMPANIONS.values()]))
    missing = [n for n in names if n not in list_checkpoints(checkpoints)]
    if missing:
        raise DeckError(f"the lecture needs the shipped models {', '.join(missing)}, missing from {checkpoints}")
    loaded = {n: _load(n, checkpoints) for n in names}
    analyses = {n: analyse(model, image, n) for n, (model, _) in loaded.items()}
    cards = {n: card for n, (_, card) in loaded.items()}
    height, width = image.shape[:2]
    pixel = (width // 2, height // 2)
    steps = []
    for step in STEPS:
        name, companion_name = STEP_MODELS[step], STEP_COMPANIONS.get(step)
        analysis = analyses[name]
        numbers = step_numbers(step, analysis, pixel=pixel, label=label)
        content = StepContent(step, analysis, numbers)
        if step == "flexible":
            own = {photo: analysis} if photo in list_samples() else {}
            across = _weights_on_samples(loaded[name][0], name, numbers.layer, own)
            numbers, sentence = flexible_example(analysis, numbers, across)
            content = StepContent(step, analysis, numbers, sentences=(sentence,) if sentence else ())
        elif companion_name is not None:
            companion = analyses[companion_name]
            extra = pam_sentences(companion, analysis, cards, pixel, label) if step == "pam" else ()
            content = StepContent(step, analysis, numbers, companion, extra=extra)
        steps.append(content)
    in_samples = photo in list_samples()
    credit = Phrase.of("sidebar.attribution") if in_samples else Phrase.of("sidebar.attribution_upload", name=photo)
    return LectureRun(photo, image, pixel, tuple(steps), credit)


def _caption(*parts: str) -> str:
    """A figure's caption, as attnviz.app.widgets.figure_caption joins it: module · model · photo · details."""
    return " · ".join(parts)


def _fit_map(figure: go.Figure, shape: tuple[int, int]) -> go.Figure:
    """An attention_map_figure grown to the slide's figure box, the map keeping its aspect and its colour bar
    beside it (the figure's width follows the map's, as attention_map_figure sizes it)."""
    box_w, box_h = FIGURE_BOX
    margin = figure.layout.margin
    plot_h = box_h - (margin.t or 0) - (margin.b or 0)
    width = min(box_w, int(plot_h * shape[1] / shape[0]) + 150)
    return figure.update_layout(width=width, height=box_h)


def step_figures(content: StepContent, language: str, photo: str, image: np.ndarray, pixel) -> list[go.Figure]:
    """Step `content.step`'s figures for a slide, each with the caption that says what it shows (module,
    model, photo, layer and channel or pixel), built by attnviz.viz.figures as the Lecture page builds them."""
    step, analysis, numbers = content.step, content.analysis, content.numbers
    layer, terms = numbers.layer, numbers.terms

    def t(key, /, **values):
        return translate(key, language, **values)

    module = t(f"lecture.{step}.name")
    model, where = t("figures.caption_model", model=analysis.model_name), t("figures.caption_photo", photo=photo)
    at_layer = t("figures.caption_layer", layer=layer)
    record = analysis.records[layer]
    if step == "eca":  # as the lecture page: the channel's weight from its k neighbours, channels in their order
        unrolled = eca_neighbourhoods(record.kernel.numpy(), record.parts["pooled"][0].numpy(), record.kernel_bias)
        channel = terms["channel"]
        title = t("lecture.eca.figure", layer=layer, channel=channel, k=len(unrolled.offsets))
        figure = eca_neighbourhood_figure(unrolled, channel, title, language)
        figure.update_layout(width=FIGURE_BOX[0], height=FIGURE_BOX[1])
        at_channel = t("figures.caption_channel", channel=channel)
        figures = [with_caption(figure, _caption(module, model, where, f"{at_layer} · {at_channel}"))]
    elif step == "se":
        figure = sorted_weights_figure(record.weights[0].numpy(), t("lecture.se.figure", layer=layer), language)
        figure.update_layout(width=FIGURE_BOX[0], height=FIGURE_BOX[1])
        figures = [with_caption(figure, _caption(module, model, where, at_layer))]
    elif step == "flexible":
        figure = branches_figure(
            record.parts["avg_branch"][0].numpy(),
            record.parts["max_branch"][0].numpy(),
            record.weights[0].numpy(),
            t("lecture.flexible.figure", layer=layer),
            language=language,
        )
        figure.update_layout(width=FIGURE_BOX[0], height=FIGURE_BOX[1])
        figures = [with_caption(figure, _caption(module, model, where, at_layer))]
    elif step == "cbam":
        gate = record.map[0].numpy()
        figure = attention_map_figure(
            gate, t("lecture.cbam.figure", layer=layer), colour_title="M_s", language=language
        )
        figures = [_fit_map(with_caption(figure, _caption(module, model, where, at_layer)), gate.shape)]
    elif step == "ca":
        c = terms["channel"]
        product = (record.height_weights[0, c][:, None] * record.width_weights[0, c][None, :]).numpy()
        figure = attention_map_figure(
            product,
            t("lecture.ca.figure", channel=c, layer=layer),
            marker=(terms["row"], terms["col"]),
            colour_title="a_h·a_w",
            language=language,
        )
        channel = t("figures.caption_channel", channel=c)
        figures = [_fit_map(with_caption(figure, _caption(module, model, where, at_layer, channel)), product.shape)]
    elif step == "pam":
        # the two models stacked, each map on its own colour scale as on the page; the row title says which
        # model, the panel title the layer and the pixel (the slide's caption says the step and the photo)
        at_pixel = t("figures.caption_pixel", x=pixel[0], y=pixel[1])
        figures = []
        for shown in (a for a in (content.companion, analysis) if a is not None):
            name, position = shown.position
            view = position_view(position, pixel, image.shape[:2])
            which = "panel_plain" if shown is content.companion else "panel_affinity"
            panel = f"{t('figures.caption_layer', layer=name)} · {at_pixel}"
            figures.append(
                pinned_maps_figure(
                    [(t(f"lecture.pam.{which}", model=shown.model_name), image, [(panel, view.values, pixel)])],
                    panel_width=PAM_PANEL_WIDTH,
                    language=language,
                )
            )
    elif step == "cam":
        attention = record.attention[0].numpy()
        figure = attention_map_figure(
            attention,
            t("deck.cam_figure", layer=layer, channel=terms["channel"], partner=terms["partner"]),
            marker=(terms["channel"], terms["partner"]),
            colour_title="X",
            language=language,
        )
        figures = [_fit_map(with_caption(figure, _caption(module, model, where, at_layer)), attention.shape)]
    else:
        raise ValueError(f"no figure for step {step!r}")
    for figure in figures:
        figure.update_layout(font_family=FONT_STACK, font_size=14, template="plotly_white")
    return figures


def _models(content: StepContent) -> str:
    return ", ".join(a.model_name for a in (content.companion, content.analysis) if a is not None)


def slides(run: LectureRun, language: str) -> list[SlideContent]:
    """The run's slides in `language`: the Lecture page's texts for each step, with this photo's numbers."""

    def t(key, /, **values):
        return translate(key, language, **values)

    made = []
    for number, content in enumerate(run.steps, 1):
        step, terms = content.step, content.numbers.terms
        name = t(f"lecture.{step}.name")
        notice = " ".join([t(f"lecture.{step}.notice", **terms), *(p.text(language) for p in content.sentences)])
        caption = t(
            "deck.caption", number=number, total=len(run.steps), name=name, model=_models(content), photo=run.photo
        )
        made.append(
            SlideContent(
                step=step,
                heading=t("lecture.step_of", number=number, total=len(run.steps), name=name),
                note=t("lecture.model_note", model=content.analysis.model_name, photo=run.photo),
                intuition=t(f"lecture.{step}.intuition"),
                notice_title=t("lecture.notice_title"),
                notice=notice,
                more=" ".join(p.text(language) for p in content.extra),
                formula=FORMULAS[step],
                numbers_title=t("lecture.numbers_title"),
                numbers=t(f"lecture.{step}.terms", layer=content.numbers.layer, **terms),
                caption=f"{caption} · {run.credit.text(language)}",
                figures=step_figures(content, language, run.photo, run.image, run.pixel),
            )
        )
    return made


@dataclass(frozen=True)
class Printed:
    """A deck as Chromium printed it: the PDF and the steps whose slide still overflowed at the smallest type."""

    pdf: bytes
    overflowing: tuple[str, ...]


def render_pdfs(documents: dict[str, str], timeout_ms: int = 120_000) -> dict[str, Printed]:
    """Each HTML document (attnviz.viz.deck_html) printed to PDF by one headless Chromium, one page per slide."""
    printed = {}
    with chromium(timeout_ms, viewport=SLIDE_PX) as open_page:
        page = open_page()
        page.emulate_media(media="print")  # the type is fitted in the medium it is printed in
        for key, document in documents.items():
            page.set_content(document, wait_until="load")
            page.wait_for_function("() => window.__deck !== undefined", timeout=timeout_ms)
            state = page.evaluate("window.__deck")
            if "error" in state:
                raise DeckError(f"the deck's page failed: {state['error']}")
            pdf = page.pdf(
                width=f"{SLIDE_PX[0]}px",
                height=f"{SLIDE_PX[1]}px",
                print_background=True,
                prefer_css_page_size=True,
                margin={"top": "0", "right": "0", "bottom": "0", "left": "0"},
            )
            printed[key] = Printed(pdf, tuple(state["overflowing"]))
    return printed


def _title(run: LectureRun, language: str) -> str:
    return translate("deck.title", language, photo=run.photo)


def deck_pdfs(
    photo: str,
    languages=("en",),
    image: np.ndarray | None = None,
    label: np.ndarray | None = None,
    checkpoints: Path = DEFAULT_CHECKPOINT_DIR,
) -> dict[str, Printed]:
    """The lecture deck on `photo` in each of `languages`: the models run once, one Chromium prints all."""
    run = run_lecture(photo, image, label, checkpoints)
    documents = {lang: deck_document(slides(run, lang), _title(run, lang), lang) for lang in languages}
    return render_pdfs(documents)


def deck_pdf(
    photo: str, language: str = "en", image: np.ndarray | None = None, label: np.ndarray | None = None
) -> bytes:
    """The lecture deck on `photo` (a sample's name; or the title of `image`, an upload) in `language`, as PDF
    bytes: for the Lecture page's download button (file name: deck_file_name)."""
    return deck_pdfs(photo, (language,), image, label)[language].pdf


def photo_stem(photo: str) -> str:
    """A photo's name (a sample's, or an upload's file name) reduced to a stem safe in a file name."""
    return re.sub(r"[^\w.-]+", "_", Path(photo).stem).strip("._") or "photo"


def deck_file_name(photo: str, language: str) -> str:
    """What the file is: attnviz-lecture-<photo>-<language>.pdf (the photo's name reduced to a safe stem)."""
    return f"attnviz-lecture-{photo_stem(photo)}-{language}.pdf"


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m attnviz.deck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", required=True, help=f"a sample photo: {', '.join(list_samples())}")
    parser.add_argument("--language", default="en", choices=sorted(LANGUAGES))
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--out", type=Path, default=None, help="the PDF to write (default: deck_file_name)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    try:
        printed = deck_pdfs(args.photo, (args.language,), checkpoints=args.checkpoints)[args.language]
    except DeckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or Path(deck_file_name(args.photo, args.language))
    out.write_bytes(printed.pdf)
    seconds = time.perf_counter() - started
    print(f"wrote {out}: {len(STEPS)} steps, {len(printed.pdf) / 1e6:.2f} MB in {seconds:.1f} s")
    if printed.overflowing:
        print(f"note: these slides overflow at the smallest type: {', '.join(printed.overflowing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
