"""The page language: English or Simplified Chinese, chosen in the sidebar (attnviz.app.sidebar) or by
?lang= in the link (which keeps it). Texts come from the catalogs of attnviz.i18n, never from literals in
pages. This module reads the session only, so that every part of the app layer can use `t`."""

from __future__ import annotations

import streamlit as st

from attnviz.app import keys
from attnviz.i18n import DEFAULT_LANGUAGE, LANGUAGES, translate

__all__ = ["language", "t", "bound_t", "starting_language"]


def language() -> str:
    """The session's language code ("en" or "zh")."""
    chosen = st.session_state.get(keys.LANGUAGE, DEFAULT_LANGUAGE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, /, **values) -> str:
    """Text `key` of the catalog of this session's language, filled with `values`."""
    return translate(key, language(), **values)


def bound_t():
    """`t` with this run's language fixed: for a widget's format_func, which Streamlit (and AppTest) may call
    outside the script run, where the session's language cannot be read."""
    chosen = language()
    return lambda key, /, **values: translate(key, chosen, **values)


def starting_language() -> str:
    """The language of this run before the sidebar is drawn (the navigation's titles come first): the
    session's choice, else the link's ?lang=, else English."""
    chosen = st.session_state.get(keys.LANGUAGE) or st.query_params.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE
