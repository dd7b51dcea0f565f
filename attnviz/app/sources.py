"""The sidebar's model sources in the app: by their stable key ("camvid", "timm", "user"), each the library's
source (attnviz.models.sources) built from this process's settings.

The sidebar's radio, the session state and the link's ?source= hold the key; the radio shows the source's title
in the page's language. Links written before the keys were stable may hold the English title or the option's
index instead: `source_key` reads those too.
"""

from __future__ import annotations

from functools import lru_cache

from attnviz.app.settings import Settings, settings
from attnviz.i18n import Phrase, translate
from attnviz.models.sources import SOURCE_KEYS, CamVidSource, ModelSource, TimmSource, UserSource, Weights
from attnviz.text import markdown_literal

__all__ = ["model_source", "offered_sources", "source_key", "weights_text"]


@lru_cache(maxsize=8)
def _sources(config: Settings) -> dict[str, ModelSource]:
    found = (CamVidSource(config.checkpoint_dir), TimmSource(config.imagenet_weights), UserSource(config.user_models))
    return {source.key: source for source in found}


def model_source(key: str) -> ModelSource:
    """The source of key `key` (one of SOURCE_KEYS), as this process's settings configure it."""
    return _sources(settings())[key]


def offered_sources() -> tuple[str, ...]:
    """The keys the sidebar offers: the user's models only when the app was started with --model or --models."""
    config = settings()
    if config.user_models or config.user_models_problem:
        return SOURCE_KEYS
    return tuple(key for key in SOURCE_KEYS if key != UserSource.key)


def source_key(value: str) -> str:
    """A source's key from a link's (or an older session's) value: the key itself, the English title or the
    option's index; KeyError for anything else."""
    for index, key in enumerate(SOURCE_KEYS):
        if value in (key, str(index), translate(model_source(key).title_key, "en")):
            return key
    raise KeyError(value)


def weights_text(weights: Weights, language: str) -> str:
    """Where a model's weights came from, in `language`; the names in it (files, models) shown literally."""
    literal = tuple((name, markdown_literal(str(value))) for name, value in weights.phrase.values)
    return Phrase(weights.phrase.key, literal).text(language)
