"""Found by what it computes: the reader of attention modules that no other reader claims.

Every attention module computes one of two things: a softmax over positions (or channels, or branches), or a
sigmoid-like gate whose output multiplies the features. While a capture is open, `DataflowReader` (a
`torch.overrides.TorchFunctionMode`, the mechanism PyTorch's own tools use to watch calls) sees every torch
call of the forward pass without touching the user's code, and acts only inside modules that no other reader
claims (our own modules, the timm / torchvision adapters and the families recognised by structure: those and
everything inside them are left alone, so nothing is drawn twice). The module a call belongs to is the
innermost module, of a class not defined by torch.nn, whose forward is running (forward hooks keep that stack
per capture, in the recorder; a childless subclass of a torch.nn normalisation layer, timm's LayerNorm, counts as
torch.nn's: a gate inside one would be named after its caller).

What it watches, and how it reads it, by shapes only (no names):

- softmax, over any axis. Over the H*W positions of a grid seen in the module (its input's, or the input or
  output of a convolution, pooling or resampling inside it): with a second axis over a grid's positions, a
  spatial attention S (queries x keys; heads kept apart, folded out of the batch axis). The keys may lie on a
  coarser grid than the queries: spatial-reduction attention (PVT v2, Wang et al., CVMJ 2022; SegFormer, Xie
  et al., NeurIPS 2021) makes its keys with a strided convolution (or a pooling) of the token grid, whose input
  shows the queries' grid; each query then has a row of its own over the reduced keys, as in a sub-sampled
  non-local block. Without a second axis over a grid, pooling maps (GCNet-style: every query gets the same
  map), but only when the softmax's input has no query axis in the module's own computation: it is not made
  by a product with rows on both sides (`a @ b`, or an einsum, with more than one row and column, followed
  through views, reshapes and arithmetic such as an added bias), and no other axis has as many entries as the
  module's input has tokens. A softmax with a query axis whose grid is not seen is listed, not drawn: its rows
  are per query, and their mean drawn for every query would be no row the module computed. When the
  softmax's input is a product `a @ b` (matmul / bmm, optionally times a number), the factors are kept and S
  is never stored (O(N C') memory, as for DANet's PAM); otherwise S itself is kept when it fits
  `DENSE_LIMIT_BYTES`, and the Overview says when it did not. Over at most `MAX_BRANCHES` entries beside a
  channel axis: branch weights (SKNet, ResNeSt, EPSANet). Over one axis with every other axis 1: channel
  weights.
- `F.scaled_dot_product_attention` (timm's `Attention` and the transformers that call the fused kernel; and
  `nn.MultiheadAttention` off its fast path, whose `F.multi_head_attention_forward` hides its SDPA call inside its own
  handling: q, k, v are made again there as that function makes them, SDPA is run on them, and they are read only when
  the module's output is rebuilt from it bit for bit). The fused call runs unchanged; its arguments are kept as
  factors: per head q · scale (default 1 / sqrt(d)) and k, the mask as an additive bias (a boolean one as 0 / -inf, at
  the mask's own size) and is_causal; each row's log-sum-exp over all key tokens is computed from them when first read
  (O(heads N d) kept, S never stored). Each call is verified on `bounds.CHECK_ROWS` rows: S V equals the op's own
  output within float32's bound (`bounds.check_sdpa`; S V and S |V| at the call, while v is there, the bound and the
  records when the pass returns, put in call order by the recorder's tickets). The tokens are placed as the model says
  (timm's `patch_embed.grid_size` and `num_prefix_tokens`: CLS, DeiT's distillation token, registers; torchvision's
  `patch_size` and class token), else after the fewest prefix tokens that leave a grid a convolution or pooling of the
  pass made, else by the photo's aspect ratio (`geometry.token_grid`); a patch's row is drawn over the patch keys, the
  prefix tokens kept apart (`TokenAttentionRecord`). Inside a block that states windows (Swin, Liu et al., ICCV 2021:
  timm's `SwinTransformerBlock` with its `window_size`, `shift_size` and the grid of its input), the first axis holds
  the batch's windows: the call is read window by window (`WindowAttentionRecord` per head: q · scale, k, the mask
  (relative position bias and shift mask) and the log-sum-exps kept per window, no H·W x H·W) when the attention
  module's input is, bit for bit, a token map of the block rolled by -shift, padded and cut into windows as the block
  states (`_Windows.cut`), so that each row lands on the block's grid with the roll undone; otherwise it is listed
  with the reason (timm's Swin calls SDPA only in its experimental fused mode, TIMM_FUSED_ATTN=2; its default softmax
  within each window is listed, not drawn). Any other call whose first axis is not the batch, with dropout, or whose
  tokens fit no grid, is listed, not drawn.
- attention over channels made from two token factors (XCiT's cross-covariance attention, El-Nouby et al.,
  NeurIPS 2021: per head X = softmax(τ q̂ k̂ᵀ), q̂ and k̂ (d, N) of unit length over the N tokens), whether a softmax
  of scale · (a @ b) or an SDPA call on (B, heads, d, N) (timm's fused path): the product sums over the module's
  tokens (or positions), heads · d are its channels and d ≠ N. One `CrossCovarianceRecord` per head (a d x d
  `ChannelMapRecord`, drawn as DANet's X), with its head, its temperature (the product's scale; on the fused path
  the length of q's rows) and its energy; every row is rebuilt from the factors and checked against the softmax's
  output (`softmax_rtol`), or X V against the SDPA's output (`check_sdpa`, every row), else listed, not drawn.
  This comes before the readings over positions and tokens, which would take d channels for d tokens.
- sigmoid, hard-sigmoid (and their in-place forms), followed through views, reshapes and arithmetic with
  numbers (BAM's (1 + w) * x) to the multiplication with the features: one weight per channel, per pixel
  (per channel group when the batch axis holds groups, as in SGE and ShuffleAttention), a pair of row and
  column gates (coordinate attention), or one per element / per cell of another plane (SimAM, TripletAttention).
  A gate that multiplies its own input is an activation (swish), not attention, and is ignored.

Each record holds the op's own output (exact by construction; the factored form rebuilds S from the op's
own factors and the log-sum-exp of the op's own input, and is checked against the output on a few rows at
capture) and says how it was found in `found_by`, a phrase kept in no language until a page shows it ("its softmax
over 16x16 positions ..., 4 heads" in English); what the reader saw and did not draw goes to the recorder's `skipped`,
with its reason, the same way.

What differs from a reading by structure: nothing here checks the module's output against a formula, so a
softmax or gate the module computes and then discards would still be drawn; a softmax inside a fused kernel
other than `F.scaled_dot_product_attention` is not a separate call and is not seen; blocked local
attention (HaloNet's windows) is found and listed but not drawn.

Switching a gate (attnviz issue 30; `attnviz.capture.interventions` hands the reader a `GateSwitch` through
`switching`): a gate is named by the key of the record it makes ("1.cw", "block.attn:channel"), and the reader
replaces its values where they meet the features, in that multiplication, leaving every other op as it runs:
"off" by ones (the features pass unscaled: BAM's (1 + w) * x becomes x), "flat" by their mean over the axes the
gate selects on, kept for broadcasting: a channel gate over C, a pixel gate over H and W, a plane gate
(TripletAttention) over its plane, an element gate (SimAM, BAM) over C, H and W, coordinate attention's row
gate over H and its column gate over W, each per channel; a gate whose groups sit in the batch axis (SGE,
ShuffleAttention) is averaged group by group. The multiplication, not the sigmoid, is where it is done because
only there does a gate show which axes it selects on (its shape beside the features') and which record it
makes. Its record keeps the gate's own values, as a module-level switch keeps the module's. The key is
foreseen from the recorder's keys so far: it assumes that a module's calls make the same records in every pass,
and a gate switched by its module's key ("1.cw") whose call then makes several records is reported in
`GateSwitch.refused`. A gate that is itself the target of an in-place product (`gate.mul_(x)`) is not switched.
"""

from __future__ import annotations

import contextvars
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from attnviz.analysis.geometry import token_grid
from attnviz.capture.bounds import (
    check_rows,
    check_sdpa,
    log_normalisers,
    sdpa_error,
    sdpa_rows,
    softmax_rtol,
    softmax_rtol_of,
    unit_roundoff,
    unit_rows,
)
from attnviz.capture.factor_pool import factor_storage
from attnviz.capture.recorder import Recorder
from attnviz.capture.records import (
    BranchWeightRecord,
    ChannelAttentionRecord,
    CoordinateAttentionRecord,
    CrossCovarianceRecord,
    DenseAttentionRecord,
    GateRecord,
    GlobalContextRecord,
    PositionAttentionRecord,
    SpatialAttentionRecord,
    TokenAttentionRecord,
    WindowAttentionRecord,
    WindowEnergiesRecord,
)
from attnviz.i18n import Phrase

__all__ = [
    "DataflowReader",
    "frame_modules",
    "register_frames",
    "DENSE_LIMIT_BYTES",
    "MAX_BRANCHES",
    "is_candidate_owner",
    "GateSwitch",
    "switching",
    "is_gate_record",
]

DENSE_LIMIT_BYTES = 64 * 2**20  # a spatial map without factors is kept up to this size (float32, all heads)
MAX_BRANCHES = 8  # a softmax over this many entries or fewer, beside a channel axis: branches
MAX_PREFIX = 16  # a token sequence may start with this many tokens off the patch grid (CLS, distillation, registers)
_SDPA = "scaled_dot_product_attention"
_SDPA_NAME = "F.scaled_dot_product_attention"  # as the notes name it
_MHA = "multi_head_attention_forward"  # nn.MultiheadAttention's slow path (its SDPA call is inside this one's handling)
_MHA_ARGUMENTS = (
    "query",
    "key",
    "value",
    "embed_dim_to_check",
    "num_heads",
    "in_proj_weight",
    "in_proj_bias",
    "bias_k",
    "bias_v",
    "add_zero_attn",
    "dropout_p",
    "out_proj_weight",
    "out_proj_bias",
    "training",
    "key_padding_mask",
    "need_weights",
    "attn_mask",
    "use_separate_proj_weight",
    "q_proj_weight",
    "k_proj_weight",
    "v_proj_weight",
    "static_k",
    "static_v",
    "average_attn_weights",
    "is_causal",
)

