"""The branch size recorded at capture: ‖E − A‖ / ‖A‖ of DANet's PAM (E = α D Sᵀ + A), its CAM (E = β X A + A)
and CCNet's criss-cross, against an independent float64 forward, and why α's sign alone means nothing.

Tolerances are error bounds of the float32 forward that recorded the size (Higham, ch. 3; see tolerances.py):
a 1x1 convolution's entry carries at most gamma_(C+1) (|W| |x| + |b|); an energy at most gamma_d |q| . |k| plus
what its factors' errors make of it; a softmax entry then a relative exp(2 delta) - 1 plus the exp's and the
sum's rounding (softmax_entry_rtol's argument); a weighted sum of n values with weights in a distribution at most
(rtol_S + gamma_n) times the weighted |values| plus the values' own errors. The bound on each entry of the branch
is summed in the Frobenius norm; |‖b̂‖ − ‖b‖| <= ‖b̂ − b‖ gives the tolerance on the ratio.
"""

import copy
import math

import pytest
import torch
from fixtures_attention import Blob, ChannelThing, Cross, randomise
from tolerances import UNIT_ROUNDOFF_32 as U
from tolerances import gamma
from torch import nn

from attnviz.capture import capture
from attnviz.capture.records import (
    ChannelMapRecord,
    CrissCrossAttentionRecord,
    PositionAttentionRecord,
    branch_ratios,
)
from attnviz.modules.danet import ChannelAttention, PositionAttention


def _recorded(module: nn.Module, x: torch.Tensor, record_type: type):
    with torch.no_grad(), capture(module) as rec:
        out = module(x)
    (record,) = rec.of_type(record_type).values()
    return record, out


def _conv64(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the 1x1 conv of x in float64, the bound on its float32 rounding gamma_(C+1) (|W| |x| + |b|)), as (B, C, N)."""
    weight, bias = conv.weight.double(), conv.bias.double()
    x = x.double()
    exact = nn.functional.conv2d(x, weight, bias)
    bound = gamma(conv.in_channels + 1) * nn.functional.conv2d(x.abs(), weight.abs(), bias.abs())
    return exact.flatten(2), bound.flatten(2)


def _softmax_rtol(q, dq, k, dk, num_keys: int) -> float:
    """Relative error bound of a float32 softmax entry of Q K^T (q, k: (N, d) float64 with their error bounds)."""
    qa, ka = q.abs() + dq, k.abs() + dk
    delta = float((gamma(q.shape[-1]) * qa @ ka.T + dq @ k.abs().T + q.abs() @ dk.T).max())
    return math.expm1(2 * delta) + gamma(num_keys) + 4 * U


def _position_reference(module: nn.Module, x: torch.Tensor, alpha: float, cross: bool = False):
    """(‖α D Sᵀ‖ / ‖A‖ per batch item in float64, its float32 tolerance per batch item) from the module's convs."""
    with torch.no_grad():
        return _position_reference_float64(module, x, alpha, cross)


def _position_reference_float64(module: nn.Module, x: torch.Tensor, alpha: float, cross: bool):
    q, dq = _conv64(module.query_conv, x)
    k, dk = _conv64(module.key_conv, x)
    v, dv = _conv64(module.value_conv, x)
    height, width = x.shape[-2:]
    if cross:  # each pixel's cross: its column without itself, and its row
        rows, cols = torch.arange(height).repeat_interleave(width), torch.arange(width).repeat(height)
        on_cross = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
        num_keys = height + width  # the softmax's H + W terms (one of them -inf), and the two sums' lengths
    else:
        on_cross, num_keys = torch.ones(height * width, height * width, dtype=torch.bool), height * width
    ratios, tolerances = [], []
    for b in range(x.shape[0]):
        energy = (q[b].T @ k[b]).masked_fill(~on_cross, -math.inf)
        s = torch.softmax(energy, -1)  # (N, N): row i sums to 1 over i's keys
        branch = alpha * v[b] @ s.T
        a_norm = float(x[b].double().norm())
        rtol_s = _softmax_rtol(q[b].T, dq[b].T, k[b].T, dk[b].T, num_keys)
        # entry (c, i): |α| sum_j S_ij (dV_cj + |V_cj| (rtol_S + gamma_n)), then α's own product (u)
        entry_bound = abs(alpha) * ((dv[b] + v[b].abs() * (rtol_s + gamma(num_keys))) @ s.T) + U * branch.abs()
        ratios.append(float(branch.norm()) / a_norm)
        tolerances.append(float(entry_bound.norm()) / a_norm + 4 * U * ratios[-1])
    return ratios, tolerances


def _channel_reference(x: torch.Tensor, beta: float, form: str):
    """(‖β X A‖ / ‖A‖ per batch item in float64, its float32 tolerance) for CAM."""
    ratios, tolerances = [], []
    for a in x.double().flatten(2):
        channels, pixels = a.shape
        energy = a @ a.T
        argument = energy.amax(-1, keepdim=True) - energy if form == "official" else energy
        x_map = torch.softmax(argument, -1)
        branch = beta * x_map @ a
        energy_error = gamma(pixels) * float((a.abs() @ a.abs().T).max())
        delta = (2 * energy_error + U * float(argument.abs().max())) if form == "official" else energy_error
        rtol_x = math.expm1(2 * delta) + gamma(channels) + 4 * U
        entry_bound = abs(beta) * (rtol_x + gamma(channels)) * (x_map @ a.abs()) + U * branch.abs()
        a_norm = float(a.norm())
        ratios.append(float(branch.norm()) / a_norm)
        tolerances.append(float(entry_bound.norm()) / a_norm + 4 * U * ratios[-1])
    return ratios, tolerances


def _assert_within(recorded: tuple[float, ...], reference: list[float], tolerances: list[float]) -> None:
    assert recorded is not None and len(recorded) == len(reference)
    for got, want, tol in zip(recorded, reference, tolerances):
        assert tol < 1e-3 * want  # the bound is tight enough to mean something
        assert abs(got - want) <= tol, (got, want, tol)


def _own_pam(alpha: float = 0.37) -> PositionAttention:
    torch.manual_seed(0)
    pam = PositionAttention(16, chunk=7).eval()
    with torch.no_grad():
        pam.alpha.fill_(alpha)
    return pam


def test_own_pam_records_its_branch_size():
    pam = _own_pam()
    x = torch.randn(2, 16, 5, 6, generator=torch.Generator().manual_seed(1))
    record, out = _recorded(pam, x, PositionAttentionRecord)
    reference, tolerances = _position_reference(pam, x, pam.alpha.item())
    _assert_within(record.branch_ratio, reference, tolerances)
    # the same number read off the module's output: ‖E − A‖ / ‖A‖ (float32 E: its rounding u |E| enters too)
    from_output = branch_ratios(out - x, x)
    for b, value in enumerate(from_output):
        slack = tolerances[b] + U * float(out[b].double().norm() / x[b].double().norm())
        assert abs(value - reference[b]) <= slack
    assert record.branch_size(1) == record.branch_ratio[1]


def test_own_cam_records_its_branch_size():
    cam = ChannelAttention().eval()
    with torch.no_grad():
        cam.beta.fill_(-0.6)
    x = 0.3 * torch.randn(2, 8, 4, 5, generator=torch.Generator().manual_seed(2))
    record, _ = _recorded(cam, x, ChannelMapRecord)
    _assert_within(record.branch_ratio, *_channel_reference(x, cam.beta.item(), "official"))


@pytest.mark.parametrize("paper", [False, True])
def test_user_cam_records_its_branch_size(paper):
    module = randomise(ChannelThing(paper=paper))
    x = 0.3 * torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    record, _ = _recorded(module, x, ChannelMapRecord)
    _assert_within(record.branch_ratio, *_channel_reference(x, module.gamma.item(), "paper" if paper else "official"))


