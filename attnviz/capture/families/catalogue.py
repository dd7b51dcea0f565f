"""The attention families people copy into their models, told apart by structure alone.

Recognition reads a module's children, parameters and plain attributes: never its class name (a
user may call the class anything) and never its forward code. Each family says

- `match(module)`: whether the module has the family's structure;
- `taps(module)`: which of its own sub-modules to hook while a capture is open, and whether their
  input or output is kept (the module's own input and output are always taken, by a pre-hook and a
  hook on the module itself);
- `variants`: the computations that structure may hide (DANet's PAM or CCNet's criss-cross behind
  the same query_conv / key_conv / value_conv / gamma; the non-local block's embedded-Gaussian,
  dot-product or Gaussian form; CAM's official or paper form). Capture tries them, in the order
  `order(module)` proposes, and keeps the first one whose reconstruction reproduces the module's
  output (attnviz.capture.families.verify holds the maths).

The families, with the public code each was read from:

| family         | structure                                                          | code |
|----------------|--------------------------------------------------------------------|------|
| pam            | Conv2d query_conv, key_conv, value_conv + scalar gamma             | CASIA-IVA-Lab/DANet PAM_Module; heykeetae/Self-Attention-GAN Self_Attn (returns (out, attention)) |
| criss-cross    | the same, usually with an `INF` helper or a Softmax(dim=3)          | speedinghzl/CCNet CrissCrossAttention |
| cam            | scalar gamma + a Softmax child, no other parameters                 | CASIA-IVA-Lab/DANet CAM_Module |
| non-local      | g + W (or W_z / conv_out), theta + phi (or neither: Gaussian form)  | AlexHex7/Non-local_pytorch |
| gcnet          | Conv2d conv_mask (to 1 channel) + channel_add_conv / channel_mul_conv | xvjiarui/GCNet ContextBlock |
| eca            | an AdaptiveAvgPool2d(1) + a Conv1d(1, 1, k), any names, bias or not | BangguWu/ECANet eca_layer; xmu-xiaoma666/External-Attention-pytorch ECAAttention (gap; a conv with bias) |
| se             | avg_pool + fc = Sequential(..., Sigmoid)                            | SELayer (e.g. moskomule/senet.pytorch) |
| cbam-channel   | mlp + pool_types; or an avg and a max AdaptiveXPool2d(1) + one MLP  | Jongchan/attention-module ChannelGate; External-Attention-pytorch ChannelAttention (returns the weights) |
| cbam-spatial   | compress (no parameters) + spatial holding a Conv2d(2 -> 1); or a  | Jongchan/attention-module SpatialGate; External-Attention-pytorch SpatialAttention (returns the map) |
|                | Conv2d(2 -> 1) and a Sigmoid as its only children                   |      |

A gate that returns its weights instead of the weighted features (External-Attention-pytorch's
ChannelAttention and SpatialAttention; its CBAMBlock multiplies, then adds the residual) is its family's
"weights" form: verified against the gate's own output, its record's features being the gate's input (the
x the block multiplies).
| coord          | pool_h, pool_w, conv1, conv_h, conv_w                               | houqb/CoordAttention CoordAtt |
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["Family", "Tap", "FAMILIES", "recognise", "gamma_of", "is_own", "output_layer"]


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
class Family:
    name: str                      # the group's first variant, e.g. "pam"
    title: str                     # in words, for the app
    variants: tuple[tuple[str, str], ...]   # (family, form) pairs capture may verify, e.g. ("non-local", "dot")
    record: str                    # the record type a verified call gives
    records: str                   # what it keeps, in words
    match: Callable[[nn.Module], bool]
    taps: Callable[[nn.Module], list[Tap]]
    order: Callable[[nn.Module], tuple[int, ...]] | None = None   # variant indices to try first

    def ordered_variants(self, module: nn.Module) -> list[int]:
        first = list(self.order(module)) if self.order is not None else []
        return first + [i for i in range(len(self.variants)) if i not in first]


# ----------------------------------------------------------------------------- structure helpers


def is_own(module: nn.Module) -> bool:
    """One of attnviz's own modules: they record themselves (attnviz.modules)."""
    return type(module).__module__.startswith("attnviz.modules")


def _child(module: nn.Module, name: str, cls: type | tuple = nn.Module) -> nn.Module | None:
    child = module._modules.get(name)
    return child if isinstance(child, cls) else None


def _first(module: nn.Module | None, cls: type) -> nn.Module | None:
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


def _has_gamma(module: nn.Module) -> bool:
    return gamma_of(module) is not None


def _gamma_is_zero(module: nn.Module) -> bool:
    return gamma_of(module) == 0.0


def output_layer(module: nn.Module) -> tuple[str, nn.Module] | None:
    """A non-local block's output transform: W (AlexHex7), W_z, or conv_out."""
    for name in ("W", "W_z", "conv_out"):
        child = _child(module, name)
        if child is not None and _first(child, nn.Conv2d) is not None:
            return name, child
    return None


# ----------------------------------------------------------------------------- families


def _match_qkv(m: nn.Module) -> bool:
    q, k, v = (_child(m, n, nn.Conv2d) for n in ("query_conv", "key_conv", "value_conv"))
    return (q is not None and k is not None and v is not None and _has_gamma(m)
            and q.out_channels == k.out_channels and q.in_channels == k.in_channels == v.in_channels)


def _taps_qkv(m: nn.Module) -> list[Tap]:
    taps = [Tap("query", m.query_conv), Tap("key", m.key_conv), Tap("value", m.value_conv)]
    softmax = _child(m, "softmax", nn.Softmax)
    if softmax is not None:  # what ran, kept (as a reference, to the module's return) only when gamma = 0
        taps.append(Tap("softmax", softmax, only_if=_gamma_is_zero))
    return taps


def _order_qkv(m: nn.Module) -> tuple[int, ...]:
    softmax = _child(m, "softmax", nn.Softmax)
    criss_cross = hasattr(m, "INF") or (softmax is not None and softmax.dim == 3)
    return (1,) if criss_cross else (0,)


def _match_cam(m: nn.Module) -> bool:
    if not _has_gamma(m) or _child(m, "softmax", nn.Softmax) is None:
        return False
    gamma = m._parameters.get("gamma")
    others = [p for p in m.parameters() if p is not gamma]
    if m._modules.get("gamma") is not None:
        others = [p for p in others if all(p is not q for q in m.gamma.parameters())]
    return not others


def _taps_cam(m: nn.Module) -> list[Tap]:
    return [Tap("softmax", m.softmax)]   # C x C: small, always kept


def _match_non_local(m: nn.Module) -> bool:
    g, out = _child(m, "g"), output_layer(m)
    if g is None or out is None or _first(g, nn.Conv2d) is None:
        return False
    theta, phi = _child(m, "theta"), _child(m, "phi")
    if theta is not None:   # embedded Gaussian / dot product
        return _first(theta, nn.Conv2d) is not None and _first(phi, nn.Conv2d) is not None
    return phi is None or not any(True for _ in phi.parameters())   # Gaussian: phi absent or a pool


def _taps_non_local(m: nn.Module) -> list[Tap]:
    name, out = output_layer(m)
    taps = [Tap("g", m.g, on_owner_input=True), Tap("W", out, keep_input=True)]
    if _child(m, "theta") is not None:
        taps.append(Tap("theta", m.theta, on_owner_input=True))
    if _child(m, "phi") is not None:
        taps.append(Tap("phi", m.phi, on_owner_input=True))
    return taps


def _order_non_local(m: nn.Module) -> tuple[int, ...]:
    if _child(m, "theta") is None:
        return (2,)
    mode = getattr(m, "mode", "")
    return (1,) if isinstance(mode, str) and "dot" in mode else (0,)


def _match_gcnet(m: nn.Module) -> bool:
    mask = _child(m, "conv_mask", nn.Conv2d)
    return (mask is not None and mask.out_channels == 1
            and (_child(m, "channel_add_conv") is not None or _child(m, "channel_mul_conv") is not None))


def _taps_gcnet(m: nn.Module) -> list[Tap]:
    taps = [Tap("mask", m.conv_mask, copy=True)]
    for part in ("channel_add_conv", "channel_mul_conv"):
        if _child(m, part) is not None:
            taps.append(Tap(part, getattr(m, part), keep_input=True, copy=True))
    return taps


def _children_of(m: nn.Module, cls: type) -> list[nn.Module]:
    return [child for child in m.children() if isinstance(child, cls)]


def _is_global(pool: nn.Module) -> bool:
    size = getattr(pool, "output_size", None)
    return size == 1 or size == (1, 1)


def eca_conv(m: nn.Module) -> nn.Conv1d | None:
    """ECA's Conv1d(1, 1, k), whatever its name, beside a global average pool (whatever its name)."""
    convs = _children_of(m, nn.Conv1d)
    pools = [p for p in _children_of(m, nn.AdaptiveAvgPool2d) if _is_global(p)]
    if len(convs) != 1 or len(pools) != 1 or convs[0].in_channels != 1 or convs[0].out_channels != 1:
        return None
    return convs[0]


def _match_eca(m: nn.Module) -> bool:
    return eca_conv(m) is not None


def _taps_eca(m: nn.Module) -> list[Tap]:
    return [Tap("conv", eca_conv(m), keep_input=True, copy=True)]


def _match_se(m: nn.Module) -> bool:
    fc = _child(m, "fc", nn.Sequential)
    return (_child(m, "avg_pool") is not None and fc is not None and len(fc) > 0
            and isinstance(fc[-1], (nn.Sigmoid, nn.Hardsigmoid)))


def _taps_se(m: nn.Module) -> list[Tap]:
    return [Tap("fc", m.fc, keep_input=True, copy=True)]


def shared_mlp_gate(m: nn.Module) -> nn.Module | None:
    """The shared MLP of a CBAM channel gate that pools with its own children (External-Attention-pytorch's
    ChannelAttention: maxpool, avgpool, se, sigmoid): one global average pool, one global max pool, and
    exactly one child with parameters (the MLP, any name)."""
    if getattr(m, "pool_types", None) is not None:
        return None
    averages = [p for p in _children_of(m, nn.AdaptiveAvgPool2d) if _is_global(p)]
    maxima = [p for p in _children_of(m, nn.AdaptiveMaxPool2d) if _is_global(p)]
    learned = [c for c in m.children() if any(True for _ in c.parameters())]
    return learned[0] if len(averages) == 1 and len(maxima) == 1 and len(learned) == 1 else None


def _match_cbam_channel(m: nn.Module) -> bool:
    if shared_mlp_gate(m) is not None:
        return True
    mlp = _child(m, "mlp")
    pools = getattr(m, "pool_types", None)
    return (mlp is not None and any(True for _ in mlp.parameters())
            and isinstance(pools, (list, tuple)) and len(pools) > 0 and all(isinstance(p, str) for p in pools))


def _taps_cbam_channel(m: nn.Module) -> list[Tap]:
    mlp = shared_mlp_gate(m)
    if mlp is not None:   # its pools' outputs say which MLP call was which branch
        averages = [p for p in _children_of(m, nn.AdaptiveAvgPool2d) if _is_global(p)]
        maxima = [p for p in _children_of(m, nn.AdaptiveMaxPool2d) if _is_global(p)]
        return [Tap("mlp", mlp, keep_input=True, copy=True), Tap("avg", averages[0], copy=True),
                Tap("max", maxima[0], copy=True)]
    return [Tap("mlp", m.mlp, keep_input=True, copy=True)]


def _order_gate(m: nn.Module) -> tuple[int, ...]:
    return (1,) if shared_mlp_gate(m) is not None or spatial_weights_conv(m) is not None else (0,)


