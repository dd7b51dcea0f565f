"""The JavaScript the page's attention components share (page_arrays.js: base64 arrays, top-k), prepended to
each component's own script, since a components-v2 script is one module with no imports of its own."""

from __future__ import annotations

from pathlib import Path

__all__ = ["page_script"]

_SHARED = Path(__file__).resolve().parent / "page_arrays.js"


def page_script(path: Path) -> str:
    """The shared functions, then the component's own script at `path`."""
    return _SHARED.read_text(encoding="utf-8") + "\n" + Path(path).read_text(encoding="utf-8")
