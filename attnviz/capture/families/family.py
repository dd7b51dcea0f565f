"""What a family is: one declaration that says how a module is recognised, read, rebuilt and surveyed.

A `Family` holds everything about one attention structure people copy into their models:

- `match(module)`: whether the module has the family's structure (children, parameters, attributes; never
  its class name, never its forward code);
- `taps(module)`: which of its own sub-modules to hook while a capture is open, and whether their input or
  output is kept (the module's own input and output are always taken);
- `variants`: the computations that structure may hide, each a `Variant` with its builder (which rebuilds
  the module's output from what the hooks kept, attnviz.capture.families.verify) and its record class.
  Capture tries them in the order `order(module)` proposes and keeps the first that reproduces the output;
- `tells`: attribute names of the family: a module holding two or more of them that matches nothing is
  listed as a near miss (attnviz.capture.families.survey); none for a family recognised under any names (ECA),
  where a name would list ordinary layers.

`problems(family)` lists what a declaration lacks; `attnviz.capture.families.catalogue.add_family` refuses a
family with any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, is_dataclass

from torch import nn

from attnviz.capture.records import Provenance

__all__ = ["Tap", "Variant", "Family", "problems"]


@dataclass(frozen=True)
class Tap:
    """Keep the input and/or output of `module` (a sub-module of the recognised one) under `part`.

    `only_if(owner)`: keep only when this returns True at call time (e.g. the softmax output, N x N
    for PAM, is kept as a reference until the module returns only when gamma is 0). `copy`: keep a
    copy (small tensors: a gate's logits, a pooled vector), safe from in-place changes later in the
    module's forward (a `sigmoid_()`); without it a reference is kept, and a later in-place change is
    detected and reported (the call is then not verified). `on_owner_input`: keep only the calls whose input
    is the recognised module's own input: AlexHex7's Gaussian non-local block uses ONE MaxPool object both
    inside `g` (on g's conv output) and as `phi` (on x), so that hook fires twice and only the second call
    is phi's.
    """

    part: str
    module: nn.Module
    keep_input: bool = False
    keep_output: bool = True
    only_if: Callable[[nn.Module], bool] | None = None
    copy: bool = False
    on_owner_input: bool = False


@dataclass(frozen=True)
class Variant:
    """One computation a family's structure may hide: `build(call, form)` rebuilds the module's output from
    what was kept and returns an Outcome whose record is a `record`."""

    family: str  # the name records and the verification table carry, e.g. "criss-cross"
    form: str  # e.g. "dot", "official", "weights"; "" when the family has one form
    build: Callable  # (Call, form) -> Outcome (attnviz.capture.families.verify)
    record: type  # the record class a verified call gives
    records: str = ""  # what that record keeps, in words, where it differs from the family's

    @property
    def label(self) -> str:
        return f"{self.family}/{self.form}" if self.form else self.family


@dataclass(frozen=True)
class Family:
    """One attention structure: recognised by `match`, read through `taps`, rebuilt by its `variants`."""

    name: str  # the first variant's family, e.g. "pam"
    title: str  # in words, e.g. "position attention (DANet PAM / SAGAN Self_Attn)"
    match: Callable[[nn.Module], bool]
    taps: Callable[[nn.Module], list[Tap]]
    variants: tuple[Variant, ...]
    records: str  # what a record keeps, in words
    tells: tuple[str, ...]  # attribute names that give a near miss away (two or more; or none)
    order: Callable[[nn.Module], tuple[int, ...]] | None = None  # variant indices to try first

    def ordered_variants(self, module: nn.Module) -> list[int]:
        first = list(self.order(module)) if self.order is not None else []
        return first + [i for i in range(len(self.variants)) if i not in first]

    def describe(self, variant: Variant) -> str:
        """What `variant`'s record keeps, in words."""
        return variant.records or self.records


def problems(family: Family) -> list[str]:
    """What the declaration lacks or gets wrong (empty: complete)."""
    found = []
    if not family.name or not family.title or not family.records:
        found.append("a name, a title and the words for what its record keeps are required")
    for part in ("match", "taps"):
        if not callable(getattr(family, part)):
            found.append(f"{part} is not callable")
    if family.order is not None and not callable(family.order):
        found.append("order is not callable")
    if not family.variants:
        found.append("no variant")
    elif family.variants[0].family != family.name:
        found.append(f"its first variant is {family.variants[0].family!r}, not {family.name!r}")
    labels = [variant.label for variant in family.variants]
    if len(set(labels)) != len(labels):
        found.append(f"a variant twice: {labels}")
    for variant in family.variants:
        if not callable(variant.build):
            found.append(f"{variant.label}: no builder")
        if not (
            isinstance(variant.record, type) and is_dataclass(variant.record) and issubclass(variant.record, Provenance)
        ):
            found.append(f"{variant.label}: {variant.record!r} is not a record class (attnviz.capture.records)")
    if len(family.tells) == 1 or not all(isinstance(tell, str) and tell for tell in family.tells):
        found.append(f"tells {family.tells!r}: two or more attribute names (a near miss holds two), or none")
    return found