def test_user_pam_records_its_branch_size_as_its_float64_forward_computes_it():
    module = randomise(Blob(32))
    x = torch.randn(2, 32, 6, 7, generator=torch.Generator().manual_seed(4))
    record, _ = _recorded(module, x, PositionAttentionRecord)
    x64 = x.double()
    with torch.no_grad():
        independent = branch_ratios(copy.deepcopy(module).double()(x64) - x64, x64)  # ‖E − A‖ / ‖A‖, float64
    reference, tolerances = _position_reference(module, x, module.gamma.item())
    for mine, theirs in zip(reference, independent):
        assert mine == pytest.approx(theirs, rel=1e-12)
    _assert_within(record.branch_ratio, list(independent), tolerances)


def test_user_criss_cross_records_its_branch_size():
    module = randomise(Cross(16))
    x = torch.randn(1, 16, 5, 7, generator=torch.Generator().manual_seed(5))
    record, _ = _recorded(module, x, CrissCrossAttentionRecord)
    x64 = x.double()
    with torch.no_grad():
        independent = branch_ratios(copy.deepcopy(module).double()(x64) - x64, x64)
    reference, tolerances = _position_reference(module, x, module.gamma.item(), cross=True)
    assert reference[0] == pytest.approx(independent[0], rel=1e-12)
    _assert_within(record.branch_ratio, list(independent), tolerances)


def test_negating_alpha_and_d_changes_nothing_but_alpha_s_sign():
    """α D = (−α)(−D): the module computes the same output bit for bit (IEEE rounding is symmetric under
    negation), so the branch size is the same while α has the opposite sign."""
    pam = _own_pam(0.37)
    flipped = copy.deepcopy(pam)
    with torch.no_grad():
        flipped.alpha.neg_()
        flipped.value_conv.weight.neg_()
        flipped.value_conv.bias.neg_()
    x = torch.randn(1, 16, 5, 6, generator=torch.Generator().manual_seed(6))
    record, out = _recorded(pam, x, PositionAttentionRecord)
    record_flipped, out_flipped = _recorded(flipped, x, PositionAttentionRecord)
    assert torch.equal(out, out_flipped)
    assert record.alpha == -record_flipped.alpha == pytest.approx(0.37)
    assert record.branch_size() == record_flipped.branch_size() > 0


def test_cam_beta_sign_matters_but_not_for_the_size():
    """β has no projection in front of it: negating it changes E, and leaves the branch's size alone."""
    cam = ChannelAttention().eval()
    x = 0.3 * torch.randn(1, 8, 4, 5, generator=torch.Generator().manual_seed(7))
    sizes, outputs = [], []
    for beta in (0.6, -0.6):
        with torch.no_grad():
            cam.beta.fill_(beta)
        record, out = _recorded(cam, x, ChannelMapRecord)
        sizes.append(record.branch_size())
        outputs.append(out)
    assert sizes[0] == sizes[1] > 0
    assert not torch.allclose(outputs[0], outputs[1])


def test_untrained_module_has_no_branch_and_empty_input_has_no_size():
    pam = _own_pam(0.0)
    x = torch.randn(1, 16, 3, 4)
    record, _ = _recorded(pam, x, PositionAttentionRecord)
    assert record.branch_size() == 0.0
    assert math.isnan(branch_ratios(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))[0])  # ‖A‖ = 0: no ratio
    empty = PositionAttentionRecord(
        "pam", record.query, record.key, record.log_normaliser, 3, 4, 0.5, branch_ratio=(math.nan,)
    )
    assert empty.branch_size() is None
    assert (
        PositionAttentionRecord("pam", record.query, record.key, record.log_normaliser, 3, 4, 0.5).branch_size() is None
    )
