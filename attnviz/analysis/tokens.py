"""How a transformer's token attention is laid out, in words a page can print: "197 tokens: CLS + 14x14
patches, 6 heads".

A ViT's rows are over 1 + h·w tokens (Dosovitskiy et al., ICLR 2021): a class token first (CLS), in DeiT a
distillation token after it (Touvron et al., ICML 2021), sometimes registers (Darcet et al., ICLR 2024), then the
patch grid. attnviz.capture reads each head of each layer as a `TokenAttentionRecord` with the prefix tokens
apart; this module only names what the record holds (no Streamlit, no maths beyond counting).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenLayout", "token_layout", "prefix_label"]

_PREFIX_LABELS = {"cls": "CLS", "dist": "DIST"}


def prefix_label(name: str) -> str:
    """A prefix token's name as the pages print it: CLS, DIST, reg0 ... (the record's names otherwise)."""
    return _PREFIX_LABELS.get(name, name)


@dataclass(frozen=True)
class TokenLayout:
    tokens: int  # every key token: prefix + patches
    prefix: tuple[str, ...]  # the prefix key tokens' labels, in order ("CLS", "DIST")
    grid: tuple[int, int]  # the patch keys' grid (rows, columns)
    heads: int
    head: int | None  # the head this record is (None: not read per head)

    def parts(self, patches: str) -> str:
        """ "CLS + DIST + 14x14 patches" (what the tokens are, in order), `patches` naming the grid."""
        return " + ".join([*self.prefix, patches])


def token_layout(record) -> TokenLayout:
    """The layout of a TokenAttentionRecord's keys (attnviz.capture.records)."""
    names = tuple(prefix_label(n) for n in record.prefix_names) or tuple(f"t{i}" for i in range(record.prefix_keys))
    return TokenLayout(
        tokens=record.prefix_keys + record.num_keys,
        prefix=names[: record.prefix_keys],
        grid=tuple(record.key_grid),
        heads=record.heads,
        head=record.head,
    )
