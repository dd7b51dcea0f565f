"""Showing user-provided text (file names, query parameters) literally in Streamlit's Markdown.

Streamlit renders Markdown, LaTeX between dollar signs, coloured text
(`:red[...]`), emoji shortcodes and links in most text elements. A file name
like `$\\huge x$ :red[boo] [link](http://x)` must show as those characters, not
as what they mean to Markdown: `markdown_literal` backslash-escapes every
character that Markdown, Streamlit's directives or KaTeX give a meaning to.
"""
from __future__ import annotations

__all__ = ["markdown_literal"]

# CommonMark's escapable ASCII punctuation: a backslash before any of them shows the character itself
_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:=&\"'^%@,;/?")


def markdown_literal(text: str, max_length: int = 200) -> str:
    """`text` escaped for Markdown (newlines become spaces; longer than `max_length`: cut with an ellipsis)."""
    text = " ".join(str(text).split())
    if len(text) > max_length:
        text = text[:max_length - 1] + "…"
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)
