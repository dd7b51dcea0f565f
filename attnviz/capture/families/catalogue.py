"""The attention families people copy into their models, told apart by structure alone: which there are, in
the order recognition tries them.

Each family is one declaration (`attnviz.capture.families.family.Family`) in its own file, which holds its
structure (`match`), what its hooks keep (`taps`), its variants (each with its builder and record class),
its tells and the paper and code it was read from:

| family         | file         | structure                                                          |
|----------------|--------------|--------------------------------------------------------------------|
| pam            | pam.py       | Conv2d query_conv, key_conv, value_conv + scalar gamma             |
| criss-cross    | pam.py       | the same, usually with an `INF` helper or a Softmax(dim=3)          |
| cam            | cam.py       | scalar gamma + a Softmax child, no other parameters                 |
| non-local      | non_local.py | g + W (or W_z / conv_out), theta + phi (or neither: Gaussian form)  |
| gcnet          | gcnet.py     | Conv2d conv_mask (to 1 channel) + channel_add_conv / channel_mul_conv |
| eca            | eca.py       | an AdaptiveAvgPool2d(1) + a Conv1d(1, 1, k), any names, bias or not |
| se             | se.py        | avg_pool + fc = Sequential(..., Sigmoid)                            |
| cbam-channel   | cbam.py      | mlp + pool_types; or an avg and a max AdaptiveXPool2d(1) + one MLP  |
| cbam-spatial   | cbam.py      | compress + spatial holding a Conv2d(2 -> 1); or a Conv2d(2 -> 1) and a Sigmoid |
| ca             | coord.py     | pool_h, pool_w, conv1, conv_h, conv_w (coordinate attention)        |

A family declared elsewhere (a notebook, a test) joins through `add_family(family)`: recognition, capture and
the survey read this list and nothing else.
"""

from __future__ import annotations

from torch import nn

from attnviz.capture.families.cam import FAMILY as CAM
from attnviz.capture.families.cbam import CHANNEL_GATE, SPATIAL_GATE
from attnviz.capture.families.coord import FAMILY as COORD
from attnviz.capture.families.eca import FAMILY as ECA
from attnviz.capture.families.family import Family, Tap, Variant, problems
from attnviz.capture.families.gcnet import FAMILY as GCNET
from attnviz.capture.families.non_local import FAMILY as NON_LOCAL
from attnviz.capture.families.pam import FAMILY as PAM
from attnviz.capture.families.se import FAMILY as SE
from attnviz.capture.families.structure import is_own

__all__ = ["Family", "Tap", "Variant", "FAMILIES", "add_family", "recognise"]

FAMILIES: list[Family] = [PAM, CAM, NON_LOCAL, GCNET, ECA, SE, CHANNEL_GATE, SPATIAL_GATE, COORD]


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
