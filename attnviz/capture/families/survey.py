"""What a model holds, found without running it: every module capture will record, and the ones that
look like attention but match no family (for the app's Overview)."""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass

from torch import nn

from attnviz.capture.adapted import adapted_modules
from attnviz.capture.families.catalogue import FAMILIES, recognise
from attnviz.capture.families.family import Family
from attnviz.capture.families.structure import is_own
from attnviz.capture.records import (
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
)
from attnviz.kinds import AttentionKind

__all__ = ["Finding", "Lookalike", "find_attention", "unrecognised_attention", "recognised_modules", "structure_key"]

# our own modules (attnviz.modules), which record themselves: class name -> (kind, record class)
_OWN = {
    "PositionAttention": (AttentionKind.PAM, PositionAttentionRecord),
    "ChannelAttention": (AttentionKind.CAM, ChannelMapRecord),
    "ECA": (AttentionKind.ECA, ChannelAttentionRecord),
    "SqueezeExcitation": (AttentionKind.SE, ChannelAttentionRecord),
    "FlexibleChannelAttention": (AttentionKind.FLEXIBLE, ChannelAttentionRecord),
    "SpatialGate": (AttentionKind.CBAM_SPATIAL, SpatialAttentionRecord),
    "CoordinateAttention": (AttentionKind.CA, CoordinateAttentionRecord),
}

# class names that suggest attention (case-sensitive acronyms, case-insensitive words)
_WORDS = re.compile(
    r"attention|attn|gate|non_?local|nlblock|context|excit|squeeze|cbam|coordatt|criss_?cross", re.IGNORECASE
)
_ACRONYMS = re.compile(r"(?:SE|ECA|PAM|CAM|CCA|GC|DA|BAM|SK)(?=[A-Z_]|$)|(?:^|_)(?:se|eca|pam|cam)(?=_|$)")


@dataclass(frozen=True)
class Finding:
    """One module that capture will record."""

    path: str  # module path in the model ("" for the model itself)
    class_name: str
    family: str  # the family it will most likely verify as ("pam", "non-local", ...; else its kind)
    reader: str  # the reader that will read it (attnviz.capture.readers, as `Provenance.reader`):
    # "own": one of attnviz's modules; "library": timm / torchvision, by type;
    # "structure": recognised by its family's structure, verified at capture
    record: type  # the record class it gives, e.g. PositionAttentionRecord
    records: str = ""  # what that record keeps, in words
    candidates: tuple[str, ...] = ()  # "structure": the (family/form) variants capture tries, in order


@dataclass(frozen=True)
class Lookalike:
    """A module that looks like attention (by name or by some of a family's attributes) but matches no family."""

    path: str
    class_name: str
    reason: str


def _under(path: str, roots: list[str]) -> bool:
    return any(root == "" or path == root or path.startswith(root + ".") for root in roots)


def _adapted(model: nn.Module) -> dict[int, object]:
    return {id(module): adapter for module, adapter in adapted_modules(model)}


_PLAIN = (int, float, bool, str, type(None))
# model -> {excluded: (structure key, [(path, reader, what)])}: paths, not modules, so that the model can die
_surveyed: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()
_surveyed_lock = threading.Lock()


def structure_key(model: nn.Module) -> tuple:
    """Everything a survey reads, as one value, to survey a model once for every capture (each capture attaches
    its readers anew): every module's identity, class, children's names, parameters' and buffers' identities
    and plain attributes (numbers, strings, tuples or lists of them: a pooling's output size, a kernel size), the
    families known. A module, parameter or buffer replaced, or such an attribute set, gives a new key; a
    tensor's values changed in place never change what a survey finds. The readers' plan of hooks is kept by the
    same key (attnviz.capture.readers)."""
    parts: list = [len(FAMILIES)]
    for module in model.modules():
        parts += (id(module), type(module), tuple(module._modules))
        parts += map(id, module._parameters.values())
        parts += map(id, module._buffers.values())
        for name, value in module.__dict__.items():
            if name[0] != "_" and (
                isinstance(value, _PLAIN)
                or (isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value))
            ):
                parts += (name, tuple(value) if isinstance(value, list) else value)
    return tuple(parts)


