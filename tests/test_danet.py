import math
import subprocess
import sys
import textwrap

import pytest
import torch
from tolerances import softmax_entry_rtol, softmax_row_sum_tolerance

from attnviz.capture import capture
from attnviz.modules.danet import (
    ChannelAttention,
    DANetHead,
    PositionAttention,
    channel_attention_map,
    position_attention,
    position_attention_reference,
)


def _pam(channels=16, seed=0):
    torch.manual_seed(seed)
    pam = PositionAttention(channels, chunk=7)
    with torch.no_grad():
        pam.alpha.fill_(0.7)
    return pam


def test_pam_equals_explicit_loop_formula(rng):
    pam = _pam()
    x = torch.randn(1, 16, 3, 4, generator=rng)
    with torch.no_grad():
        out = pam(x)
        b = pam.query_conv(x)[0].flatten(1)  # (C', N)
        c = pam.key_conv(x)[0].flatten(1)
        d = pam.value_conv(x)[0].flatten(1)  # (C, N)
        n = b.shape[1]
        s = torch.empty(n, n)
        for i in range(n):
            energies = [float(b[:, i] @ c[:, j]) for j in range(n)]
            m = max(energies)
            exps = [torch.exp(torch.tensor(e - m)) for e in energies]
            total = sum(exps)
            for j in range(n):
                s[i, j] = exps[j] / total
        expected = 0.7 * (d @ s.T).view(16, 3, 4) + x[0]
    torch.testing.assert_close(out[0], expected, rtol=1e-5, atol=1e-5)


def test_pam_rows_sum_to_one_and_chunked_equals_naive(rng):
    q = torch.randn(2, 50, 4, generator=rng)
    k = torch.randn(2, 50, 4, generator=rng)
    v = torch.randn(2, 12, 50, generator=rng)
    naive, s = position_attention_reference(q, k, v)
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 50))
    for chunk in (1, 7, 50, 1000):
        fast, lse = position_attention(q, k, v, chunk=chunk, want_log_normaliser=True)
        torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lse, torch.logsumexp(q @ k.transpose(1, 2), -1))


def test_pam_and_cam_are_identity_at_initialisation(rng):
    x = torch.randn(2, 16, 5, 5, generator=rng)
    assert PositionAttention(16).alpha.item() == 0.0
    assert ChannelAttention().beta.item() == 0.0
    torch.testing.assert_close(PositionAttention(16)(x), x)
    torch.testing.assert_close(ChannelAttention("official")(x), x)
    torch.testing.assert_close(ChannelAttention("paper")(x), x)


def test_captured_row_and_column_equal_materialised_s(rng):
    pam = _pam()
    x = torch.randn(2, 16, 4, 5, generator=rng)
    with torch.no_grad(), capture(pam) as rec:
        pam(x)
        _, s = position_attention_reference(*pam.projections(x))
    r = rec["PositionAttention"]
    assert (r.height, r.width, r.num_pixels) == (4, 5, 20)
    assert r.alpha == pytest.approx(0.7)
    for batch in (0, 1):
        # the reference sums its energies in another order: tolerances from float32 arithmetic (tests/tolerances)
        rtol, tiny = softmax_entry_rtol(r.query[batch], r.key[batch]), torch.finfo(torch.float32).tiny
        for i in (0, 7, 19):
            torch.testing.assert_close(r.row(i, batch).flatten(), s[batch, i], rtol=rtol, atol=tiny)
            torch.testing.assert_close(r.column(i, batch).flatten(), s[batch, :, i], rtol=rtol, atol=tiny)
            assert abs(r.row(i, batch).sum().item() - 1) <= softmax_row_sum_tolerance(r.num_keys)
        torch.testing.assert_close(r.matrix(batch), s[batch], rtol=rtol, atol=tiny)
    with pytest.raises(IndexError):
        r.row(20)
    with pytest.raises(MemoryError):
        r.matrix(max_pixels=10)


def test_official_cam_is_softmax_of_negative_energy_and_differs_from_paper(rng):
    x = torch.randn(2, 6, 4, 4, generator=rng)
    flat = x.flatten(2)
    energy = flat @ flat.transpose(1, 2)
    official = channel_attention_map(x, "official")
    paper = channel_attention_map(x, "paper")
    torch.testing.assert_close(official, torch.softmax(-energy, -1))
    torch.testing.assert_close(paper, torch.softmax(energy, -1))
    assert (official - paper).abs().max() > 0.1
    # the official form puts its largest weight on the least similar channel
    assert torch.equal(official.argmax(-1), energy.argmin(-1))
    torch.testing.assert_close(official.sum(-1), torch.ones(2, 6))