_SOFTMAX = {"softmax"}
_GATES = {"sigmoid", "sigmoid_", "hardsigmoid"}
_PRODUCTS = {"matmul", "bmm", "__matmul__", "__rmatmul__"}
_VIEWS = {
    "view",
    "reshape",
    "unsqueeze",
    "squeeze",
    "flatten",
    "contiguous",
    "clone",
    "float",
    "to",
    "type_as",
    "view_as",
    "reshape_as",
    "detach",
    "permute",
    "transpose",
}
_EXPANDS = {"expand", "expand_as", "repeat", "broadcast_to"}
_SCALAR = {
    "add",
    "__add__",
    "__radd__",
    "sub",
    "__sub__",
    "__rsub__",
    "mul",
    "__mul__",
    "__rmul__",
    "div",
    "__truediv__",
    "add_",
    "mul_",
    "div_",
    "sub_",
    "__iadd__",
    "__imul__",
}
# the ops whose 4-D outputs are feature maps on a grid (a 4-D reshape of something else is not a grid)
_SPATIAL_OPS = {
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "max_pool2d_with_indices",
    "adaptive_max_pool2d_with_indices",
    "interpolate",
}
_MULTIPLY = {"mul", "__mul__", "__rmul__", "mul_", "__imul__"}
_STARTS = _SOFTMAX | _GATES | _PRODUCTS | {_SDPA, "einsum"}  # the ops `_watch` reads with nothing followed yet
# the ops that keep the query axis of a product's rows: views, expands, arithmetic (an added bias), masking
_FOLLOWS_QUERIES = _VIEWS | _EXPANDS | _SCALAR | {"masked_fill", "masked_fill_"}
_GATE_KINDS = ("gate", "plane", "elements")  # the kinds of the records made from gates (the others: softmaxes)


@dataclass(slots=True)
class _Frame:
    """One running module's forward: the owner of the calls made directly in it."""

    module: nn.Module
    claimed: bool
    x: torch.Tensor | None = None
    grids: dict[int, tuple[int, int]] = field(default_factory=dict)  # H*W -> (H, W) of 4-D tensors seen
    channels: set[int] = field(default_factory=set)  # their channel counts
    found: list[tuple[str, object]] = field(default_factory=list)  # (part, record)
    gates: list[_Gate] = field(default_factory=list)
    skipped: list[Phrase] = field(default_factory=list)  # what was seen and not drawn, and why
    switched: list[tuple[str, bool]] = field(default_factory=list)  # (key, foreseen as the call's only record)
    tokens: _Tokens | None = None  # the token layout a model states (its own, or an enclosing model's)
    block_tokens: list[torch.Tensor] = field(default_factory=list)  # a window block's first token maps (`_Windows`)
    windows: tuple[tuple[int, int], tuple[int, int]] | None = None  # (window, shift) it states (`_states_windows`)

    @property
    def window_block(self) -> bool:
        """Whether the module states windows: its first token maps are kept (`_is_block_tokens`)."""
        return self.windows is not None

    def see(self, tensor: torch.Tensor, channels: bool = True, by_op: bool = False) -> None:
        """Note a 4-D tensor's grid (and channel count). A grid a convolution or pooling reads or makes (`by_op`)
        is (B, C, H, W) by the op's own meaning and replaces a guess of the same size: the module's input, or its
        caller's, may be channels-last (timm's PVT v2 stages hand on (B, H, W, C), whose W x C would otherwise
        turn a 32x40 query grid into 40x32)."""
        if tensor.dim() == 4:
            height, width = tensor.shape[-2:]
            if channels:
                self.channels.add(int(tensor.shape[1]))
            if height * width >= 4:
                if by_op:
                    self.grids[height * width] = (int(height), int(width))
                else:
                    self.grids.setdefault(height * width, (int(height), int(width)))


class _Multiplied(NamedTuple):
    """How a gate met the features: its values as laid out there (before any expand), the features' shape."""

    values: torch.Tensor
    features: tuple[int, ...]
    derived: bool  # changed by arithmetic with numbers on the way (BAM's 1 + w)


@dataclass
class _Gate:
    op: str
    output: torch.Tensor  # the op's own output (detached)
    source: torch.Tensor | None  # the op's input (a gate on its own input is swish)
    multiplied: _Multiplied | None = None


class _Tracked(NamedTuple):
    """A tensor derived from a gate: the gate, its values as laid out here (before any expand or arithmetic),
    and whether arithmetic with numbers changed them on the way."""

    tensor: torch.Tensor
    gate: _Gate
    logical: torch.Tensor
    derived: bool


@dataclass
class GateSwitch:
    """The gates one intervention switches, by the keys of the records they make, and what came of it over the
    passes it ran in: the keys switched, and why a key could not be (module docstring)."""

    flat: bool  # False: "off", the gate becomes 1; True: "flat", its mean over the axes it selects on
    keys: frozenset[str]
    switched: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)


def is_attention_call(what: Phrase) -> bool:
    """Whether a note of what this reader left unread (`Recorder.skipped`) is about a call of attention over
    tokens (SDPA, nn.MultiheadAttention, Swin's windows), not a softmax or gate elsewhere: then the pass's
    attention layers were not all read (attnviz.analysis.rollout needs them all)."""
    key = what.key.removeprefix("dataflow.not_drawn.")
    return key.startswith(("sdpa", "mha", "windows")) or (key == "unreadable" and dict(what.values).get("op") == _SDPA)


def is_gate_record(record) -> bool:
    """Whether `record` was made by this reader from a gate that multiplies the features (so it can be switched
    by its key), not from a softmax."""
    return getattr(record, "reader", "") == "dataflow" and getattr(record, "kind", "") in _GATE_KINDS


# torch.nn's normalisation layers: a subclass of one with no children (timm's LayerNorm, LayerNorm2d) normalises,
# and owns no attention of its own; its calls belong to its caller (a frame fewer per layer: ~25 in ViT-S)
_NORMALISATIONS = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)


def is_candidate_owner(module: nn.Module) -> bool:
    """A module whose forward may own watched calls: any class not defined by torch.nn itself, but a childless
    subclass of one of its normalisation layers."""
    if type(module).__module__.startswith("torch.nn."):
        return False
    return not (isinstance(module, _NORMALISATIONS) and not module._modules)


def _found(key: str, /, **values) -> Phrase:
    """How a record was found (its `found_by`): the catalog's "dataflow.found.<key>"."""
    return Phrase.of(f"dataflow.found.{key}", **values)


def _not_drawn(key: str, /, **values) -> Phrase:
    """What was seen and why it is not drawn: the catalog's "dataflow.not_drawn.<key>"."""
    return Phrase.of(f"dataflow.not_drawn.{key}", **values)


def _shape(sizes) -> str:
    return "x".join(map(str, sizes))


# the reader watching in this context (a capture's forward pass; threads never mix), for the hooks to find
_active_reader: contextvars.ContextVar[DataflowReader | None] = contextvars.ContextVar(
    "attnviz_dataflow_reader", default=None
)


def frame_modules(model: nn.Module, claimed: list[nn.Module]) -> list[tuple]:
    """The modules of `model` whose forwards push a frame (`register_frames`), each with what a frame needs to know
    of it that only its structure says: (module, claimed, the windows it states, whether it may state a token
    layout). Every candidate owner and every claimed module, in module order."""
    claimed_ids = {id(m) for m in claimed}
    return [
        (module, id(module) in claimed_ids, _states_windows(module), _may_state_tokens(module))
        for module in model.modules()
        if id(module) in claimed_ids or is_candidate_owner(module)
    ]


def register_frames(modules: list[tuple]) -> list:
    """Forward hooks that keep the stack of running modules for the reader, on `modules` (`frame_modules`):
    every candidate owner pushes a frame, every claimed module (and so everything inside it) a claimed one."""
    facts = {id(module): rest for module, *rest in modules}

    def push(module, args):
        reader = _active_reader.get()
        if reader is None:
            return
        x = None
        for arg in args:
            if isinstance(arg, torch.Tensor):
                x = arg.detach()
                break
        claimed, windows, states_tokens = facts[id(module)]
        frame = _Frame(module, claimed, x, windows=windows)
        stack = reader.frames
        caller = stack[-1] if stack else None
        if caller is not None and caller.grids:  # the caller's grids hold here too (a token attention on a map)
            frame.grids.update(caller.grids)
        if not claimed:
            frame.tokens = (states_tokens and _model_tokens(module, x)) or (caller.tokens if caller else None)
            if x is not None:
                frame.see(x)
        stack.append(frame)

    def pop(module, args, output):
        reader = _active_reader.get()
        if reader is None:
            return
        stack = reader.frames
        if not stack or stack[-1].module is not module:
            return
        frame = stack.pop()
        # nothing seen in most modules: nothing to record, note or hand on
        if (frame.found or frame.gates or frame.skipped or frame.switched) and not frame.claimed:
            reader.finish(frame, [f.x.shape for f in reversed(stack) if f.x is not None])
        if not stack and reader.unfinished:  # the pass has returned: its SDPA calls are checked and recorded
            reader.flush()

    handles = []
    for module, *_ in modules:
        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop, always_call=True))  # a forward that raises pops too
    return handles