def _survey(model: nn.Module, exclude: set[int] | None = None) -> list[tuple[str, nn.Module, str, object]]:
    """(path, module, reader, family or adapter or own entry) for every module capture records, in module order;
    surveyed once per structure (`structure_key`)."""
    key, excluded = structure_key(model), None if exclude is None else frozenset(exclude)
    with _surveyed_lock:
        known = _surveyed.get(model, {}).get(excluded)
    if known is not None and known[0] == key:
        modules = dict(model.named_modules())
        return [(path, modules[path], reader, what) for path, reader, what in known[1]]
    found = _survey_now(model, exclude)
    with _surveyed_lock:
        surveys = _surveyed.setdefault(model, {})
        if len(surveys) >= 4:  # a few sets of claimed modules per model: the capture's and the Overview's
            surveys.clear()
        surveys[excluded] = (key, [(path, reader, what) for path, _, reader, what in found])
    return found


def _survey_now(model: nn.Module, exclude: set[int] | None = None) -> list[tuple[str, nn.Module, str, object]]:
    adapted = _adapted(model) if exclude is None else {i: None for i in exclude}
    found, skipped = [], []
    for path, module in model.named_modules():
        if _under(path, skipped):
            continue
        if id(module) in adapted:
            found.append((path, module, "library", adapted[id(module)]))
            skipped.append(path)
        elif is_own(module):
            if type(module).__name__ in _OWN:
                found.append((path, module, "own", _OWN[type(module).__name__]))
            skipped.append(path)  # nothing inside our own modules is read twice
        else:
            family = recognise(module)
            if family is not None:
                found.append((path, module, "structure", family))
                skipped.append(path)
    return found


def recognised_modules(model: nn.Module, exclude=()) -> list[tuple[nn.Module, Family]]:
    """The (module, family) pairs to hook: recognised by structure, not ours, not adapted, nor inside those."""
    skip = {id(m) for m in exclude}
    return [(module, family) for _, module, reader, family in _survey(model, skip) if reader == "structure"]


def find_attention(model: nn.Module) -> list[Finding]:
    """Every module of `model` that capture records, without running it, in module order."""
    findings = []
    for path, module, reader, what in _survey(model):
        name = type(module).__name__
        if reader == "structure":
            variants = [what.variants[i] for i in what.ordered_variants(module)]
            first = variants[0]
            findings.append(
                Finding(
                    path,
                    name,
                    first.family,
                    reader,
                    first.record,
                    what.describe(first),
                    tuple(variant.label for variant in variants),
                )
            )
        elif reader == "own":
            findings.append(Finding(path, name, what[0], reader, what[1], "recorded by the module itself"))
        else:
            record = SpatialAttentionRecord if what.kind == AttentionKind.CBAM_SPATIAL else ChannelAttentionRecord
            findings.append(Finding(path, name, what.kind, reader, record, "read through hooks on its gate"))
    return findings


def unrecognised_attention(model: nn.Module) -> list[Lookalike]:
    """Modules that look like attention (class name, or two or more of a family's attribute names) but that no
    family matches, outside and above the modules capture records (a container of a recorded module is not
    listed, nor one of another lookalike: the innermost is)."""
    recorded = [path for path, *_ in _survey(model)]
    lookalikes = []
    for path, module in model.named_modules():
        inside = _under(path, recorded)
        above = any(r.startswith(path + ".") or (path == "" and r != "") for r in recorded)
        if inside or above:
            continue
        if type(module).__module__.startswith("torch.nn.modules.container"):
            continue
        name = type(module).__name__
        attributes = set(module._modules) | set(module._parameters) | set(vars(module))
        near = [family.tells for family in FAMILIES if len(attributes & set(family.tells)) >= 2]
        if near:
            have = sorted(attributes & set(near[0]))
            lookalikes.append(
                Lookalike(path, name, f"has {', '.join(have)} but matches no family (structure or shapes differ)")
            )
        elif _WORDS.search(name) or _ACRONYMS.search(name):
            lookalikes.append(
                Lookalike(path, name, "its class name suggests attention; its structure matches no family")
            )
    # the innermost only: a block that merely holds an unrecognised attention layer is not listed beside it
    paths = [item.path for item in lookalikes]
    return [
        item
        for item in lookalikes
        if not any(p != item.path and (item.path == "" or p.startswith(item.path + ".")) for p in paths)
    ]
