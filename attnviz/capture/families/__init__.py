"""Attention modules people copy into their own models, recognised by structure, read through hooks,
verified by reconstruction.

    from attnviz.capture import capture
    from attnviz.capture import families

    families.find_attention(model)          # [Finding(path, class_name, family, reader, record, ...)], no forward
    families.unrecognised_attention(model)  # [Lookalike(path, class_name, reason)]: looks like attention, no family
    with capture(model) as rec:
        model(x)
    rec["layer3.attn"]                      # a verified record, like any other (family, verified=True, max_error)
    families.unverified(rec)                # {name: Unverified(family, form, reason, max_error, record)}
    families.verification_table(rec)        # one row per recognised module, verified or not

No edit to the user's code, and no class name is trusted: a module is recognised from its children,
parameters and attributes, read through forward hooks on its own sub-modules that exist only while a capture
of the model is open (installed and removed by attnviz.capture.readers.attached, reference-counted per model),
and its record is rebuilt into the module's output. Each family says all of this in one declaration,
`Family(...)`, in its own file under declared/ (pam.py, cam.py, non_local.py, gcnet.py, eca.py, se.py,
cbam.py, ca.py; family.py says what a declaration holds); catalogue.FAMILIES lists them in the order recognition
tries them, and `add_family(family)` adds one declared anywhere else. Only a record whose reconstruction
reproduces the output (max error <= TOLERANCE = 1e-4 relative, float32) enters the recorder; the others are
listed in `unverified(rec)` with the reason, never drawn. Our own modules (attnviz.modules) record themselves
and the modules attnviz.capture.adapters reads are left to it: nothing is recorded twice.
"""

from attnviz.capture.families.catalogue import FAMILIES, add_family, recognise
from attnviz.capture.families.family import Family, Tap, Variant, problems
from attnviz.capture.families.hooks import Unverified, family_records, register, unverified, verification_table
from attnviz.capture.families.survey import (
    Finding,
    Lookalike,
    find_attention,
    recognised_modules,
    structure_key,
    unrecognised_attention,
)
from attnviz.capture.families.verify import RESOLUTION, TOLERANCE

__all__ = [
    "structure_key",
    "FAMILIES",
    "Family",
    "Tap",
    "Variant",
    "problems",
    "add_family",
    "recognise",
    "Finding",
    "Lookalike",
    "find_attention",
    "unrecognised_attention",
    "recognised_modules",
    "register",
    "Unverified",
    "unverified",
    "family_records",
    "verification_table",
    "TOLERANCE",
    "RESOLUTION",
]
