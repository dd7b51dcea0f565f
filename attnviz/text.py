"""Showing user-provided text (file names, query parameters) literally in Streamlit's Markdown.

Streamlit renders Markdown, LaTeX between dollar signs, coloured text
(`:red[...]`), emoji shortcodes and links in most text elements. A file name
like `$\\huge x$ :red[boo] [link](http://x)` must show as those characters, not
as what they mean to Markdown: `markdown_literal` backslash-escapes every
character that Markdown, Streamlit's directives or KaTeX give a meaning to.

Escaping does not stop GFM's literal autolinks: remark-gfm looks for
`http://`, `https://`, `www.` and `name@host.tld` in the text *after* escapes
are resolved, so `https\\:\\/\\/evil\\.example` still becomes a live link.
`markdown_literal` therefore also puts an invisible word joiner (U+2060) where
it breaks those patterns: after `://`, between `www` and `.`, before `@`.
"""

from __future__ import annotations

import re

__all__ = ["markdown_literal"]

# CommonMark's escapable ASCII punctuation: a backslash before any of them shows the character itself
_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:=&\"'^%@,;/?")
# where a word joiner breaks an autolink: a URL needs a domain character right after "://" and "www" right
# before ".", an email address an address character right before "@" (remark-gfm's own patterns)
_AUTOLINK_BREAKS = re.compile(r"(?<=://)|(?i:(?<=www)(?=\.))|(?=@)")
_WORD_JOINER = "\u2060"


def markdown_literal(text: str, max_length: int = 200) -> str:
    """`text` escaped for Markdown, and never a link (newlines become spaces; longer than `max_length`: cut
    with an ellipsis). What shows is `text` itself: the word joiners added against autolinks are invisible."""
    text = " ".join(str(text).split())
    if len(text) > max_length:
        text = text[: max_length - 1] + "…"
    text = _AUTOLINK_BREAKS.sub(_WORD_JOINER, text)
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)