class DataflowReader(TorchFunctionMode):
    """Watches softmax, gates and the products feeding them, inside unclaimed modules (module docstring)."""

    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder
        self.frames: list[_Frame] = []  # the running modules' forwards, innermost last (register_frames' hooks)
        self._token: contextvars.Token | None = None
        self.tracked: dict[int, _Tracked] = {}  # gate-derived tensors by id
        self.products: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]] = {}  # a @ b (x scale)
        # tensors made by a product with rows on both sides, and what is derived from them (by id; not kept alive)
        self.queried: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
        self.switch: GateSwitch | None = None  # the gates to switch in this context's passes (`switching`)
        self.made: dict[int, tuple[int, int]] = {}  # H*W -> (H, W) of every grid a convolution or pooling made
        # finished modules whose records wait for the pass to return (`finish`): (frame, enclosing shapes, ticket)
        self.unfinished: list[tuple[_Frame, list, int]] = []

    def __enter__(self):
        self._token = _active_reader.set(self)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            if self.unfinished:  # records not made yet (flush never raises: each module's are made apart)
                self.flush()
        finally:  # whatever happened, this context is left as it was found: no reader, no mode, no frames
            _active_reader.reset(self._token)
            self.frames.clear()
            self.tracked.clear()
            self.products.clear()
            self.queried.clear()
            self.made.clear()
            super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # called for every op of the forward pass: the common cases first, and no_grad entered only when needed
        kwargs = kwargs or {}
        frames = self.frames
        if not frames or frames[-1].claimed:
            return func(*args, **kwargs)
        frame = frames[-1]
        name = getattr(func, "__name__", "")
        switched = self.switch is not None and name in _MULTIPLY
        out = func(*(self._switched(args) if switched else args), **kwargs)
        if name != _MHA:
            if not isinstance(out, torch.Tensor):
                return out
            if name in _SPATIAL_OPS:
                if args and isinstance(args[0], torch.Tensor):  # the grid it reads (a token grid reshaped for it)
                    frame.see(args[0], channels=False, by_op=True)
                frame.see(out, by_op=True)
                if out.dim() == 4 and out.shape[-2] * out.shape[-1] >= 4:
                    self.made[out.shape[-2] * out.shape[-1]] = (int(out.shape[-2]), int(out.shape[-1]))
            if name not in _STARTS and frame.windows is None and not (self.tracked or self.products or self.queried):
                return out  # an op that starts nothing, while nothing is followed: most ops of a transformer
        try:
            with torch.no_grad() if torch.is_grad_enabled() else nullcontext():
                if name == _MHA:
                    self._mha(frame, args, kwargs, out)
                else:
                    self._watch(frame, name, args, kwargs, out)
        except Exception as error:  # noqa: BLE001 - reading must never break the user's forward pass
            frame.skipped.append(_not_drawn("unreadable", op=name, error=f"{type(error).__name__}: {error}"))
        return out

    # -- a module returns

    def finish(self, frame: _Frame, enclosing: list) -> None:
        """`frame`'s module has returned: its gates that multiplied nothing go to its caller, its records and notes
        to the recorder, now, or when the pass returns (`flush`) if it made an SDPA call (or a module before it in
        this pass did): then its calls are checked and made records together, at the place its return took."""
        stack = self.frames
        waiting = [gate for gate in frame.gates if gate.multiplied is None]
        if waiting and stack and not stack[-1].claimed:  # a gate module (timm's Sigmoid) returns its output:
            stack[-1].gates.extend(waiting)  # the caller multiplies, so the caller owns it
        frame.gates = [gate for gate in frame.gates if gate.multiplied is not None]
        if self.switch is None and (self.unfinished or any(isinstance(what, _SdpaRead) for _, what in frame.found)):
            # kept until the pass returns without what only the pass needed: the input's shape, not its values
            frame.x = None if frame.x is None else torch.empty(frame.x.shape, device="meta")
            frame.block_tokens.clear()
            self.unfinished.append((frame, enclosing, self.recorder.reserve()))
            return
        self._record(frame, enclosing)

    def flush(self) -> None:
        """Record the modules `finish` kept waiting, at the places their returns took (the recorder's tickets). Their
        SDPA calls' checks are finished here and their records made: inside the pass, between a transformer layer's
        large products, this reader's own small ops ran two to three times slower than in a row (measured with
        perf_counter around them; `python -m attnviz.bench --only transformers` for the whole capture)."""
        unfinished, self.unfinished = self.unfinished, []
        for frame, enclosing, ticket in unfinished:
            self._record(frame, enclosing, ticket)

    def _record(self, frame: _Frame, enclosing: list, ticket: int | None = None) -> None:
        """`frame`'s SDPA calls checked and its records and notes given to the recorder (at `ticket`'s place). Its
        ops are this reader's own: run with no torch function mode (this one is on while a module returns), so that
        none of them is read as the caller's. An error here is noted for the module; it never reaches the forward."""
        try:
            with torch.no_grad(), torch._C.DisableTorchFunction():
                _resolve_sdpa(frame)
                before = len(self.recorder)
                _finish(self.recorder, frame, enclosing, ticket=ticket)
        except Exception as error:  # noqa: BLE001 - reading must never break the user's forward pass
            note = _not_drawn("unreadable", op="records", error=f"{type(error).__name__}: {error}")
            self.recorder.skip(frame.module, note, ticket=ticket)
            return
        if self.switch is not None:
            self.confirm_switched(frame, len(self.recorder) - before)

    # -- what each call means

    def _watch(self, frame: _Frame, name: str, args, kwargs, out: torch.Tensor) -> None:
        first = args[0] if args else None
        if _is_block_tokens(frame, out):  # what a window block may cut into windows (`_sdpa_windows` checks which)
            frame.block_tokens.append(out.detach())
        if name not in _STARTS and not (self.tracked or self.products or self.queried):
            return  # an op that starts nothing, while nothing is followed (in a window block)
        if name in _SOFTMAX:
            dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else None)
            if dim is None:  # F.softmax's legacy implicit axis
                dim = 0 if first.dim() in (0, 1, 3) else 1
            self._softmax(frame, first, out, dim % max(first.dim(), 1))
        elif name == _SDPA:
            self._sdpa(frame, args, kwargs, out)
        elif name in _GATES:
            gate = _Gate(name, out.detach(), None if name.endswith("_") else first)
            frame.gates.append(gate)
            self.tracked[id(out)] = _Tracked(out, gate, out, False)
        elif name in _PRODUCTS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            a, b = args[0], args[1]
            if name == "__rmatmul__":
                a, b = b, a
            if a.dim() >= 2 and b.dim() >= 2:
                self.products[id(out)] = (out, a.detach(), b.detach(), 1.0)
                if a.shape[-2] > 1 and b.shape[-1] > 1:
                    self.queried[id(out)] = out
        elif name == "einsum" and _einsum_has_rows(args):
            self.queried[id(out)] = out
        elif isinstance(first, torch.Tensor) and id(first) in self.tracked:
            self._follow_gate(name, args, out)
        elif len(args) >= 2 and isinstance(args[1], torch.Tensor) and id(args[1]) in self.tracked:
            self._follow_gate(name, (args[1], args[0]), out)
        if isinstance(first, torch.Tensor) and id(first) in self.products and first is not out:
            self._follow_product(name, args, out)
        if name in _FOLLOWS_QUERIES and any(self._is_queried(a) for a in args[:2]):
            self.queried[id(out)] = out

    def _is_queried(self, tensor) -> bool:
        """Whether `tensor` was made by a product with rows on both sides, or derived from one (module docstring)."""
        return isinstance(tensor, torch.Tensor) and self.queried.get(id(tensor)) is tensor

    def _has_query_axis(self, frame: _Frame, inp: torch.Tensor, shape: tuple[int, ...], dim: int) -> bool:
        """Whether a softmax of `inp` over `dim` has a query axis in the module's own computation: its input came
        from a product with rows on both sides, or another axis has as many entries as the module's input has
        tokens ((B, N, C)). Pooling maps (GCNet's softmax of a 1-channel convolution over H*W) have neither."""
        if self._is_queried(inp):
            return True
        tokens = int(frame.x.shape[1]) if frame.x is not None and frame.x.dim() == 3 else 0
        return tokens > 1 and any(shape[i] == tokens for i in range(1, len(shape)) if i != dim)

    def _follow_gate(self, name: str, args, out: torch.Tensor) -> None:
        tracked = self.tracked[id(args[0])]
        if tracked.tensor is not args[0]:
            return
        gate, logical, derived = tracked.gate, tracked.logical, tracked.derived
        other = args[1] if len(args) > 1 else None
        if name in _MULTIPLY and isinstance(other, torch.Tensor) and other.dim() >= 3 and id(other) not in self.tracked:
            if self._applies_to(tracked, other) and gate.multiplied is None:
                gate.multiplied = _Multiplied(logical.detach(), tuple(other.shape), derived)
            return
        if name in _VIEWS:
            self.tracked[id(out)] = _Tracked(out, gate, logical if derived else out, derived)
        elif name in _EXPANDS:
            self.tracked[id(out)] = _Tracked(out, gate, logical, derived)  # the logical gate keeps its own size
        elif name in _SCALAR and (
            other is None or isinstance(other, (int, float)) or (isinstance(other, torch.Tensor) and other.dim() == 0)
        ):
            self.tracked[id(out)] = _Tracked(out, gate, logical, True)

    def _applies_to(self, tracked: _Tracked, other) -> bool:
        """Whether multiplying the tracked gate by `other` applies it to features: a tensor with a channel axis
        and a grid, not another gate, and not the gate's own input (x * sigmoid(x) is an activation)."""
        return (
            isinstance(other, torch.Tensor)
            and other.dim() >= 3
            and id(other) not in self.tracked
            and not (tracked.gate.source is not None and other is tracked.gate.source)
        )

    # -- switching a gate (module docstring)

    def _switched(self, args) -> tuple:
        """`args` of a multiplication, with the operand that is a switched gate meeting the features replaced."""
        for index in (0, 1) if len(args) >= 2 else ():
            tracked = self.tracked.get(id(args[index]))
            other = args[1 - index]
            if tracked is None or tracked.tensor is not args[index] or not self._applies_to(tracked, other):
                continue
            owner = next((i for i in reversed(range(len(self.frames))) if _holds(self.frames[i], tracked.gate)), None)
            if owner is None:
                continue
            own = _own_shape(self.frames, owner)
            kind = _gate_kind(tuple(tracked.logical.shape), tuple(other.shape), own)
            if kind is None or not self._is_switched(owner, tracked.gate, kind, own):
                continue
            operand = args[index]
            replaced = (
                operand.mean(_selecting_axes(kind), keepdim=True) if self.switch.flat else torch.ones_like(operand)
            )
            return (*args[:index], replaced, *args[index + 1 :])
        return args

    def _is_switched(self, owner: int, gate: _Gate, kind: str, own: tuple[int, ...] | None) -> bool:
        """Whether the record `gate` will make in the frame `owner` has a key to switch: foreseen as `_finish`
        and `Recorder.add` will name it, as its call's only record or as one of several (the part its kind
        gives, counting the earlier gates of its call with the same part)."""
        frame = self.frames[owner]
        path = self.recorder.name_of(frame.module)
        alone = _free_key(self.recorder, path, 0)
        part = _record_part(kind)
        earlier = 0
        if part != "coordinate":
            for before in frame.gates[: next(i for i, g in enumerate(frame.gates) if g is gate)]:
                made = before.multiplied
                earlier += made is not None and _gate_kind(tuple(made.values.shape), made.features, own) == kind
        several = _free_key(self.recorder, f"{path}:{part}", earlier)
        for key, is_alone in ((alone, True), (several, False)):
            if key in self.switch.keys:
                self.switch.switched.add(key)
                frame.switched.append((key, is_alone))
                return True
        return False

    def confirm_switched(self, frame: _Frame, records: int) -> None:
        """After `frame`'s call made `records` records: a gate switched as its call's only record must have been
        (and one switched as one of several, too); otherwise the key named something else in the pass it came
        from, and the switch is refused."""
        for key, alone in frame.switched:
            if alone != (records == 1) and self.switch is not None:
                self.switch.refused.append(f"{key}: its call made {records} records in this pass")

    def _follow_product(self, name: str, args, out: torch.Tensor) -> None:
        tensor, a, b, scale = self.products[id(args[0])]
        other = args[1] if len(args) > 1 else None
        if _per_matrix(other, out):  # one number per matrix of the product (XCiT's temperature, one per head)
            other = other.detach()
        elif not isinstance(other, (int, float)):
            return
        else:
            other = float(other)
        if name in ("mul", "__mul__", "__rmul__"):
            self.products[id(out)] = (out, a, b, scale * other)
        elif name in ("div", "__truediv__"):
            self.products[id(out)] = (out, a, b, scale / other)

    # -- softmax by shapes

    def _softmax(self, frame: _Frame, inp: torch.Tensor, out: torch.Tensor, dim: int) -> None:
        shape = tuple(out.shape)
        batch = frame.x.shape[0] if frame.x is not None and frame.x.dim() > 0 else shape[0]
        if out.dim() < 2:
            frame.skipped.append(_not_drawn("no_batch", size=shape[0]))
            return
        if dim == 0 and shape[0] <= MAX_BRANCHES and len(shape) > 2 and shape[1] % batch == 0:
            out, dim, shape = out.movedim(0, 1), 1, (shape[1], shape[0], *shape[2:])  # branches stacked first (SK)
        if dim == 0:
            frame.skipped.append(_not_drawn("over_batch", shape=_shape(shape)))
            return
        if shape[0] % batch:
            frame.skipped.append(_not_drawn("not_batch", shape=_shape(shape)))
            return
        size = shape[dim]
        if self._softmax_windows(frame, inp, out, dim):
            return
        if self._channel_map(frame, inp, out, dim, batch):
            return
        if self._is_positions(frame, size):
            self._over_positions(frame, inp, out, dim, batch)
        elif dim == 1 and size <= MAX_BRANCHES and math.prod(shape[2:]) in frame.grids:
            weights = out.detach().reshape(shape[0], size, *frame.grids[math.prod(shape[2:])])
            weights = _fold_batch(weights, batch).reshape(batch, -1, *weights.shape[-2:])
            frame.found.append(
                (
                    "descriptors",
                    GateRecord("softmax", weights, ("K", "H", "W"), found_by=_found("descriptors", size=size)),
                )
            )
        elif size <= MAX_BRANCHES and math.prod(shape[1:]) > size:
            weights = out.detach().movedim(dim, 1).reshape(shape[0], size, -1)
            weights = _fold_batch(weights, batch).reshape(batch, -1, size, weights.shape[-1])
            weights = weights.transpose(1, 2).reshape(batch, size, -1)
            frame.found.append(
                (
                    "branches",
                    BranchWeightRecord(
                        "branches", weights, found_by=_found("branches", size=size, channels=weights.shape[-1])
                    ),
                )
            )
        elif math.prod(shape[1:]) == size and size in frame.channels:
            weights = out.detach().reshape(shape[0], size)
            frame.found.append(
                (
                    "channels",
                    ChannelAttentionRecord(
                        "softmax", _fold_batch(weights, batch), found_by=_found("channels", size=size)
                    ),
                )
            )
        elif len(shape) == 4 and shape[1] * shape[2] in frame.grids:
            frame.skipped.append(_not_drawn("local", size=size, queries=shape[2], blocks=shape[1]))
        else:
            frame.skipped.append(_not_drawn("no_grid", size=size, shape=_shape(shape)))

    def _softmax_windows(self, frame: _Frame, inp: torch.Tensor, out: torch.Tensor, dim: int) -> bool:
        """A softmax over the last axis of (B · windows, heads, tokens, tokens) energies made from a product, inside
        a block that states windows: Swin's window attention on its explicit path (timm's default: q kᵀ · scale
        plus the relative position bias and, shifted, the mask, then `nn.Softmax`). True when it was one: a
        `WindowEnergiesRecord` per head (the energies kept as computed), or listed with the reason (the same
        checks as `_sdpa_windows`: the block's grid, the shape its windows give, its input cut from the block's
        tokens). The rows rebuilt from the kept energies must equal the op's output within float32's bound."""
        block = next((f for f in reversed(self.frames) if f.window_block), None)
        if block is None or out.dim() != 4 or dim != 3 or not self._is_queried(inp):
            return False
        shape, (window, shift) = _shape(out.shape), block.windows
        tokens = window[0] * window[1]
        layout = _block_grid(frame, block, "softmax", shape)
        if layout is None or not _windows_in_place(frame, block, layout, "softmax", shape, out.shape[0], out.shape[2:]):
            return True
        heads, (batch, count) = out.shape[1], (layout.batch, layout.count)
        energy = inp.detach().float()
        rows = check_rows(tokens)
        # the same softmax of the same energies: off only by the exps' and the sum's rounding (delta = 0)
        rtol = softmax_rtol_of(0.0, 1, tokens, unit_roundoff(inp, out))
        rebuilt, seen = torch.softmax(energy[:, :, rows], dim=-1), out.detach()[:, :, rows].float()
        difference = (rebuilt - seen).abs()
        if not bool((difference <= rtol * seen + torch.finfo(out.dtype).tiny).all()):  # a half softmax: its subnormals
            frame.skipped.append(_not_drawn("windows_mismatch", shape=shape))
            return True
        energy = energy.reshape(batch, count, heads, tokens, tokens)
        log_normaliser = torch.logsumexp(energy, dim=-1)  # (B, windows, heads, tokens): one window's keys a row
        found_by = _found("softmax_windows", **_window_words(layout, heads))
        for head in range(heads):
            frame.found.append(
                (
                    f"head{head}" if heads > 1 else "map",
                    WindowEnergiesRecord(
                        "dataflow",
                        None,
                        None,
                        log_normaliser[:, :, head],
                        *layout.grid,
                        window,
                        shift,
                        energy=energy[:, :, head],
                        head=head if heads > 1 else None,
                        heads=heads,
                        max_error=float(difference.max()),
                        found_by=found_by,
                    ),
                )
            )
        return True

    def _channel_map(self, frame: _Frame, inp: torch.Tensor, out: torch.Tensor, dim: int, batch: int) -> bool:
        """A softmax over channels of a product of two token factors, made here into a `CrossCovarianceRecord` per
        head (XCiT's XCA: softmax(τ q̂ k̂ᵀ) over its last axis, q̂ and k̂ (d, N) per head): True when it was one
        (recorded, or listed when its rows did not verify). Its input must be scale · (a @ b) with `a` (..., d, N)
        and `b` (..., N, d), N the module's tokens (or positions) and heads · d its channels, d ≠ N (a product
        over the channels, as q kᵀ of token attention, is the other reading). Every row of softmax(scale · a b)
        rebuilt from the factors in float32 must equal the op's output within `softmax_rtol`'s bound."""
        entry = self.products.get(id(inp))
        counts = _tokens_and_channels(frame.x)
        if entry is None or entry[0] is not inp or dim != inp.dim() - 1 or counts is None or inp.dim() < 3:
            return False
        _, a, b, scale = entry
        (tokens, channels), size = counts, inp.shape[-1]
        if not (a.shape[-2:] == (size, tokens) and b.shape[-2:] == (tokens, size) and inp.shape[-2] == size != tokens):
            return False
        heads = inp.numel() // (batch * size * size)
        if heads * size != channels or a.numel() != batch * heads * size * tokens or b.numel() != a.numel():
            return False
        scales = torch.as_tensor(scale, dtype=torch.float32).broadcast_to((*inp.shape[:-2], 1, 1)).reshape(batch, heads)
        query = a.float().reshape(batch, heads, size, tokens) * scales[..., None, None]
        key = b.float().reshape(batch, heads, tokens, size).transpose(-1, -2)
        unit = unit_roundoff(inp, out)
        seen = out.detach().reshape(batch, heads, size, size).float()
        rebuilt = torch.softmax(query @ key.transpose(-1, -2), dim=-1)
        rtol = softmax_rtol(query, key, unit)
        if not (
            torch.allclose(rebuilt, seen, rtol=rtol, atol=float(torch.finfo(out.dtype).tiny))
            and bool((scales == scales[:1]).all())
        ):
            frame.skipped.append(_not_drawn("channel_mismatch", size=size, shape=_shape(inp.shape), tokens=tokens))
            return True
        normalised = unit_rows(a.float().reshape(-1, tokens), unit) and unit_rows(b.float().transpose(-1, -2), unit)
        energy = inp.detach().float().reshape(batch, heads, size, size)
        error = float((rebuilt - seen).abs().max())
        self._add_channel_maps(frame, seen, energy, scales[0], normalised, ("channel_map", tokens, error))
        return True

    @staticmethod
    def _add_channel_maps(frame, attention, energy, temperatures, normalised: bool, how) -> None:
        """One `CrossCovarianceRecord` per head of `attention` (B, heads, d, d), its `energy` and temperature;
        `how`: (the found_by words' key, the tokens summed over, the largest error of the check)."""
        (words, tokens, error), heads, size = how, attention.shape[1], attention.shape[-1]
        found_by = _found(
            words,
            size=size,
            heads=_found("heads", count=heads) if heads > 1 else "",
            tokens=tokens,
            how=_found("channel_unit" if normalised else "channel_plain"),
        )
        for head in range(heads):
            frame.found.append(
                (
                    f"head{head}" if heads > 1 else "map",
                    CrossCovarianceRecord(
                        "dataflow",
                        attention[:, head],
                        "paper",
                        math.nan,
                        energy=energy[:, head],
                        temperature=float(temperatures[head]),
                        head=head if heads > 1 else None,
                        heads=heads,
                        normalised=normalised,
                        max_error=error,
                        found_by=found_by,
                    ),
                )
            )

    @staticmethod
    def _is_positions(frame: _Frame, size: int) -> bool:
        """A softmax over `size` entries is over positions when a grid of the module has that many and no
        channel count does; when both do, the module input's own grid and channels decide (a grid wins a tie)."""
        if size not in frame.grids:
            return False
        if size not in frame.channels or frame.x is None or frame.x.dim() != 4:
            return True
        _, channels, height, width = frame.x.shape
        return not (size == channels and size != height * width)

    def _over_positions(self, frame: _Frame, inp: torch.Tensor, out: torch.Tensor, dim: int, batch: int) -> None:
        shape = tuple(out.shape)
        grids = frame.grids
        key_hw = grids[shape[dim]]
        own = None if frame.x is None or frame.x.dim() != 4 else tuple(frame.x.shape[-2:])
        if own is not None and own[0] * own[1] == shape[dim]:
            key_hw = own
        candidates = [i for i in (dim - 1, dim + 1) if 0 < i < len(shape) and shape[i] in grids]
        if not candidates and self._has_query_axis(frame, inp, shape, dim):  # rows per query, on no grid seen
            rows = math.prod(shape) // (batch * shape[dim])
            frame.skipped.append(
                _not_drawn("queries_unplaced", height=key_hw[0], width=key_hw[1], rows=rows, shape=_shape(shape))
            )
            return
        if not candidates:  # pooling maps: every query gets the same map
            maps = out.detach().movedim(dim, -1).reshape(shape[0], -1, shape[dim])
            maps = _fold_batch(maps, batch).reshape(batch, -1, *key_hw)
            count = maps.shape[1]
            words = _found(
                "pooling",
                height=key_hw[0],
                width=key_hw[1],
                maps=_found("pooling_maps", count=count) if count > 1 else "",
            )
            frame.found.append(("pooling", GlobalContextRecord("pooling", maps.mean(1), maps=maps, found_by=words)))
            return
        query_axis = candidates[0]
        query_hw = grids[shape[query_axis]]
        if own is not None and own[0] * own[1] == shape[query_axis]:
            query_hw = own
        rest = [i for i in range(1, len(shape)) if i not in (query_axis, dim)]
        order = [0, *rest, query_axis, dim]
        heads = shape[0] // batch * math.prod(shape[i] for i in rest)
        heads_words = _found("heads", count=heads) if heads > 1 else ""
        keys_words = "" if key_hw == query_hw else _found("queries_keys", height=key_hw[0], width=key_hw[1])
        queries = _found("queries", height=query_hw[0], width=query_hw[1], keys=keys_words, heads=heads_words)
        factored = self._factors(inp, dim, query_axis, out)
        if factored is not None:
            query, key, log_normaliser = (
                t.reshape(batch, heads, *t.shape[-2:]) if t.dim() > 2 else t for t in factored
            )
            log_normaliser = log_normaliser.reshape(batch, heads, -1)
            for head in range(heads):
                part = f"head{head}" if heads > 1 else "map"
                frame.found.append(
                    (
                        part,
                        PositionAttentionRecord(
                            "dataflow",
                            query[:, head],
                            key[:, head],
                            log_normaliser[:, head],
                            query_hw[0],
                            query_hw[1],
                            math.nan,
                            key_height=key_hw[0],
                            key_width=key_hw[1],
                            found_by=_found("factored", height=key_hw[0], width=key_hw[1], queries=queries),
                        ),
                    )
                )
            return
        maps = out.detach().permute(order).reshape(batch, heads, shape[query_axis], shape[dim])
        num_bytes = 4 * maps.numel() * (1 + (heads > 1) / heads)
        if num_bytes > DENSE_LIMIT_BYTES:
            frame.skipped.append(
                _not_drawn(
                    "too_big",
                    height=query_hw[0],
                    width=query_hw[1],
                    heads=heads_words,
                    megabytes=num_bytes / 2**20,
                    limit=DENSE_LIMIT_BYTES / 2**20,
                )
            )
            return
        maps = maps.float()
        words = {"height": key_hw[0], "width": key_hw[1], "queries": queries}
        for head in range(heads):
            frame.found.append(
                (
                    f"head{head}" if heads > 1 else "map",
                    DenseAttentionRecord(
                        "dataflow",
                        maps[:, head],
                        *query_hw,
                        key_height=key_hw[0],
                        key_width=key_hw[1],
                        head=head if heads > 1 else None,
                        heads=heads,
                        found_by=_found("dense", **words, mean=""),
                    ),
                )
            )
        if heads > 1:
            frame.found.append(
                (
                    "mean",
                    DenseAttentionRecord(
                        "dataflow",
                        maps.mean(1),
                        *query_hw,
                        key_height=key_hw[0],
                        key_width=key_hw[1],
                        head=None,
                        heads=heads,
                        found_by=_found("dense", **words, mean=_found("dense_mean")),
                    ),
                )
            )

    # -- F.scaled_dot_product_attention, read from its arguments (module docstring)

    def _sdpa(self, frame: _Frame, args, kwargs, out: torch.Tensor) -> None:
        """Read one SDPA call as factors (`_SdpaRead`): a TokenAttentionRecord per head once verified on a few rows
        (S V equals the op's own output), when its module's records are made (`finish`)."""
        call = _sdpa_arguments(args, kwargs)
        batch = frame.x.shape[0] if frame.x is not None and frame.x.dim() > 0 else call.query.shape[0]
        shape = _shape(call.query.shape)
        if call.dropout_p > 0:
            frame.skipped.append(_not_drawn("sdpa_dropout", shape=shape, p=call.dropout_p))
            return
        block = next((f for f in reversed(self.frames) if f.window_block), None)
        if block is not None:  # inside a block that states windows (Swin): its windows, or listed with the reason
            self._sdpa_windows(frame, block, call, out)
            return
        query, key, value, heads = _per_head(call, batch)
        if query is None:
            frame.skipped.append(_not_drawn("sdpa_batch", shape=shape, batch=batch))
            return
        if self._sdpa_channels(frame, call, (query, key, value), out):
            return
        photo = self.frames[0].x if self.frames and self.frames[0].x is not None else None
        photo_hw = tuple(photo.shape[-2:]) if photo is not None and photo.dim() == 4 else None
        keys_at = self._place(frame, key.shape[2], photo_hw)
        if keys_at is not None and query.shape[2] < key.shape[2] and query.shape[2] <= keys_at.prefix:
            # fewer queries than the keys' prefix tokens: no patch queries (class attention, CaiT's and XCiT's CLS
            # over every token; a learned query pooling them); read as a grid, one would pass for a 1x1 "patch" map.
            # Named as the keys' first prefix tokens: in class attention CLS asks (the SDPA call cannot tell)
            queries_at = _Tokens(query.shape[2], keys_at.names[: query.shape[2]], (0, 0), "prefix")
        elif keys_at is not None and key.shape[2] == query.shape[2]:
            queries_at = keys_at
        else:
            queries_at = self._place(frame, query.shape[2], photo_hw)
        if queries_at is None or keys_at is None:
            frame.skipped.append(_not_drawn("sdpa_unplaced", queries=query.shape[2], keys=key.shape[2], shape=shape))
            return
        scale = call.scale if call.scale is not None else 1 / math.sqrt(query.shape[-1])
        unit = unit_roundoff(call.query, out)
        # q · scale and k in storage of their own (a view into timm's fused qkv projection would keep all of it
        # alive), one block for both from the factor pool (no new memory to touch at every capture)
        factors = factor_storage(2, *query.shape, device=query.device) if query.shape == key.shape else None
        if factors is None:
            query, key = query.detach().float() * scale, key.detach().float().contiguous()
        else:
            torch.mul(query.detach().float(), scale, out=factors[0])
            query, key = factors[0], factors[1].copy_(key.detach())
        bias = _additive_bias(call.attn_mask, batch, heads, query.shape[2], key.shape[2])
        # what of the check needs v, now (S V and S |V| on a few rows); the bound when the pass returns
        rows = check_rows(query.shape[2])
        rebuilt, spread = sdpa_rows(query, key, value.detach().float(), bias, bool(call.is_causal), rows)
        seen = out.detach().reshape(*query.shape[:3], -1)[:, :, rows].clone()
        read = _SdpaRead(
            query, key, bias, bool(call.is_causal), scale, rows, rebuilt, spread, seen, unit, queries_at, keys_at, shape
        )
        frame.found.append(("", read))  # checked and made records when the module's records are (`_resolve_sdpa`)

    def _sdpa_channels(self, frame: _Frame, call: _SdpaCall, per_head, out: torch.Tensor) -> bool:
        """SDPA over channels (XCiT's XCA on timm's fused path: q̂ · τ, k̂ and v as (B, heads, d, N), scale 1): True
        when the module's tokens (or positions) are the last axis of q, k and v, heads · d its channels, d ≠ N (one
        `CrossCovarianceRecord` per head, or listed). X = softmax(scale · q kᵀ) is rebuilt from q and k, S never
        being made by the op, and read only when X V equals the op's output on every row within `check_sdpa`'s
        bound. τ is the length of q's rows where every row of a head has that one length and k's rows length 1
        (XCA's q̂ · τ and k̂), else the scale alone (`normalised` False)."""
        query, key, value = per_head
        counts = _tokens_and_channels(frame.x)
        if counts is None:
            return False
        (tokens, channels), heads, size = counts, query.shape[1], query.shape[2]
        if not (query.shape[-1] == key.shape[-1] == value.shape[-1] == tokens and key.shape[2] == size != tokens):
            return False
        if heads * size != channels:
            return False
        shape = _shape(call.query.shape)
        if call.attn_mask is not None or call.is_causal:
            frame.skipped.append(_not_drawn("channel_masked", size=size, shape=shape))
            return True
        scale = call.scale if call.scale is not None else 1 / math.sqrt(tokens)
        scaled = query.detach().float() * scale
        key, value = key.detach().float(), value.detach().float()
        unit = unit_roundoff(call.query, out)
        seen = out.detach().reshape(*scaled.shape[:3], -1)
        rows = slice(None)
        error = check_sdpa(scaled, key, value, None, False, seen, unit, rows)  # every row: seen as it is
        if error is None:
            frame.skipped.append(_not_drawn("sdpa_mismatch", shape=shape))
            return True
        energy = scaled @ key.transpose(-1, -2)
        lengths = torch.linalg.vector_norm(query.detach().float()[:1, :, :1], dim=-1)  # (1, heads, 1): τ if XCA's
        normalised = bool((lengths > 0).all()) and unit_rows(key, unit)
        normalised = normalised and unit_rows(query.detach().float() / lengths[..., None], 2 * unit)
        temperatures = lengths.reshape(heads) * scale if normalised else torch.full((heads,), float(scale))
        maps = torch.softmax(energy, dim=-1)
        self._add_channel_maps(frame, maps, energy, temperatures, normalised, ("channel_map_sdpa", tokens, error))
        return True

    def _sdpa_windows(self, frame: _Frame, block: _Frame, call: _SdpaCall, out: torch.Tensor) -> None:
        """Record one SDPA call made inside a block that states windows (Swin's `SwinTransformerBlock`: its
        `window_size`, `shift_size` and the grid of its input) as a `WindowAttentionRecord` per head, when (1) the
        call is self-attention within (B · windows) windows of window tokens each, as the block's grid cut into
        windows gives; (2) the attention module's input is, bit for bit, a token map of the block (its input, or
        one of the first maps of its shape made in it: the normed tokens) rolled by -shift, padded and cut into
        windows as `_Windows.cut` does: so the windows lie where the record puts them; (3) S V equals the op's
        output on a few rows of windows, as for any SDPA call. Otherwise listed with the reason."""
        shape = _shape(call.query.shape)
        window, shift = block.windows
        layout = _block_grid(frame, block, _SDPA_NAME, shape)
        if layout is None:
            return
        query, key, value, heads = _per_head(call, int(call.query.shape[0])) if call.query.dim() == 4 else (None,) * 4
        if query is None or call.is_causal or key.shape[2] != query.shape[2]:
            frame.skipped.append(_not_drawn("windows_form", op=_SDPA_NAME, shape=shape))
            return
        tokens = window[0] * window[1]
        if not _windows_in_place(frame, block, layout, _SDPA_NAME, shape, query.shape[0], (query.shape[2],)):
            return
        scale = call.scale if call.scale is not None else 1 / math.sqrt(query.shape[-1])
        dtype_query = call.query
        query = query.detach().float() * scale
        key, value = key.detach().float(), value.detach().float()
        bias = _additive_bias(call.attn_mask, query.shape[0], heads, tokens, tokens)
        log_normaliser = log_normalisers(query, key, bias, False)
        seen, unit = out.detach().reshape(*query.shape[:3], -1), unit_roundoff(dtype_query, out)
        rows = check_rows(query.shape[2])
        error = check_sdpa(query, key, value, bias, False, seen[:, :, rows], unit, rows)
        if error is None:
            frame.skipped.append(_not_drawn("sdpa_mismatch", shape=shape))
            return
        batch, count = layout.batch, layout.count
        query, key = (t.reshape(batch, count, heads, tokens, -1) for t in (query, key))
        log_normaliser = log_normaliser.reshape(batch, count, heads, tokens)
        if bias is not None:  # (B · windows or 1, heads or 1, tokens or 1, tokens or 1) -> (B or 1, windows or 1, ...)
            bias = bias.reshape(batch, count, *bias.shape[1:]) if bias.shape[0] > 1 else bias[None]
        mask = _found("sdpa_mask") if bias is not None else ""
        found_by = _found("sdpa_windows", **_window_words(layout, heads), mask=mask)
        for head in range(heads):
            frame.found.append(
                (
                    f"head{head}" if heads > 1 else "map",
                    WindowAttentionRecord(
                        "dataflow",
                        query[:, :, head],
                        key[:, :, head],
                        log_normaliser[:, :, head],
                        *layout.grid,
                        window,
                        shift,
                        bias=None if bias is None else bias[:, :, min(head, bias.shape[2] - 1)],
                        scale=float(scale),
                        head=head if heads > 1 else None,
                        heads=heads,
                        max_error=error,
                        found_by=found_by,
                    ),
                )
            )

    def _mha(self, frame: _Frame, args, kwargs, out) -> None:
        """`nn.MultiheadAttention` off its fast path calls `F.multi_head_attention_forward`, whose SDPA call runs
        inside this call's handling and is not seen: its q, k, v are made here as that function makes them (the
        same ops on the same inputs), SDPA is run on them, and they are read only when the module's output is
        rebuilt from that SDPA's output bit for bit (so they were the inner call's inputs). The forms with masks,
        extra key / value biases, separate projections, static keys or weights asked for are listed, not read."""
        given = {**dict(zip(_MHA_ARGUMENTS, args)), **kwargs}
        query, key, value, heads = (given[n] for n in ("query", "key", "value", "num_heads"))
        plain = query.dim() == 3 and given.get("in_proj_weight") is not None and not given.get("need_weights", True)
        extras = ("bias_k", "bias_v", "key_padding_mask", "attn_mask", "static_k", "static_v")
        if (
            not plain
            or any(given.get(n) is not None for n in extras)
            or given.get("add_zero_attn")
            or (given.get("use_separate_proj_weight") or given.get("is_causal"))
        ):
            frame.skipped.append(_not_drawn("mha_form", shape=_shape(query.shape)))
            return
        tokens, batch, channels = query.shape
        q, k, v = F._in_projection_packed(query, key, value, given["in_proj_weight"], given.get("in_proj_bias"))
        q, k, v = (t.view(t.shape[0], batch * heads, -1).transpose(0, 1) for t in (q, k, v))
        q, k, v = (t.view(batch, heads, t.shape[1], t.shape[2]) for t in (q, k, v))
        dropout = given.get("dropout_p", 0.0) if given.get("training", True) else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, None, dropout, False)
        rebuilt = attended.permute(2, 0, 1, 3).contiguous().view(batch * tokens, channels)
        rebuilt = F.linear(rebuilt, given["out_proj_weight"], given.get("out_proj_bias")).view(tokens, batch, -1)
        output = out[0] if isinstance(out, tuple) else out
        if not torch.equal(rebuilt, output):
            frame.skipped.append(_not_drawn("sdpa_mismatch", shape=_shape(q.shape)))
            return
        self._sdpa(frame, (q, k, v), {"dropout_p": dropout}, attended)

    def _place(self, frame: _Frame, tokens: int, photo_hw: tuple[int, int] | None) -> _Tokens | None:
        """Where `tokens` tokens lie: as the model says (its patch grid and prefix count), else the fewest prefix
        tokens (up to `MAX_PREFIX`) that leave a grid a convolution or pooling of the pass made or read, else a
        grid with the photo's aspect ratio (`token_grid`)."""
        if frame.tokens is not None and frame.tokens.count == tokens:
            return frame.tokens
        for prefix in range(min(MAX_PREFIX, tokens - 4) + 1):
            grid = frame.grids.get(tokens - prefix) or self.made.get(tokens - prefix)
            if grid is not None:
                return _Tokens(prefix, _prefix_names(prefix), grid, "grid")
        found = None if photo_hw is None else token_grid(tokens, photo_hw, MAX_PREFIX)
        return None if found is None else _Tokens(found[0], _prefix_names(found[0]), found[1], "photo")

    def _factors(self, inp: torch.Tensor, dim: int, query_axis: int, out: torch.Tensor):
        """(query (..., Nq, C'), key (..., Nk, C'), log-normaliser (..., Nq)) when the softmax's input is
        scale * (a @ b) over its last axis, with the rebuilt rows matching the op's output; else None."""
        entry = self.products.get(id(inp))
        if entry is None or entry[0] is not inp or dim != inp.dim() - 1 or query_axis != dim - 1:
            return None
        _, a, b, scale = entry
        lead = inp.shape[:-2]
        query = (a * scale).reshape(-1, *a.shape[-2:]).float()
        key = b.transpose(-1, -2).reshape(-1, b.shape[-1], b.shape[-2]).float()
        if query.shape[0] != math.prod(lead) or key.shape[0] != query.shape[0]:
            return None
        log_normaliser = torch.logsumexp(inp.detach().float(), dim=-1).reshape(query.shape[0], -1)
        rows = check_rows(query.shape[1])
        rebuilt = torch.softmax(query[:, rows] @ key.transpose(-1, -2), dim=-1)  # as the record's rows are made
        seen = out.detach().reshape(query.shape[0], query.shape[1], -1)[:, rows].float()
        unit = unit_roundoff(inp, out)
        rtol = softmax_rtol(query[:, rows], key, unit)
        if not torch.allclose(rebuilt, seen, rtol=rtol, atol=float(torch.finfo(out.dtype).tiny)):
            return None
        return query, key, log_normaliser


