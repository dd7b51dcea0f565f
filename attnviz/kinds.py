"""What kind of attention a module or a record is: one enum, one home.

A StrEnum: each member equals its string, so model cards and links that hold
"eca" keep working, and JSON writes the plain string.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AttentionKind", "BACKBONE_KINDS"]


class AttentionKind(StrEnum):
    NONE = "none"  # no attention module (the baseline)
    SE = "se"  # Squeeze-and-Excitation (Hu et al., CVPR 2018)
    ECA = "eca"  # Efficient Channel Attention (Wang et al., CVPR 2020)
    FLEXIBLE = "flexible"  # CBAM's channel branch: avg- and max-pool, shared MLP
    CBAM = "cbam"  # CBAM, channel + spatial (Woo et al., ECCV 2018)
    CA = "ca"  # Coordinate Attention (Hou et al., CVPR 2021)
    CBAM_SPATIAL = "cbam-spatial"  # CBAM's spatial gate, as a record of its own
    PAM = "pam"  # DANet's position attention (Fu et al., CVPR 2019)
    CAM = "cam"  # DANet's channel attention


# The kinds a backbone block's attention slot can hold (attnviz.modules.make_attention).
BACKBONE_KINDS = (
    AttentionKind.NONE,
    AttentionKind.SE,
    AttentionKind.ECA,
    AttentionKind.FLEXIBLE,
    AttentionKind.CBAM,
    AttentionKind.CA,
)
