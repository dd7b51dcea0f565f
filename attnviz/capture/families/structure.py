"""What the families' `match` and `taps` read: a module's children, parameters and attributes.

Never a class name (a user may call the class anything) and never forward code.
"""

from __future__ import annotations

from torch import nn

__all__ = ["is_own", "child_of", "first_of", "children_of", "is_global", "gamma_of", "has_gamma"]


def is_own(module: nn.Module) -> bool:
    """One of attnviz's own modules: they record themselves (attnviz.modules)."""
    return type(module).__module__.startswith("attnviz.modules")


def child_of(module: nn.Module, name: str, cls: type | tuple = nn.Module) -> nn.Module | None:
    child = module._modules.get(name)
    return child if isinstance(child, cls) else None


def first_of(module: nn.Module | None, cls: type) -> nn.Module | None:
    """`module` itself if it is a `cls`, else its first `cls` descendant (e.g. Sequential(conv, pool))."""
    if module is None:
        return None
    if isinstance(module, cls):
        return module
    return next((m for m in module.modules() if isinstance(m, cls)), None)


def gamma_of(module: nn.Module) -> float | None:
    """The scalar `gamma` of a module: a 1-element parameter or buffer, or a child holding one (mmcv's Scale)."""
    value = module._parameters.get("gamma")
    if value is None:
        value = module._buffers.get("gamma")
    if value is None:
        child = module._modules.get("gamma")
        if child is not None:
            params = list(child.parameters())
            value = params[0] if len(params) == 1 else None
    if value is None or value.numel() != 1:
        return None
    return float(value.detach().reshape(()))


def has_gamma(module: nn.Module) -> bool:
    return gamma_of(module) is not None


def children_of(m: nn.Module, cls: type) -> list[nn.Module]:
    return [child for child in m.children() if isinstance(child, cls)]


def is_global(pool: nn.Module) -> bool:
    size = getattr(pool, "output_size", None)
    return size == 1 or size == (1, 1)
