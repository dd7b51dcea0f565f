"""Texts in two languages: one catalog per language (the TOML files of attnviz/locales/<lang>/,
one file per page or part of the app), read by this module.

Streamlit has no i18n of its own (streamlit#1353). A catalog is the union of its folder's TOML files (each
holds its own sections; a key defined twice is an error); a text is looked up by its dotted key
("lecture.se.intuition") and filled with `str.format` placeholders
("{weight:.4f}"). Both catalogs hold the same keys with the same placeholders (a test says so), so a key
missing in one language is a test failure, never an English text shown to a Chinese reader. Formulas
stay LaTeX and live with the code that fills them (attnviz.analysis.lecture).

Terms follow the article the project grew from: 压缩-激励 (SE), 卷积块注意力模块 (CBAM), 坐标注意力 (CA),
高效通道注意力 (ECA), 柔性注意力 (flexible attention), 双重注意力网络 (DANet), 空间注意力模块 (PAM; the
app's own name 位置注意力 appears once beside it on a page), 通道注意力模块 (CAM). One name per thing: CBAM's
two halves are 通道门控 and 空间门控 (never 空间注意力, which is PAM's), and the sidebar's group of SE, ECA,
flexible attention and CA is 通道门控 (never 通道注意力, which is DANet's X).
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "catalog", "section", "translate", "placeholders", "Phrase"]

LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"
_FOLDER = Path(__file__).resolve().parent / "locales"


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


@lru_cache(maxsize=len(LANGUAGES))
def catalog(language: str) -> dict[str, str]:
    """Every text of `language` by dotted key (read once)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {sorted(LANGUAGES)}, got {language!r}")
    texts: dict[str, str] = {}
    for path in sorted((_FOLDER / language).glob("*.toml")):
        with open(path, "rb") as file:
            part = _flatten(tomllib.load(file))
        twice = set(part) & set(texts)
        if twice:
            raise ValueError(f"{path.name} defines keys another file of {language} defines: {sorted(twice)}")
        texts.update(part)
    return texts


def section(prefix: str, language: str) -> dict[str, str]:
    """The texts of one catalog section, keyed without it: section("canvas", "zh") -> {"pixel": ...}."""
    start = prefix + "."
    return {key[len(start) :]: text for key, text in catalog(language).items() if key.startswith(start)}


def placeholders(text: str) -> set[str]:
    """The names of the `str.format` fields of `text`."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def translate(key: str, language: str = DEFAULT_LANGUAGE, /, **values) -> str:
    """The text `key` in `language`, its placeholders filled from `values` (KeyError for an unknown key); a value
    that is a Phrase is shown in the same language."""
    text = catalog(language)[key]
    values = {name: value.text(language) if isinstance(value, Phrase) else value for name, value in values.items()}
    return text.format(**values) if values or placeholders(text) else text


@dataclass(frozen=True)
class Phrase:
    """A text kept in no language until it is shown: a catalog key and the values of its placeholders. A value
    may be a Phrase itself (an optional part of the sentence; "" where there is none), shown in the same
    language. What the library finds is kept this way (the dataflow reader's "its softmax over 45x60
    positions"), so that each page shows it in its own language."""

    key: str
    values: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, key: str, /, **values) -> Phrase:
        return cls(key, tuple(values.items()))

    def text(self, language: str = DEFAULT_LANGUAGE) -> str:
        """The phrase in `language`, its parts in the same language."""
        return translate(
            self.key,
            language,
            **{name: value.text(language) if isinstance(value, Phrase) else value for name, value in self.values},
        )

    def __str__(self) -> str:
        """The phrase in English (`text(language)` for another), so that printing a record's phrase reads."""
        return self.text()
