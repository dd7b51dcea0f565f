"""Capture what attention modules compute during one forward pass.

    from attnviz.capture import capture
    with capture(model) as rec:
        logits = model(x)
    rec["backbone.layer3.1.attn"].weights      # (B, C) channel weights
    rec["head.pam"].row(i)                     # (H, W): where pixel i attends
    rec["head.pam"].column(j)                  # (H, W): who attends to pixel j

The parts, one module each: `attnviz.capture.records` (what is recorded, and the maths to read it),
`attnviz.capture.recorder` (the recorder of the current call, in a ContextVar, so that threads sharing one
model never mix their records) and `attnviz.capture.readers` (the four readers, own modules, library
adapters, families by structure and the dataflow reader, in one order, whose hooks exist only while a
capture is open). This module joins them.

Position attention is never stored as S (N x N). Its record keeps the query
and key projections and the per-row log-sum-exp of the energies, which give
any row S[i, :] or column S[:, j] in O(N * C') on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from torch import nn

from attnviz.capture.dataflow import DataflowReader
from attnviz.capture.readers import attached
from attnviz.capture.recorder import Recorder, is_recording, record, recording, wants_features
from attnviz.capture.records import (
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    PositionAttentionRecord,
    Record,
    SpatialAttentionRecord,
)

__all__ = [
    "capture",
    "Recorder",
    "record",
    "is_recording",
    "wants_features",
    "Record",
    "ChannelAttentionRecord",
    "SpatialAttentionRecord",
    "CoordinateAttentionRecord",
    "PositionAttentionRecord",
    "ChannelMapRecord",
]


@contextmanager
def capture(model: nn.Module | None = None, keep_features: bool = False) -> Iterator[Recorder]:
    """Record every attention tensor computed by `model` inside the block.

    keep_features: also keep each channel-attention module's input feature
    map (B, C, H, W), for showing the channels it weights. Third-party modules
    of `model` are hooked for the duration of the block only.
    """
    with attached(model) if model is not None else nullcontext(), recording(Recorder(model, keep_features)) as rec:
        with DataflowReader(rec) if model is not None else nullcontext():
            yield rec
