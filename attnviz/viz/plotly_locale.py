"""Plotly's toolbar ("Download plot as a PNG", "Zoom", "Autoscale", ...) in the page's language.

Streamlit's Plotly build registers only Plotly's `en` and `en-US` locales, and loading Plotly's zh-CN bundle
into it is not possible from Python. But Plotly looks a text up in its config's `locales[locale].dictionary`
before its own registry (plotly.js src/lib/localize.js), and Streamlit passes `st.plotly_chart`'s `config`
to Plotly as it is: so each chart's config carries the dictionary, the [plotly_toolbar] section of the
catalogs (keyed by Plotly's English text). What stays English: Streamlit's own "Fullscreen" button, whose
title Streamlit sets as a fixed string that Plotly does not look up.
"""

from __future__ import annotations

from attnviz.i18n import DEFAULT_LANGUAGE, section

__all__ = ["PLOTLY_LOCALES", "toolbar_config"]

PLOTLY_LOCALES = {"en": "en-US", "zh": "zh-CN"}  # Plotly's locale name for each language of the catalogs


def toolbar_config(language: str = DEFAULT_LANGUAGE) -> dict:
    """The `config` entries that put Plotly's toolbar and notices in `language` (none for English, Plotly's
    own)."""
    if language == DEFAULT_LANGUAGE:
        return {}
    name = PLOTLY_LOCALES[language]
    return {"locale": name, "locales": {name: {"dictionary": section("plotly_toolbar", language)}}}
