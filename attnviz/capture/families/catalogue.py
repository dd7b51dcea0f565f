"""The attention families people copy into their models, told apart by structure alone: which there are, in
the order recognition tries them.

Each family is one declaration (`attnviz.capture.families.family.Family`) in a module of its own under
attnviz/capture/families/declared/, which exports it as `FAMILY` (or several as `FAMILIES`). Every module there is
read when this one is imported, so adding a family is adding its file; each declaration says its structure,
taps, variants, tells and the paper and code it was read from. Recognition tries the first family whose
structure fits, so the order matters where structures could overlap: the modules named in `TRIED_FIRST`, in that
order, then every other module of declared/ by its name. A family declared elsewhere (a notebook, a test) joins
through `add_family(family)`, after those: recognition, capture and the survey read `FAMILIES` and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from torch import nn

import attnviz.capture.families.declared as declared
from attnviz.capture.families.family import Family, Tap, Variant, problems
from attnviz.capture.families.structure import is_own

__all__ = ["Family", "Tap", "Variant", "FAMILIES", "TRIED_FIRST", "add_family", "declared_families", "recognise"]

TRIED_FIRST = ("pam", "cam", "non_local", "gcnet", "eca", "se", "cbam", "ca")  # modules of declared/, in order

FAMILIES: list[Family] = []


def declared_families(package: ModuleType, first: tuple[str, ...] = ()) -> list[Family]:
    """What the modules of `package` export as `FAMILY` or `FAMILIES`: the modules named in `first` in that order,
    then the others by name. Raises LookupError for a name in `first` that is no module of `package`, TypeError
    for a module that exports no Family."""
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    absent = [name for name in first if name not in names]
    if absent:
        raise LookupError(f"{package.__name__} has no module {absent}")
    found = []
    for name in [*first, *(name for name in names if name not in first)]:
        module = importlib.import_module(f"{package.__name__}.{name}")
        exported = module.FAMILIES if hasattr(module, "FAMILIES") else (getattr(module, "FAMILY", None),)
        if not exported or not all(isinstance(family, Family) for family in exported):
            raise TypeError(f"{module.__name__} exports no FAMILY or FAMILIES of Family declarations")
        found.extend(exported)
    return found


def add_family(family: Family) -> Family:
    """Recognise, capture and survey `family` from now on (tried after those already listed).

    Raises ValueError when the declaration is incomplete or its name or a variant is already taken."""
    found = problems(family)
    taken = {variant.label for known in FAMILIES for variant in known.variants}
    if any(known.name == family.name for known in FAMILIES):
        found.append(f"a family named {family.name!r} is already listed")
    found += [f"variant {variant.label} is already declared" for variant in family.variants if variant.label in taken]
    if found:
        raise ValueError(f"family {family.name!r}: " + "; ".join(found))
    FAMILIES.append(family)
    return family


def recognise(module: nn.Module) -> Family | None:
    """The family whose structure `module` has, or None. Our own modules and torch's are never a family."""
    if is_own(module) or type(module).__module__.startswith("torch."):
        return None
    for family in FAMILIES:
        try:
            if family.match(module):
                return family
        except Exception:  # noqa: BLE001 - odd user modules must never break recognition
            continue
    return None


for _family in declared_families(declared, TRIED_FIRST):
    add_family(_family)  # the declared families pass the checks of any other