def spatial_weights_conv(m: nn.Module) -> nn.Conv2d | None:
    """The Conv2d(2 -> 1) of a spatial gate whose only children are it and a Sigmoid (External-Attention-
    pytorch's SpatialAttention: the channels' max and mean, convolved, through the sigmoid: the map)."""
    children = list(m.children())
    convs = _children_of(m, nn.Conv2d)
    if (len(children) != 2 or len(convs) != 1 or not _children_of(m, nn.Sigmoid)
            or convs[0].in_channels != 2 or convs[0].out_channels != 1):
        return None
    return convs[0]


def _match_cbam_spatial(m: nn.Module) -> bool:
    if spatial_weights_conv(m) is not None:
        return True
    compress, spatial = _child(m, "compress"), _child(m, "spatial")
    if compress is None or spatial is None or any(True for _ in compress.parameters()):
        return False
    conv = _first(spatial, nn.Conv2d)
    return conv is not None and conv.in_channels == 2 and conv.out_channels == 1


def _taps_cbam_spatial(m: nn.Module) -> list[Tap]:
    conv = spatial_weights_conv(m)
    if conv is not None:
        return [Tap("spatial", conv, keep_input=True, copy=True)]
    return [Tap("spatial", m.spatial, copy=True)]


def _match_coord(m: nn.Module) -> bool:
    return (all(_child(m, n) is not None for n in ("pool_h", "pool_w"))
            and all(_child(m, n, nn.Conv2d) is not None for n in ("conv1", "conv_h", "conv_w")))


def _taps_coord(m: nn.Module) -> list[Tap]:
    return [Tap("conv_h", m.conv_h, copy=True), Tap("conv_w", m.conv_w, copy=True)]


FAMILIES: tuple[Family, ...] = (
    Family("pam", "position attention (DANet PAM / SAGAN Self_Attn) or criss-cross (CCNet)",
           (("pam", "softmax"), ("criss-cross", "softmax")), "PositionAttentionRecord",
           "Q, K and each row's log-sum-exp (O(N·C')): any row or column of S on demand",
           _match_qkv, _taps_qkv, _order_qkv),
    Family("cam", "channel attention (DANet CAM)", (("cam", "official"), ("cam", "paper")), "ChannelMapRecord",
           "the channel map X (C x C)", _match_cam, _taps_cam),
    Family("non-local", "non-local block (Wang et al.)",
           (("non-local", "embedded"), ("non-local", "dot"), ("non-local", "gaussian")), "PositionAttentionRecord",
           "theta, phi (on the pooled grid when sub-sampled) and each row's normaliser: rows / columns on demand",
           _match_non_local, _taps_non_local, _order_non_local),
    Family("gcnet", "global context block (GCNet)", (("gcnet", "att"),), "GlobalContextRecord",
           "the one attention map softmax(conv_mask(x)) shared by every query, and the context vector",
           _match_gcnet, _taps_gcnet),
    Family("eca", "efficient channel attention (ECA)", (("eca", ""),), "ChannelAttentionRecord",
           "channel weights (B, C), the pooled descriptor and the 1D kernel", _match_eca, _taps_eca),
    Family("se", "squeeze-and-excitation (SE)", (("se", ""),), "ChannelAttentionRecord",
           "channel weights (B, C) and the pooled descriptor", _match_se, _taps_se),
    Family("cbam-channel", "CBAM channel gate", (("cbam-channel", ""), ("cbam-channel", "weights")),
           "ChannelAttentionRecord", "channel weights (B, C) and each pooling branch's MLP output",
           _match_cbam_channel, _taps_cbam_channel, _order_gate),
    Family("cbam-spatial", "CBAM spatial gate", (("cbam-spatial", ""), ("cbam-spatial", "weights")),
           "SpatialAttentionRecord", "the spatial map (B, H, W)", _match_cbam_spatial, _taps_cbam_spatial,
           _order_gate),
    Family("coord", "coordinate attention (CoordAtt)", (("coord", ""),), "CoordinateAttentionRecord",
           "height weights (B, C, H) and width weights (B, C, W)", _match_coord, _taps_coord),
)


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
