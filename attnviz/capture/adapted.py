"""Which third-party attention classes attnviz reads (timm, torchvision), and where their gate is.

The table alone, with no hooks: `attnviz.capture.adapters` installs the hooks from it, and
`attnviz.capture.families.survey`
reads it to leave these modules to the adapters. Keeping it apart lets both import it with no import circle
(adapters -> families -> survey -> adapters, before).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from torch import nn

__all__ = ["Adapter", "ADAPTERS", "adapted_modules"]


@dataclass(frozen=True)
class Adapter:
    """How to read one third-party attention class: where it lives, what it is, which child is its gate."""

    module_path: str
    class_name: str
    kind: str  # "eca", "se", "flexible" (channel weights) or "cbam-spatial" (a spatial map)
    gate: str  # attribute holding the gate module
    branches: str = ""  # attribute whose successive outputs are the pooling branches (CBAM's fc2)
    pooled: bool = False  # the input of its `conv` is the pooled descriptor (not CecaModule's: padded)

    def resolve(self) -> type | None:
        """The class, if its library is already imported (a model cannot hold one otherwise)."""
        module = sys.modules.get(self.module_path)
        return getattr(module, self.class_name, None) if module is not None else None


ADAPTERS = (
    Adapter("timm.layers.eca", "EcaModule", "eca", "gate", pooled=True),
    Adapter("timm.layers.eca", "CecaModule", "eca", "gate"),
    Adapter("timm.layers.squeeze_excite", "SEModule", "se", "gate"),
    Adapter("timm.layers.squeeze_excite", "EffectiveSEModule", "se", "gate"),
    Adapter("timm.models._efficientnet_blocks", "SqueezeExcite", "se", "gate"),
    Adapter("timm.layers.cbam", "ChannelAttn", "flexible", "gate", branches="fc2"),
    Adapter("timm.layers.cbam", "SpatialAttn", "cbam-spatial", "gate"),
    Adapter("torchvision.ops.misc", "SqueezeExcitation", "se", "scale_activation"),
)


def adapted_modules(model: nn.Module) -> list[tuple[nn.Module, Adapter]]:
    """Every submodule of `model` that an adapter reads (exact class match), in module order."""
    classes = [(adapter.resolve(), adapter) for adapter in ADAPTERS]
    classes = [(cls, adapter) for cls, adapter in classes if cls is not None]
    found = []
    for module in model.modules():
        for cls, adapter in classes:
            if type(module) is cls:
                found.append((module, adapter))
                break
    return found
