"""What the dataflow reader does with an SDPA call once the pass returns, and the memory its factors are kept in.

The reader keeps an SDPA call's factors and what of its check needs v at the call, and makes its records when the
pass returns (attnviz.capture.dataflow, `DataflowReader.flush`): these tests check that the records still come in
call order beside records made at once (a gate before and after the attention; the recorder's tickets), that
they are there inside the capture's block as soon as the model returns (also when the outermost module is a plain
nn.Sequential), that a call whose check fails is listed and not drawn, and that the factor pool lends a block again
only once nothing holds it (attnviz.capture.factor_pool).
"""

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnviz.capture import capture, dataflow, factor_pool
from attnviz.capture.recorder import Recorder
from attnviz.capture.records import TokenAttentionRecord


class TokenAttention(nn.Module):
    """Multi-head self-attention over a feature map's positions as tokens, through F.scaled_dot_product_attention."""

    def __init__(self, channels: int = 16, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return out.transpose(1, 2).reshape(b, c, h, w)


class Gate(nn.Module):
    """A channel gate, x * sigmoid(mean over positions): read by the dataflow reader when its module returns."""

    def forward(self, x):
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


class Tokens(nn.Module):
    """gate, attention, gate on a 4x4 feature map."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 4, stride=4)
        self.first = Gate()
        self.attention = TokenAttention()
        self.last = Gate()

    def forward(self, photo):
        return self.last(self.attention(self.first(self.embed(photo))))


def _photo() -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_records_made_when_the_pass_returns_keep_call_order_and_are_there_inside_the_block():
    torch.manual_seed(0)
    model = Tokens().eval()
    with torch.no_grad(), capture(model) as rec:
        model(_photo())
        inside = list(rec)  # read before the block closes: the pass has returned, its records are made
    assert inside == ["first", "attention:head0", "attention:head1", "last"]
    assert list(rec) == inside
    heads = [rec[f"attention:head{h}"] for h in range(2)]
    assert all(isinstance(r, TokenAttentionRecord) and r.max_error == r.max_error for r in heads)  # checked: a number


def test_an_outermost_module_that_is_no_frame_still_gets_its_records_in_order():
    torch.manual_seed(0)
    model = nn.Sequential(TokenAttention(), Gate(), TokenAttention()).eval()
    x = torch.randn(1, 16, 4, 4)
    with torch.no_grad(), capture(model) as rec:
        model(x)
        inside = list(rec)
    assert inside == ["0:head0", "0:head1", "1", "2:head0", "2:head1"]


def test_a_record_another_reader_adds_meanwhile_stays_after_the_attention_it_followed():
    """attnviz's own SE records itself during the pass, after the attention returned and before its records are
    made: the recorder still lists them in call order."""
    from attnviz.modules.se import SqueezeExcitation

    class AttentionThenSE(nn.Module):  # a frame of its own: the pass returns when it does
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 16, 4, stride=4)
            self.attention = TokenAttention()
            self.se = SqueezeExcitation(16, reduction=4)

        def forward(self, photo):
            return self.se(self.attention(self.embed(photo)))

    torch.manual_seed(0)
    model = AttentionThenSE().eval()
    with torch.no_grad(), capture(model) as rec:
        model(_photo())
    assert list(rec) == ["attention:head0", "attention:head1", "se"]
    assert list(rec.records()) == list(rec)


def test_a_call_whose_check_fails_is_listed_not_drawn_and_the_others_keep_their_place(monkeypatch):
    """A reading of SDPA's arguments that is wrong (here its scale read 10% off) must not give records: the check
    when the pass returns finds S V off the op's output and lists the call with its reason."""
    torch.manual_seed(0)
    model = Tokens().eval()
    original = dataflow._sdpa_arguments

    def misread(args, kwargs):
        call = original(args, kwargs)
        return call._replace(scale=1.1 / math.sqrt(call.query.shape[-1]))

    monkeypatch.setattr(dataflow, "_sdpa_arguments", misread)
    with torch.no_grad(), capture(model) as rec:
        model(_photo())
    assert list(rec) == ["first", "last"]
    assert [(item.module, item.what.key) for item in rec.skipped] == [("attention", "dataflow.not_drawn.sdpa_mismatch")]


def test_the_recorder_puts_late_records_and_notes_at_their_tickets_place():
    module_a, module_b, module_c = nn.Identity(), nn.ReLU(), nn.Tanh()
    model = nn.Sequential(module_a, module_b, module_c)
    recorder = Recorder(model)
    ticket = recorder.reserve()  # module 0 returned first; its records come later
    recorder.add(module_b, "b")
    recorder.skip(module_b, dataflow._not_drawn("one_axis"))
    recorder.add(module_a, "a0", part="x", ticket=ticket)
    recorder.add(module_a, "a1", part="y", ticket=ticket)
    recorder.skip(module_a, dataflow._not_drawn("one_axis"), ticket=ticket)
    recorder.add(module_c, "c")
    assert list(recorder) == ["0:x", "0:y", "1", "2"]
    assert list(recorder.records().values()) == ["a0", "a1", "b", "c"]
    assert [item.module for item in recorder.skipped] == ["0", "1"]


def test_the_factor_pool_lends_a_block_again_only_once_nothing_holds_it(monkeypatch):
    monkeypatch.setattr(factor_pool, "_blocks", {})
    monkeypatch.setattr(factor_pool, "_held", [0])
    first = factor_pool.factor_storage(2, 3, 5)
    pointer = first.data_ptr()
    head = first[1]  # a view of one part keeps the whole block lent
    del first
    second = factor_pool.factor_storage(2, 3, 5)
    assert second.data_ptr() != pointer and second.shape == (2, 3, 5) and second.dtype == torch.float32
    del head
    third = factor_pool.factor_storage(2, 3, 5)
    assert third.data_ptr() == pointer  # lent again: no new memory
    assert factor_pool.pooled_bytes() == 2 * 4 * 30
    third.fill_(1.0)
    assert float(third.sum()) == 30.0


def test_the_factor_pool_holds_at_most_its_limit_and_drops_idle_blocks_of_other_sizes(monkeypatch):
    monkeypatch.setattr(factor_pool, "_blocks", {})
    monkeypatch.setattr(factor_pool, "_held", [0])
    monkeypatch.setattr(factor_pool, "POOL_BYTES", 400)
    small = factor_pool.factor_storage(50)  # 200 bytes, pooled
    large = factor_pool.factor_storage(60)  # 240 more would pass the limit while `small` is lent: made apart
    assert factor_pool.pooled_bytes() == 200
    assert not any(block.ctypes.data == large.data_ptr() for block in factor_pool._blocks.get(60, []))
    del small, large
    again = factor_pool.factor_storage(60)  # the idle 200-byte block is dropped to make room
    assert factor_pool.pooled_bytes() == 240 and list(factor_pool._blocks) == [60]
    block = factor_pool._blocks[60][0]
    assert isinstance(block, np.ndarray) and again.data_ptr() == block.ctypes.data


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_factor_pool_leaves_other_devices_to_torch():
    block = factor_pool.factor_storage(2, 3, device="cuda")
    assert block.device.type == "cuda" and factor_pool.pooled_bytes() == factor_pool.pooled_bytes()


def test_a_module_added_after_a_capture_is_named_by_its_path():
    """The recorder keeps a model's module names between captures: a module set afterwards gets its path, not
    its class and id (found in review)."""
    torch.manual_seed(0)
    model = Tokens().eval()
    with torch.no_grad(), capture(model):
        model(_photo())
    model.last = Gate()
    with torch.no_grad(), capture(model) as rec:
        model(_photo())
    assert list(rec) == ["first", "attention:head0", "attention:head1", "last"]


class BadGate(nn.Module):
    """A gate whose first tensor argument is not the features: reading its record fails."""

    def forward(self, aux, features):
        return features * torch.sigmoid(features.mean((2, 3), keepdim=True))


class GateAfterAttention(nn.Module):
    def __init__(self, fail: bool):
        super().__init__()
        self.embed, self.attention, self.gate = nn.Conv2d(3, 16, 4, stride=4), TokenAttention(), BadGate()
        self.fail = fail

    def forward(self, photo):
        features = self.gate(torch.zeros(3, 1), self.attention(self.embed(photo)))
        if self.fail:
            raise ValueError("the user's own error")
        return features


@pytest.mark.parametrize("fail", [False, True])
def test_an_error_in_reading_or_in_the_forward_leaves_no_reader_behind(fail):
    """A record that cannot be made is noted for its module; the user's own error reaches the user unchanged;
    either way no mode and no reader stay on this thread once the block ends (found in review)."""
    from torch.overrides import _get_current_function_mode_stack

    torch.manual_seed(0)
    model = GateAfterAttention(fail).eval()
    with pytest.raises(ValueError, match="the user's own error") if fail else contextlib.nullcontext():
        with torch.no_grad(), capture(model) as rec:
            model(torch.randn(2, 3, 16, 16))
    assert _get_current_function_mode_stack() == [] and dataflow._active_reader.get() is None
    assert list(rec) == ["attention:head0", "attention:head1"]
    assert [(item.module, item.what.key) for item in rec.skipped] == [("gate", "dataflow.not_drawn.unreadable")]


def test_a_pass_that_raised_leaves_no_frame_and_the_next_pass_is_recorded_when_it_returns():
    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.boom = Tokens(), True

        def forward(self, photo):
            out = self.inner(photo)
            if self.boom:
                self.boom = False
                raise RuntimeError("boom")
            return out

    torch.manual_seed(0)
    model = Flaky().eval()
    with torch.no_grad(), capture(model) as rec:
        with pytest.raises(RuntimeError):
            model(_photo())
        model(_photo())
        inside = list(rec)
        assert dataflow._active_reader.get().frames == []
    names = ["inner.first", "inner.attention:head0", "inner.attention:head1", "inner.last"]
    assert inside == names + [name + "#1" for name in names]


def test_float64_models_and_a_float64_default_dtype_are_read(monkeypatch):
    """The check's bound counts the rebuild's float32 arithmetic (a float64 op is no longer 'off'), and the
    factors are float32 wherever they are made (the pool full, a float64 default dtype; found in review)."""
    monkeypatch.setattr(factor_pool, "POOL_BYTES", 0)
    torch.manual_seed(0)
    model = Tokens().eval()
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        with torch.no_grad(), capture(model) as rec:
            model(_photo().float())
        assert list(rec) == ["first", "attention:head0", "attention:head1", "last"]
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad(), capture(model.double()) as rec:
        model(_photo().double())
    assert list(rec) == ["first", "attention:head0", "attention:head1", "last"] and not rec.skipped
