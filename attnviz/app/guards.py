"""What a page needs before it can draw: a selection, a model that fits the page, its analysis.

When something is missing the guard explains it, offers a way on (buttons to a
model that fits), writes the address bar and stops the page (`stop_page`):
pages call st.stop() only through it, so a stopped page still leaves a link.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

from attnviz.analysis.forward import Analysis
from attnviz.app.language import t
from attnviz.app.links import write_link
from attnviz.app.queueing import pooled
from attnviz.app.resources import ANALYSES, analysis_key, catalogue, model_analysis, photo_key, sample
from attnviz.app.selection import Selection, current, run_state
from attnviz.app.sources import model_source
from attnviz.app.widgets import switch_button
from attnviz.capture.interventions import Intervention
from attnviz.data.samples import list_samples
from attnviz.models.sources import CamVidSource, ModelSource
from attnviz.text import markdown_literal

__all__ = [
    "stop_page",
    "analysis_for",
    "page_analysis",
    "page_selection",
    "require_models",
    "offer_models",
    "companion_panels",
    "companion_label",
    "main_panel",
    "Panel",
    "weights_on_photos",
    "layer_weights_on_photos",
]


def stop_page() -> None:
    """Write the address bar, then stop the page here."""
    write_link()
    st.stop()


def page_selection() -> Selection:
    """The run's selection; stops the page when the sidebar could make none (it says why)."""
    selection = current()
    if selection is None:
        stop_page()
    return selection


def analysis_for(
    selection: Selection, name: str | None = None, intervention: Intervention | None = None
) -> Analysis | None:
    """The analysis of the selected model on the selected photo, or of CamVid checkpoint `name`, with
    `intervention`'s modules switched when one is given; None, with one message, when the model cannot be
    loaded or run."""
    source = model_source(CamVidSource.key if name else selection.source)
    name = name or selection.model_name
    return _analysis(source, name, selection.device, selection.image_key, selection.image, intervention)


def _analysis(
    source: ModelSource,
    name: str,
    device: str,
    image_key: str,
    image: np.ndarray,
    intervention: Intervention | None = None,
) -> Analysis | None:
    """Model `name` of `source` on a photo (`intervention`: its modules switched): one job of the shared pool
    (attnviz.app.queueing), which loads the model and runs it (both cached, attnviz.app.resources, keyed by the
    intervention too); None, with the source's message, when it cannot."""
    key = analysis_key(source, name, device, image_key, intervention)
    try:
        return pooled(
            key,
            lambda: model_analysis(source, name, device, image_key, image, intervention),
            t(source.running_key),
            cached=ANALYSES.holds(key),
        )
    except source.failures as error:
        st.error(t(source.failed_key, model=markdown_literal(name), error=markdown_literal(source.failure(error), 400)))
        return None


def page_analysis(
    prefixes: tuple[str, ...] = (),
    attention: tuple[str, ...] = (),
    what: str = "",
    needs: Callable[[Analysis], bool] | None = None,
    also: tuple[str, ...] = (),
) -> tuple[Selection, Analysis]:
    """The selection and its analysis for a page; stops the page (with an explanation) when there is none.

    Our models fit a page by their head (`prefixes`) and attention kind (`attention`), known without
    running them, or by an attention kind the page draws whatever the head (`also`: the ImageNet transformers'
    "token" on the Position page); a user's model fits when its analysis has what the page draws (`needs`):
    a recognised and verified module of the right family.
    """
    selection = page_selection()
    if (
        selection.source != "user"
        and (prefixes or attention)
        and selection.attention not in also
        and not _fits(prefixes, attention, selection.head, selection.attention)
    ):
        selection = stand_in(selection, prefixes, attention, what)
    analysis = analysis_for(selection)
    if analysis is None:
        stop_page()
    if selection.source == "user" and needs is not None and not needs(analysis):
        st.info(t("guards.user_model_lacks", model=markdown_literal(selection.model_name), what=what))
        offer_models(prefixes, attention)
        stop_page()
    return selection, analysis


def _fits(prefixes: tuple[str, ...], attention: tuple[str, ...], head: str, kind: str) -> bool:
    return (not prefixes or head in prefixes) and (not attention or kind in attention)


def offer_models(prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = ()) -> None:
    """Buttons to the CamVid models that fit a page (by head and attention kind), or say there is none."""
    options = [
        n for n, info in catalogue().items() if _fits(prefixes, attention, info.config.head, info.config.attention)
    ]
    if not options:
        st.warning(t("guards.none_shipped"))
    for column, name in zip(st.columns(max(1, len(options))), options):
        switch_button(column, name)


