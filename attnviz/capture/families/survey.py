"""What a model holds, found without running it: every module capture will record, and the ones that
look like attention but match no family (for the app's Overview)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from attnviz.capture.adapted import adapted_modules
from attnviz.capture.families.catalogue import Family, is_own, recognise

__all__ = ["Finding", "Lookalike", "find_attention", "unrecognised_attention", "recognised_modules"]

# our own modules that record themselves: class name -> (family / kind, record type)
_OWN = {
    "PositionAttention": ("pam", "PositionAttentionRecord"),
    "ChannelAttention": ("cam", "ChannelMapRecord"),
    "ECA": ("eca", "ChannelAttentionRecord"),
    "SqueezeExcitation": ("se", "ChannelAttentionRecord"),
    "FlexibleChannelAttention": ("flexible", "ChannelAttentionRecord"),
    "SpatialGate": ("cbam-spatial", "SpatialAttentionRecord"),
    "CoordinateAttention": ("ca", "CoordinateAttentionRecord"),
}
_ADAPTER_RECORDS = {"cbam-spatial": "SpatialAttentionRecord"}

# class names that suggest attention (case-sensitive acronyms, case-insensitive words)
_WORDS = re.compile(r"attention|attn|gate|non_?local|nlblock|context|excit|squeeze|cbam|coordatt|criss_?cross",
                    re.IGNORECASE)
_ACRONYMS = re.compile(r"(?:SE|ECA|PAM|CAM|CCA|GC|DA|BAM|SK)(?=[A-Z_]|$)|(?:^|_)(?:se|eca|pam|cam)(?=_|$)")
# attribute sets of a family: a module holding two or more of one set but matching nothing is a near miss
_TELLS = (
    ("query_conv", "key_conv", "value_conv", "gamma"),
    ("theta", "phi", "g", "W"),
    ("conv_mask", "channel_add_conv", "channel_mul_conv"),
    ("pool_h", "pool_w", "conv_h", "conv_w"),
    ("compress", "spatial"),
    ("mlp", "pool_types"),
)


@dataclass(frozen=True)
class Finding:
    """One module that capture will record."""

    path: str                  # module path in the model ("" for the model itself)
    class_name: str
    family: str                # the family it will most likely verify as ("pam", "non-local", ...; own: its kind)
    source: str                # "structure": recognised by this package, verified at capture;
                               # "attnviz": one of our modules; "adapter": timm / torchvision, read by adapters
    record: str                # the record type it gives, e.g. "PositionAttentionRecord"
    records: str = ""          # what that record keeps, in words
    candidates: tuple[str, ...] = ()   # "structure": the (family/form) variants capture tries, in order


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


def _survey(model: nn.Module, exclude: set[int] | None = None) -> list[tuple[str, nn.Module, str, object]]:
    """(path, module, source, family or adapter or own entry) for every module capture records, in module order."""
    adapted = _adapted(model) if exclude is None else {i: None for i in exclude}
    found, skipped = [], []
    for path, module in model.named_modules():
        if _under(path, skipped):
            continue
        if id(module) in adapted:
            found.append((path, module, "adapter", adapted[id(module)]))
            skipped.append(path)
        elif is_own(module):
            if type(module).__name__ in _OWN:
                found.append((path, module, "attnviz", _OWN[type(module).__name__]))
            skipped.append(path)   # nothing inside our own modules is read twice
        else:
            family = recognise(module)
            if family is not None:
                found.append((path, module, "structure", family))
                skipped.append(path)
    return found


def recognised_modules(model: nn.Module, exclude=()) -> list[tuple[nn.Module, Family]]:
    """The (module, family) pairs to hook: recognised by structure, not ours, not adapted, nor inside those."""
    skip = {id(m) for m in exclude}
    return [(module, family) for _, module, source, family in _survey(model, skip) if source == "structure"]


def find_attention(model: nn.Module) -> list[Finding]:
    """Every module of `model` that capture records, without running it, in module order."""
    findings = []
    for path, module, source, what in _survey(model):
        name = type(module).__name__
        if source == "structure":
            order = what.ordered_variants(module)
            variants = [what.variants[i] for i in order]
            record, records = what.record, what.records
            if variants[0][0] == "criss-cross":
                record, records = "CrissCrossAttentionRecord", "Q, K and each pixel's log-sum-exp over its row and column"
            findings.append(Finding(path, name, variants[0][0], source, record, records,
                                    tuple(f"{fam}/{form}" if form else fam for fam, form in variants)))
        elif source == "attnviz":
            findings.append(Finding(path, name, what[0], source, what[1], "recorded by the module itself"))
        else:
            findings.append(Finding(path, name, what.kind, source, _ADAPTER_RECORDS.get(what.kind, "ChannelAttentionRecord"),
                                    "read through hooks on its gate"))
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
        near = [tell for tell in _TELLS if len(attributes & set(tell)) >= 2]
        if near:
            have = sorted(attributes & set(near[0]))
            lookalikes.append(Lookalike(path, name, f"has {', '.join(have)} but matches no family "
                                        f"(structure or shapes differ)"))
        elif _WORDS.search(name) or _ACRONYMS.search(name):
            lookalikes.append(Lookalike(path, name, "its class name suggests attention; its structure matches no family"))
    # the innermost only: a block that merely holds an unrecognised attention layer is not listed beside it
    paths = [l.path for l in lookalikes]
    return [l for l in lookalikes if not any(p != l.path and (l.path == "" or p.startswith(l.path + ".")) for p in paths)]