def _per_matrix(other, out: torch.Tensor) -> bool:
    """Whether `other` is a tensor of one number per matrix of the product `out` (a single number, or its last two
    axes of size 1, as XCiT's temperature (heads, 1, 1)) that broadcasts into `out` without changing its shape."""
    if not isinstance(other, torch.Tensor) or out.dim() < 2:
        return False
    if other.numel() != 1 and (other.dim() < 2 or tuple(other.shape[-2:]) != (1, 1)):
        return False
    try:
        return torch.broadcast_shapes(other.shape, out.shape) == out.shape
    except RuntimeError:
        return False


def _tokens_and_channels(x: torch.Tensor | None) -> tuple[int, int] | None:
    """(tokens, channels) of a module's input: (N, C) of tokens (B, N, C), (H·W, C) of a feature map (B, C, H, W)."""
    if x is None or x.dim() not in (3, 4):
        return None
    return (int(x.shape[1]), int(x.shape[2])) if x.dim() == 3 else (int(x.shape[2] * x.shape[3]), int(x.shape[1]))


class _Tokens(NamedTuple):
    """Where a sequence's tokens lie: `prefix` tokens first (named), then a grid of patches, row by row; `source`
    says who told: "model" (its own attributes), "grid" (a convolution or pooling of the pass), "photo"."""

    prefix: int
    names: tuple[str, ...]
    grid: tuple[int, int]
    source: str

    @property
    def count(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]