def stand_in(selection: Selection, prefixes: tuple[str, ...], attention: tuple[str, ...], what: str) -> Selection:
    """A CamVid model lacking what the page draws: the page shows the first shipped model that has it, on the
    same photo, and says so (with buttons that switch the sidebar); this run's selection becomes that model's,
    so that captions, downloads and the link name what is shown. Another source: the page says what to switch
    to and stops."""
    fitting = sorted(  # the page's first attention kind first (the Flexible page: fcn-flexible, then CBAM, SE)
        (n for n, info in catalogue().items() if _fits(prefixes, attention, info.config.head, info.config.attention)),
        key=lambda n: list(attention).index(catalogue()[n].config.attention) if attention else 0,
    )
    if selection.source != CamVidSource.key or not fitting:
        require_models(selection, prefixes, attention, what)
        stop_page()
    info = catalogue()[fitting[0]]
    st.info(t("guards.model_lacks_shown", model=markdown_literal(selection.model_name), what=what, shown=fitting[0]))
    offer_models(prefixes, attention)
    shown = dataclasses.replace(
        selection, model_name=fitting[0], head=info.config.head, attention=info.config.attention, card=info.card
    )
    run_state().selection = shown
    return shown


def require_models(
    selection: Selection, prefixes: tuple[str, ...] = (), attention: tuple[str, ...] = (), what: str = ""
) -> bool:
    """True if the selected model fits this page; else explain and offer buttons to switch."""
    if _fits(prefixes, attention, selection.head, selection.attention):
        return True
    st.info(t("guards.model_lacks", model=markdown_literal(selection.model_name), what=what))
    offer_models(prefixes, attention)
    return False


@dataclass(frozen=True)
class Panel:
    """One map of the Position page: a spatial record of a model on a photo."""

    title: str
    model_name: str
    module: str
    record: object
    image: np.ndarray
    image_key: str
    label: np.ndarray | None


def main_panel(selection: Selection, module_name: str, record) -> Panel:
    return Panel(
        f"{selection.model_name}: {module_name}",
        selection.model_name,
        module_name,
        record,
        selection.image,
        selection.image_key,
        selection.label,
    )


def companion_panels(selection: Selection, analysis: Analysis, module_name: str) -> dict:
    """What the Position page can show beside the chosen module on the same pixel: the other spatial attention
    modules of the same model, the other CamVid models with position attention, and the same model on another
    sample photo (each analysed when asked). label -> a function returning its `Panel`. The labels ("module
    m", "photo p", a model name) are the link's values in every language: show them with `companion_label`."""
    options = {}
    for other, record in analysis.spatial_attention.items():
        if other != module_name:
            options[f"module {other}"] = lambda o=other, r=record: main_panel(selection, o, r)
    if selection.source == "camvid":
        for name, info in catalogue().items():
            if name != selection.model_name and info.config.head == "danet":
                options[name] = lambda n=name: _model_panel(selection, n)
        for photo in list_samples():
            if photo != selection.image_title:
                options[f"photo {photo}"] = lambda p=photo: _photo_panel(selection, p, module_name)
    return options


def companion_label(option: str, tr=None) -> str:
    """A `companion_panels` label in the page's language (`tr`: a `bound_t()`, for a format_func)."""
    kind, _, name = option.partition(" ")
    if kind in ("module", "photo") and name:
        return (tr or t)(f"guards.companion_{kind}", **{kind: name})
    return option


def _model_panel(selection: Selection, name: str) -> Panel:
    other = analysis_for(selection, name)
    if other is None or not other.spatial_attention:
        stop_page()
    module, record = next(iter(other.spatial_attention.items()))
    return Panel(f"{name}: {module}", name, module, record, selection.image, selection.image_key, selection.label)


def _sample_analysis(selection: Selection, photo: str):
    """(image, label, its photo key, the analysis of the selection's CamVid model on sample `photo`); None
    when the model cannot be loaded (one message)."""
    image, label = sample(photo)
    key = photo_key(image)
    analysis = _analysis(model_source(CamVidSource.key), selection.model_name, selection.device, key, image)
    return None if analysis is None else (image, label, key, analysis)


def _photo_panel(selection: Selection, photo: str, module_name: str) -> Panel:
    found = _sample_analysis(selection, photo)
    record = None if found is None else found[3].spatial_attention.get(module_name)
    if record is None:
        stop_page()
    image, label, key, _ = found
    return Panel(
        t("guards.on_photo", model=selection.model_name, photo=photo),
        selection.model_name,
        module_name,
        record,
        image,
        key,
        label,
    )


def weights_on_photos(selection: Selection, count: int = 4):
    """A function (layer, channel) -> {photo: weight} over the first `count` sample photos, for the CamVid
    model of the selection (each photo analysed once, cached); {} for other sources."""

    def weights(layer: str, channel: int) -> dict[str, float]:
        return {photo: float(w[channel]) for photo, w in layer_weights_on_photos(selection, layer, count).items()}

    return weights


def layer_weights_on_photos(selection: Selection, layer: str, count: int = 4) -> dict[str, np.ndarray]:
    """{photo: layer `layer`'s channel weights (C,)} over the first `count` sample photos, for the CamVid model
    of the selection (each photo analysed once, cached); {} for other sources or a layer without weights."""
    if selection.source != "camvid":
        return {}
    found = {}
    for photo in list_samples()[:count]:
        analysed = _sample_analysis(selection, photo)
        record = None if analysed is None else analysed[3].records.get(layer)
        if record is None or not hasattr(record, "weights"):
            return {}
        found[photo] = record.weights[0].double().numpy()
    return found