def test_cam_output_and_capture(rng):
    cam = ChannelAttention("paper")
    with torch.no_grad():
        cam.beta.fill_(0.5)
    x = torch.randn(1, 6, 3, 3, generator=rng)
    with torch.no_grad(), capture(cam) as rec:
        out = cam(x)
    X = torch.softmax(x.flatten(2) @ x.flatten(2).transpose(1, 2), -1)
    torch.testing.assert_close(out, 0.5 * (X @ x.flatten(2)).view_as(x) + x)
    assert rec["ChannelAttention"].form == "paper"
    torch.testing.assert_close(rec["ChannelAttention"].attention, X)
    with pytest.raises(ValueError):
        ChannelAttention("other")


def test_danet_head_outputs_and_records(rng):
    head = DANetHead(64, 11).eval()
    x = torch.randn(1, 64, 6, 8, generator=rng)
    with torch.no_grad(), capture(head) as rec:
        out = head(x)
    assert [tuple(o.shape) for o in out] == [(1, 11, 6, 8)] * 3
    assert set(rec) == {"pam", "cam"}
    assert rec["cam"].attention.shape == (1, 16, 16)  # 64 / 4 channels in each branch
    assert rec["pam"].query.shape == (1, 48, 2)  # 16 / 8 query channels


@pytest.mark.slow
def test_pam_runs_large_map_without_materialising_s():
    """N = 16384, C = 64: S alone would be 1 GiB; the chunked path must stay far below."""
    code = textwrap.dedent("""
        import resource, torch
        from attnviz.modules.danet import PositionAttention
        torch.set_num_threads(2)
        pam = PositionAttention(64, chunk=1024).eval()
        x = torch.randn(1, 64, 128, 128)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with torch.no_grad():
            out = pam(x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    growth_mib = int(result.stdout.strip().splitlines()[-1])
    assert growth_mib < 400, f"peak memory grew by {growth_mib} MiB; S would be 1024 MiB"


def test_channel_map_record_rows_in_both_forms(rng):
    x = torch.randn(1, 6, 3, 3, generator=rng)
    cam = ChannelAttention("official")
    with torch.no_grad(), capture(cam, keep_features=True) as rec:
        cam(x)
    record = rec["ChannelAttention"]
    flat = x.flatten(2)[0].double()
    energy = flat @ flat.T
    torch.testing.assert_close(record.similarity(2), energy[2])
    torch.testing.assert_close(record.softmax_argument(2), energy[2].max() - energy[2])
    torch.testing.assert_close(record.row(2), record.attention[0, 2])
    torch.testing.assert_close(record.row(2, "paper"), channel_attention_map(x, "paper")[0, 2])
    torch.testing.assert_close(record.row(2, "official").double(), torch.softmax(-energy[2], 0), rtol=1e-5, atol=1e-6)


def test_record_entry_and_channel_helpers_against_the_full_matrices(rng):
    head = DANetHead(32, 11).eval()
    with torch.no_grad():
        head.pam.alpha.fill_(0.3)
    x = torch.randn(1, 32, 5, 6, generator=rng)
    with torch.no_grad(), capture(head, keep_features=True) as rec:
        head(x)
    pam, cam = rec["pam"], rec["cam"]
    s = pam.matrix()
    energy, log_z, value = pam.entry(7, 12)
    assert value == pytest.approx(float(s[7, 12]), rel=1e-5)
    assert energy == pytest.approx(float(pam.query[0, 7] @ pam.key[0, 12]), rel=1e-5)
    torch.testing.assert_close(pam.rows(torch.tensor([7, 3])), s[[7, 3]].view(2, 5, 6))
    argument, lse = cam.softmax_terms(2, 5)
    assert math.exp(argument - lse) == pytest.approx(float(cam.attention[0, 2, 5]), rel=1e-4)
    flat = cam.features[0].flatten(1).double()
    energies = (flat @ flat[2]).tolist()
    others = [j for j in range(len(energies)) if j != 2]
    assert cam.similar_channels(2) == (max(others, key=energies.__getitem__), min(others, key=energies.__getitem__))


def test_recomputed_chunks_give_the_reference_values_and_gradients():
    """With gradients (Grad-CAM, Integrated Gradients on an eval model) each chunk of rows is recomputed in the
    backward pass instead of keeping S: the output and every input's gradient equal the naive PAM's."""
    from attnviz.modules.danet import position_attention, position_attention_reference

    torch.manual_seed(0)
    query, key, value = (
        torch.randn(2, 50, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 50, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 6, 50, dtype=torch.float64, requires_grad=True),
    )
    weights = torch.randn(2, 6, 50, dtype=torch.float64)
    expected, _ = position_attention_reference(query, key, value)
    expected_grads = torch.autograd.grad((expected * weights).sum(), (query, key, value))
    out, lse = position_attention(query, key, value, chunk=7, want_log_normaliser=True, recompute=True)
    grads = torch.autograd.grad((out * weights).sum(), (query, key, value))
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(lse, torch.logsumexp(query @ key.transpose(1, 2), dim=-1))