def _prefix_names(count: int) -> tuple[str, ...]:
    return tuple(f"prefix{i}" for i in range(count))


def _model_tokens(module: nn.Module, x: torch.Tensor | None) -> _Tokens | None:
    """The token layout a model states: timm's vision transformers (`patch_embed.grid_size`, or its
    `dynamic_feat_size` of the photo with `dynamic_img_size`; `num_prefix_tokens`: CLS, DeiT's distillation token,
    registers, in this order) and torchvision's (`patch_size`, one class token); None for any other module."""
    if not _may_state_tokens(module):
        return None
    photo = tuple(x.shape[-2:]) if x is not None and x.dim() == 4 else None
    embed, prefix = getattr(module, "patch_embed", None), getattr(module, "num_prefix_tokens", None)
    if embed is not None and isinstance(prefix, int):
        grid = getattr(embed, "grid_size", None)
        if getattr(module, "dynamic_img_size", False) and photo is not None and hasattr(embed, "dynamic_feat_size"):
            grid = embed.dynamic_feat_size(photo)
        elif grid is None and photo is not None and _pair(getattr(embed, "patch_size", None)) is not None:
            patch = _pair(embed.patch_size)  # XCiT's ConvPatchEmbed: any photo size, its patch size stated
            grid = (photo[0] // patch[0], photo[1] // patch[1])
        if grid is None:
            return None
        names = tuple(
            name for name in ("cls", "dist") if isinstance(getattr(module, f"{name}_token", None), torch.Tensor)
        ) + tuple(f"reg{i}" for i in range(int(getattr(module, "num_reg_tokens", 0) or 0)))
        return _Tokens(prefix, names if len(names) == prefix else _prefix_names(prefix), tuple(map(int, grid)), "model")
    patch = getattr(module, "patch_size", None)
    if isinstance(patch, int) and isinstance(getattr(module, "class_token", None), torch.Tensor) and photo:
        return _Tokens(1, ("cls",), (photo[0] // patch, photo[1] // patch), "model")  # torchvision's ViT
    return None


def _may_state_tokens(module: nn.Module) -> bool:
    """Whether `module` has what `_model_tokens` reads (a `patch_embed` child or a `patch_size`): most have
    neither, answered without nn.Module's slow getattr."""
    return "patch_embed" in module._modules or "patch_size" in module.__dict__ or hasattr(type(module), "patch_size")


def _layout_words(tokens: _Tokens) -> Phrase:
    prefix = _found("layout_prefix", names=" + ".join(tokens.names)) if tokens.prefix else ""
    return _found("layout", prefix=prefix, height=tokens.grid[0], width=tokens.grid[1])


MAX_BLOCK_TOKENS = 4  # a window block's first token maps kept, to find the one it cuts into windows


def _pair(value) -> tuple[int, int] | None:
    """(a, b) of an int or a pair of ints (timm's `to_2tuple` forms); None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (tuple, list, torch.Size)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def _states_windows(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(window, shift) a block states (Swin's `window_size` and `shift_size`), each (rows, columns); None if not,
    or if the shift is not less than the window (no cyclic shift the paper describes)."""
    window, shift = _pair(getattr(module, "window_size", None)), _pair(getattr(module, "shift_size", None))
    if window is None or shift is None or min(window) < 1:
        return None
    return (window, shift) if all(0 <= s < w for s, w in zip(shift, window)) else None


class _Windows(NamedTuple):
    """A block's grid cut into windows (Liu et al., ICCV 2021, sec. 3.2): `batch` token maps of `grid` rows x
    columns, rolled by -`shift` (the cyclic shift), padded at the bottom and right to whole windows of `window`,
    cut row by row of windows, each batch item's in turn. The layout timm's `SwinTransformerBlock` (and the
    paper's code) states; `cut` makes it, to compare with what the attention module was given."""

    batch: int
    grid: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int]

    @property
    def padded(self) -> tuple[int, int]:
        return tuple(-(-size // step) * step for size, step in zip(self.grid, self.window))

    @property
    def count(self) -> int:
        return (self.padded[0] // self.window[0]) * (self.padded[1] // self.window[1])

    def tokens(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """`tensor` as (batch, rows, columns, C) tokens of the grid, channels last; None if it is not so."""
        if tensor is None or tensor.shape[0] != self.batch:
            return None
        height, width = self.grid
        if tensor.dim() == 4 and tuple(tensor.shape[1:3]) == (height, width):
            return tensor
        if tensor.dim() == 3 and tensor.shape[1] == height * width:  # (B, H·W, C), the paper's code
            return tensor.reshape(self.batch, height, width, -1)
        return None

    def cut(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch · windows, window tokens, C): the tokens rolled by -shift, padded and cut into windows."""
        (height, width), (rows, cols), (padded_h, padded_w) = self.grid, self.window, self.padded
        if any(self.shift):
            tokens = torch.roll(tokens, (-self.shift[0], -self.shift[1]), (1, 2))
        tokens = F.pad(tokens, (0, 0, 0, padded_w - width, 0, padded_h - height))
        channels = tokens.shape[-1]
        tokens = tokens.reshape(self.batch, padded_h // rows, rows, padded_w // cols, cols, channels)
        return tokens.permute(0, 1, 3, 2, 4, 5).reshape(-1, rows * cols, channels)


def _block_windows(frame: _Frame) -> _Windows | None:
    """The windows of a block that states them, on the grid of its input: (B, H, W, C) channels last (timm), or
    (B, H·W, C) with `input_resolution` (H, W) (the paper's code); None when the block states none or its grid is
    not known."""
    stated = frame.windows
    x = frame.x
    if stated is None or x is None or x.dim() not in (3, 4):
        return None
    if x.dim() == 4:
        grid = (int(x.shape[1]), int(x.shape[2]))
    else:
        grid = _pair(getattr(frame.module, "input_resolution", None))
        if grid is None or grid[0] * grid[1] != x.shape[1]:
            return None
    return _Windows(int(x.shape[0]), grid, *stated)


def _block_grid(frame: _Frame, block: _Frame, op: str, shape: str) -> _Windows | None:
    """`block`'s windows on its grid (`_block_windows`), or None with the reason noted in `frame` (`op` of `shape`
    read inside it: SDPA's call, or a softmax)."""
    layout = _block_windows(block)
    if layout is None:
        window = _shape(block.windows[0])
        given = _shape(block.x.shape) if block.x is not None else "?"
        frame.skipped.append(_not_drawn("windows_grid", op=op, shape=shape, window=window, input=given))
    return layout


def _windows_in_place(
    frame: _Frame, block: _Frame, layout: _Windows, op: str, shape: str, windows: int, token_axes
) -> bool:
    """Whether the attention `op` (of `shape`) lies in `block`'s windows as `layout` cuts them: its `windows` axis
    holds every window of every photo, each of its `token_axes` a window's tokens, and its input is the block's
    tokens cut so (`_cuts_block_tokens`); else the reason is noted in `frame`."""
    window, shift = layout.window, layout.shift
    tokens = window[0] * window[1]
    if windows != layout.batch * layout.count or any(size != tokens for size in token_axes):
        frame.skipped.append(
            _not_drawn(
                "windows_shape",
                op=op,
                shape=shape,
                height=layout.grid[0],
                width=layout.grid[1],
                window=_shape(window),
                windows=layout.count,
                batch=layout.batch,
                tokens=tokens,
            )
        )
        return False
    if not _cuts_block_tokens(frame, block, layout):
        shift_words = ", ".join(map(str, shift))
        frame.skipped.append(_not_drawn("windows_layout", op=op, shape=shape, window=_shape(window), shift=shift_words))
        return False
    return True


def _window_words(layout: _Windows, heads: int) -> dict:
    """What a window record's found-by phrase says of its windows: how many, their size, the grid, the shift."""
    window, shift = layout.window, layout.shift
    return dict(
        windows=layout.count,
        window_height=window[0],
        window_width=window[1],
        height=layout.grid[0],
        width=layout.grid[1],
        shift=_found("windows_shift", rows=shift[0], columns=shift[1]) if any(shift) else _found("windows_still"),
        heads=_found("heads", count=heads) if heads > 1 else "",
    )


def _cuts_block_tokens(frame: _Frame, block: _Frame, layout: _Windows) -> bool:
    """Whether the attention module's input (`frame`'s) is, bit for bit, one of `block`'s token maps (its input,
    or one of the first maps of its shape made in it: the normed tokens) rolled, padded and cut into windows as
    `layout` says: then its windows lie where a window record puts them."""
    cut = frame.x if frame is not block else None
    sources = [layout.tokens(t) for t in (block.x, *block.block_tokens)]
    return cut is not None and any(t is not None and _equal(layout.cut(t), cut) for t in sources)


def _is_block_tokens(frame: _Frame, out) -> bool:
    """Whether `out`, made directly in `frame`, is one of the first (`MAX_BLOCK_TOKENS`) token maps of a window
    block: (B, H, W, C) as many entries as its input, its batch and channels."""
    if len(frame.block_tokens) >= MAX_BLOCK_TOKENS or frame.x is None or not isinstance(out, torch.Tensor):
        return False
    if out.dim() != 4 or not frame.window_block:
        return False
    x = frame.x
    return out.shape[0] == x.shape[0] and out.shape[-1] == x.shape[-1] and out.numel() == x.numel()


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


class _SdpaCall(NamedTuple):
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    attn_mask: torch.Tensor | None
    dropout_p: float
    is_causal: bool
    scale: float | None
    enable_gqa: bool


class _SdpaRead(NamedTuple):
    """An SDPA call over tokens as read at the call (`DataflowReader._sdpa`): its factors, per head q · scale and k
    (B, heads, N, d), and what of the check needed v (S V and S |V| on a few rows, and the op's output there): the
    check's bound and the records are made when the pass returns (`DataflowReader.flush`)."""

    query: torch.Tensor
    key: torch.Tensor
    bias: torch.Tensor | None
    causal: bool
    scale: float
    rows: slice  # the query rows checked
    rebuilt: torch.Tensor  # S V on them from the factors, (B, heads, R, d) (`sdpa_rows`)
    spread: torch.Tensor  # S |V| on them
    seen: torch.Tensor  # the op's output on them
    unit: float
    queries_at: _Tokens
    keys_at: _Tokens
    shape: str  # the op's query, as the notes name it


def _resolve_sdpa(frame: _Frame) -> None:
    """Each SDPA call read in `frame` (an `_SdpaRead` in its found list) checked: its records put in its place, one
    per head, or the reason it is not drawn noted."""
    found = []
    for part, what in frame.found:
        if not isinstance(what, _SdpaRead):
            found.append((part, what))
            continue
        try:
            made = _sdpa_records(what)
        except Exception as error:  # noqa: BLE001 - reading must never break the user's forward pass
            made = _not_drawn("unreadable", op=_SDPA, error=f"{type(error).__name__}: {error}")
        if isinstance(made, Phrase):
            frame.skipped.append(made)
        else:
            found += made
    frame.found = found


def _sdpa_records(read: _SdpaRead) -> list[tuple[str, TokenAttentionRecord]] | Phrase:
    """(part, record) per head of one SDPA call once S V from its factors equals the op's output on the rows
    checked (`sdpa_error`), else why it is not drawn."""
    query, key, queries_at, keys_at = read.query, read.key, read.queries_at, read.keys_at
    heads = query.shape[1]
    error = sdpa_error(query, key, read.bias, read.rows, read.rebuilt, read.spread, read.seen, read.unit)
    if error is None:
        return _not_drawn("sdpa_mismatch", shape=read.shape)
    prefix_q, prefix_k = queries_at.prefix, keys_at.prefix
    found_by = _found(
        "sdpa",
        tokens=key.shape[2],
        layout=_layout_words(keys_at),
        queries=(
            _found("sdpa_prefix_queries", count=queries_at.prefix)
            if queries_at.source == "prefix"
            else _found("sdpa_queries", layout=_layout_words(queries_at))
            if keys_at is not queries_at
            else ""
        ),
        heads=_found("heads", count=heads) if heads > 1 else "",
        mask=_found("sdpa_mask") if read.bias is not None else _found("sdpa_causal") if read.causal else "",
        source=_found(f"tokens_from_{keys_at.source}"),
    )
    # each head's prefix and patch tokens, as views: one split and one unbind per tensor, not four slices a head
    prefix_queries, patch_queries = (p.unbind(1) for p in query.split([prefix_q, query.shape[2] - prefix_q], 2))
    prefix_keys, patch_keys = (p.unbind(1) for p in key.split([prefix_k, key.shape[2] - prefix_k], 2))
    bias = read.bias
    return [
        (
            f"head{head}" if heads > 1 else "map",
            TokenAttentionRecord(
                "dataflow",
                patch_queries[head],
                patch_keys[head],
                None,  # the log-sum-exps: computed when first read (TokenAttentionRecord)
                *queries_at.grid,
                math.nan,
                key_height=keys_at.grid[0],
                key_width=keys_at.grid[1],
                prefix_query=prefix_queries[head] if prefix_q else None,
                prefix_key=prefix_keys[head] if prefix_k else None,
                prefix_names=keys_at.names,
                bias=None if bias is None else bias[:, min(head, bias.shape[1] - 1)],
                causal=read.causal,
                scale=float(read.scale),
                head=head if heads > 1 else None,
                heads=heads,
                max_error=error,
                found_by=found_by,
            ),
        )
        for head in range(heads)
    ]


def _sdpa_arguments(args, kwargs) -> _SdpaCall:
    """F.scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *,
    scale=None, enable_gqa=False), its arguments by name however they were passed."""
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
    given = {**dict(zip(names, args)), **kwargs}
    return _SdpaCall(
        given["query"],
        given["key"],
        given["value"],
        given.get("attn_mask"),
        float(given.get("dropout_p", 0.0) or 0.0),
        bool(given.get("is_causal", False)),
        given.get("scale"),
        bool(given.get("enable_gqa", False)),
    )


def _per_head(call: _SdpaCall, batch: int):
    """(query, key, value as (B, heads, N, d), heads): a 3-D call's first axis holds the batch (and heads,
    batch-major); key heads shared by groups of query heads (enable_gqa) are repeated. None's when the first
    axis is not the batch (Swin's windows)."""
    tensors = (call.query, call.key, call.value)
    if call.query.dim() == 3 and call.query.shape[0] % batch == 0 and call.key.shape[0] == call.query.shape[0]:
        tensors = tuple(t.reshape(batch, -1, *t.shape[-2:]) for t in tensors)
    query, key, value = tensors
    if query.dim() != 4 or key.dim() != 4 or value.dim() != 4 or query.shape[0] != batch or key.shape[0] != batch:
        return None, None, None, 0
    heads = query.shape[1]
    if key.shape[1] != heads:
        if not (call.enable_gqa and heads % key.shape[1] == 0):
            return None, None, None, 0
        key, value = (t.repeat_interleave(heads // key.shape[1], dim=1) for t in (key, value))
    return query, key, value, heads


def _additive_bias(mask, batch: int, heads: int, queries: int, keys: int) -> torch.Tensor | None:
    """The op's mask as an additive float32 bias broadcastable to (B, heads, Nq, Nk): a boolean mask (True takes
    part) as 0 / -inf, a float mask as it is; None without one. Kept at the mask's own size (no N x N per head)."""
    if mask is None:
        return None
    mask = mask.detach()
    if mask.dim() == 3 and mask.shape[0] == batch * heads > 1:  # nn.MultiheadAttention's (B * heads, Nq, Nk)
        mask = mask.reshape(batch, heads, *mask.shape[-2:])
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    if torch.broadcast_shapes(mask.shape, (batch, heads, queries, keys)) != (batch, heads, queries, keys):
        raise ValueError(f"attn_mask of shape {_shape(mask.shape)} does not broadcast to the attention's")
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape).masked_fill(~mask.cpu(), -math.inf).to(mask.device)
    return mask.float()


def _einsum_has_rows(args) -> bool:
    """Whether `torch.einsum(equation, a, b)` is a product with rows on both sides: its output keeps more than
    one entry of an index only `a` has and of an index only `b` has (q k^T's queries and keys)."""
    if len(args) < 2 or not isinstance(args[0], str):
        return False
    operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
    equation = args[0].replace(" ", "")
    if len(operands) != 2 or "->" not in equation:
        return False
    inputs, output = equation.split("->")
    specs = inputs.split(",")
    if len(specs) != 2:
        return False
    sizes = [_index_sizes(spec, tuple(t.shape)) for spec, t in zip(specs, operands)]
    own = [[c for c in output if c in sizes[side] and c not in sizes[1 - side]] for side in (0, 1)]
    return all(own) and all(math.prod(sizes[side][c] for c in own[side]) > 1 for side in (0, 1))


def _index_sizes(spec: str, shape: tuple[int, ...]) -> dict[str, int]:
    """The size of each index letter of one einsum operand (an ellipsis stands for the axes it leaves)."""
    if "..." in spec:
        head, tail = spec.split("...")
        return {**dict(zip(head, shape[: len(head)])), **dict(zip(tail, shape[len(shape) - len(tail) :]))}
    return dict(zip(spec, shape))


def _fold_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """(B * g, ...) -> (B, g * ...) flattened: a batch axis that also holds groups or heads (batch-major)."""
    return tensor.reshape(batch, -1)


def _axis_names(sizes: tuple[int, ...], own: tuple[int, ...] | None) -> tuple[str, ...]:
    """Name each gate axis C, H or W by matching its size to the module input's (B, C, H, W); "?" if not one."""
    if own is None or len(own) != 4:
        return tuple("?" for _ in sizes)
    named = {"C": own[1], "H": own[2], "W": own[3]}
    names = []
    for size in sizes:
        matches = [n for n, s in named.items() if s == size]
        names.append(matches[0] if len(matches) == 1 else "?")
    return tuple(names)


def _gate_kind(shape: tuple[int, ...], features: tuple[int, ...], own: tuple[int, ...] | None) -> str | None:
    """What a gate of `shape` (as multiplied) does to features of shape `features`: "channel" (one weight per
    channel), "spatial" (one per pixel of the module's grid), "plane" (one per cell of another plane), "height" or
    "width" (coordinate attention's row or column factor), "elements" (one per element); None for none of these."""
    if len(shape) != 4 or len(features) != 4:
        return None
    _, c, h, w = shape
    _, fc, fh, fw = features
    if (h, w) == (1, 1) and c == fc:
        return "channel"
    if c == 1 and (h, w) == (fh, fw):
        return "spatial" if own is None or (h, w) == tuple(own[-2:]) else "plane"
    if c == fc and (h == 1) != (w == 1) and (h, w) in ((fh, 1), (1, fw)):
        return "width" if h == 1 else "height"
    return "elements" if shape == features else None


def _record_part(kind: str) -> str:
    """The part of the record a gate of `kind` makes (a row and a column factor make one "coordinate")."""
    return "coordinate" if kind in ("height", "width") else kind


def _selecting_axes(kind: str) -> tuple[int, ...]:
    """The axes a gate of `kind` selects on, counted from the end of its (B, C, H, W) layout (module docstring)."""
    match kind:
        case "channel":
            return (-3,)
        case "spatial" | "plane":
            return (-2, -1)
        case "height":
            return (-2,)
        case "width":
            return (-1,)
    return (-3, -2, -1)


def _gate_record(gate: _Gate, batch: int, own: tuple[int, ...] | None):
    """(part, record) for one gate that multiplied the features, or (None, why not)."""
    values, features, derived = gate.multiplied
    shape = tuple(values.shape)
    kind = _gate_kind(shape, features, own)
    if kind is None:
        if len(shape) != 4 or len(features) != 4:
            return None, _not_drawn("gate_axes", op=gate.op, shape=_shape(shape), axes=len(features))
        return None, _not_drawn("gate_shape", op=gate.op, shape=_shape(shape), features=_shape(features))
    b, c, h, w = shape
    how = _found("gate_changed" if derived else "gate_itself")
    if kind == "channel":
        weights = values.reshape(b, c).reshape(batch, -1)
        groups = _found("channel_groups", count=b // batch) if b != batch else ""
        return kind, ChannelAttentionRecord(
            "gate",
            weights,
            found_by=_found("channel_gate", op=gate.op, channels=weights.shape[1], groups=groups, how=how),
        )
    if kind == "spatial":
        maps = values[:, 0].reshape(batch, -1, h, w)
        groups = maps if maps.shape[1] > 1 else None
        words = _found(
            "pixel_gate",
            op=gate.op,
            height=h,
            width=w,
            how=how,
            groups="" if groups is None else _found("pixel_groups", count=maps.shape[1]),
        )
        return kind, SpatialAttentionRecord("gate", maps.mean(1), groups=groups, found_by=words)
    if kind == "plane":
        plane_names = _axis_names((h, w), own)
        return kind, GateRecord(
            "plane",
            values[:, 0].reshape(batch, -1, h, w).mean(1),
            plane_names,
            found_by=_found(
                "plane_gate", op=gate.op, rows=plane_names[0], columns=plane_names[1], height=h, width=w, how=how
            ),
        )
    if kind in ("height", "width"):
        return kind, values
    gate_values = values.reshape(batch, -1, h, w)
    names = _axis_names((gate_values.shape[1], h, w), own)
    return kind, GateRecord(
        "elements",
        gate_values,
        names,
        found_by=_found("element_gate", op=gate.op, channels=gate_values.shape[1], height=h, width=w, how=how),
    )


def _holds(frame: _Frame, gate: _Gate) -> bool:
    return any(held is gate for held in frame.gates)


def _own_shape(frames: list[_Frame], index: int) -> tuple[int, ...] | None:
    """The input shape the gates of `frames[index]` name their axes by (`_unpermuted`)."""
    frame = frames[index]
    own = tuple(frame.x.shape) if frame.x is not None else None
    return _unpermuted(own, [f.x.shape for f in reversed(frames[:index]) if f.x is not None])


def _free_key(recorder: Recorder, name: str, skip: int) -> str:
    """The key `Recorder.add` will give the (skip + 1)-th record named `name` added from now on: `name`, then
    "name#1", "name#2", ..., the first not taken."""
    key, n = name, 1
    while key in recorder or skip:
        if key not in recorder:
            skip -= 1
        key, n = f"{name}#{n}", n + 1
    return key


@contextmanager
def switching(switch: GateSwitch) -> Iterator[bool]:
    """Let this context's dataflow reader switch `switch`'s gates in the passes of the block; yields whether a
    reader is watching (a capture of a model is open here)."""
    reader = _active_reader.get()
    if reader is None:
        yield False
        return
    previous, reader.switch = reader.switch, switch
    try:
        yield True
    finally:
        reader.switch = previous


def _unpermuted(own: tuple[int, ...] | None, enclosing: list) -> tuple[int, ...] | None:
    """The input shape to name a gate's axes by: the module's own, unless it is a permutation of the nearest
    enclosing module's input (TripletAttention hands each gate the features with C moved to a spatial axis:
    the gate's "pixels" are then a C x W or H x C plane, not the photo's H x W)."""
    if own is None or len(own) != 4:
        return own
    for shape in enclosing:
        shape = tuple(shape)
        if len(shape) == 4 and shape[0] == own[0]:
            return shape if sorted(shape[1:]) == sorted(own[1:]) else own
    return own


def _finish(recorder: Recorder, frame: _Frame, enclosing: list | None = None, ticket: int | None = None) -> None:
    """Turn a finished module's softmaxes and gates into records (in call order) and notes, at `ticket`'s place
    when given. Its gates that multiplied nothing went to its caller already (`DataflowReader.finish`)."""
    batch = frame.x.shape[0] if frame.x is not None and frame.x.dim() > 0 else 1
    own = _unpermuted(tuple(frame.x.shape) if frame.x is not None else None, enclosing or [])
    found = list(frame.found)
    halves: dict[str, torch.Tensor] = {}
    for gate in frame.gates:
        if gate.multiplied is None:
            continue
        part, record = _gate_record(gate, batch, own)
        if part in ("height", "width"):
            halves[part] = record
        elif part is None:
            frame.skipped.append(record)
        else:
            found.append((part, record))
    if "height" in halves and "width" in halves:
        height, width = halves["height"], halves["width"]
        found.append(
            (
                "coordinate",
                CoordinateAttentionRecord(
                    "gate",
                    height[..., 0].reshape(batch, -1, height.shape[2]),
                    width[:, :, 0].reshape(batch, -1, width.shape[3]),
                    found_by=_found("coordinate"),
                ),
            )
        )
    elif halves:
        frame.skipped.append(_not_drawn("one_axis"))
    for part, record in found:
        record.reader = "dataflow"
        recorder.add(frame.module, record, part=part if len(found) > 1 else "", ticket=ticket)
    for what in frame.skipped:
        recorder.skip(frame.module, what, ticket=ticket)
