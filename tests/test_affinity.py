"""PAM class affinity: the training loss against a naive formula, and the own-class measure by hand."""

import math

import numpy as np
import pytest
import torch

from attnviz.analysis.affinity import cell_labels, pam_affinity_loss, query_cells
from attnviz.analysis.forward import own_class_ratio
from attnviz.capture import PositionAttentionRecord, capture
from attnviz.evaluate import evaluate_model, pam_alpha
from attnviz.models import build_model

IGNORE = 11


def naive_affinity_loss(query, key, labels):
    """Build S and the target T (uniform over same-class keys) and take the cross-entropy row by row."""
    s = torch.softmax(query @ key.transpose(1, 2), dim=-1)
    total, count = 0.0, 0
    for b in range(query.shape[0]):
        for i in range(query.shape[1]):
            if labels[b, i] == IGNORE:
                continue
            same = (labels[b] == labels[b, i]).float()
            target = same / same.sum()
            total = total - (target * torch.log(s[b, i])).sum()
            count += 1
    return total / count


def test_loss_and_gradient_equal_the_naive_cross_entropy(rng):
    query = torch.randn(2, 30, 4, generator=rng, requires_grad=True)
    key = torch.randn(2, 30, 4, generator=rng, requires_grad=True)
    labels = torch.randint(0, 12, (2, 30), generator=rng)  # 11 = unlabelled, skipped
    chunked = pam_affinity_loss(query, key, labels, chunk=7)
    reference = naive_affinity_loss(query, key, labels)
    torch.testing.assert_close(chunked, reference)
    grads = torch.autograd.grad(chunked, (query, key))
    expected = torch.autograd.grad(reference, (query, key))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_uniform_attention_costs_log_n_per_query():
    # all energies equal: S[i, j] = 1/N, so the cross-entropy to any target is log N
    labels = torch.tensor([[0, 0, 1, 1, 1, IGNORE]])
    loss = pam_affinity_loss(torch.zeros(1, 6, 2), torch.zeros(1, 6, 2), labels)
    assert float(loss) == pytest.approx(math.log(6))
    assert float(pam_affinity_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.full((1, 2), IGNORE))) == 0.0


def test_minimising_the_loss_makes_rows_attend_to_their_class(rng):
    labels = torch.randint(0, 3, (1, 40), generator=rng)
    query = torch.randn(1, 40, 8, generator=rng).requires_grad_()
    key = torch.randn(1, 40, 8, generator=rng).requires_grad_()

    def own_share():
        s = torch.softmax(query @ key.transpose(1, 2), -1)[0].detach()
        same = (labels[0][:, None] == labels[0][None, :]).float()
        return float((s * same).sum(1).mean())

    before = own_share()
    optimiser = torch.optim.Adam([query, key], lr=0.1)
    for _ in range(60):
        optimiser.zero_grad()
        pam_affinity_loss(query, key, labels, chunk=16).backward()
        optimiser.step()
    assert before < 0.5 < 0.95 < own_share()


def test_cell_labels_take_the_majority_and_ignore_unlabelled_cells():
    labels = torch.tensor([[[1, 1, 2, 2], [1, 3, 2, IGNORE], [IGNORE, IGNORE, 4, 4], [IGNORE, 5, 4, 4]]])
    assert cell_labels(labels, (2, 2)).tolist() == [[1, 2, IGNORE, 4]]


def test_query_cells_are_pure_and_reproducible():
    label = np.full((40, 40), 3, dtype=np.uint8)
    label[:, 20:] = 8
    label[:, 17:23] = 1  # a strip that makes the cells it crosses mixed (70% one class: below 0.8)
    first, classes = query_cells(label, (4, 4), 6, np.random.default_rng(0))
    again, _ = query_cells(label, (4, 4), 6, np.random.default_rng(0))
    assert first.tolist() == again.tolist() and len(first) == 6
    assert all(c in (0, 3) for c in first % 4) and set(classes.tolist()) <= {3, 8}
    assert all(classes[first % 4 == 0] == 3) and all(classes[first % 4 == 3] == 8)


def test_own_class_ratio_by_hand():
    label = np.zeros((8, 8), dtype=np.uint8)
    label[:, 6:] = 8  # class 8 covers a quarter of the photo
    on_class = np.zeros((4, 4))
    on_class[:, 3] = 0.25  # all attention on the class-8 cells
    uniform = np.full((4, 4), 1 / 16)
    ratios = own_class_ratio(np.stack([on_class, uniform]), label, [8, 8])
    np.testing.assert_allclose(ratios, [4.0, 1.0])


def test_evaluate_reports_pam_ratio_equal_to_a_materialised_s():
    torch.manual_seed(0)
    model = build_model("danet-none", width=0.125).eval()
    with torch.no_grad():
        model.head.pam.alpha.fill_(0.25)
    rng = np.random.default_rng(1)
    label = np.zeros((64, 96), dtype=np.int64)
    label[:, 48:] = 3
    label[:8] = IGNORE
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    result = evaluate_model(model, [(image, label)], progress=False, pam_queries=5, seed=3)
    ratio = result["pam_own_class_ratio"]
    assert ratio["queries"] == 5 and ratio["per_photo"] == 5
    # the same five cells (same generator), rows taken from the full S
    with torch.no_grad(), capture(model) as rec:
        model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    pam = next(iter(rec.of_type(PositionAttentionRecord).values()))
    cells, classes = query_cells(label, (pam.height, pam.width), 5, np.random.default_rng(3))
    s = pam.matrix()[cells].reshape(-1, pam.height, pam.width).numpy()
    expected = own_class_ratio(s, label, classes)
    assert ratio["mean"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert ratio["median"] == pytest.approx(float(np.median(expected)), rel=1e-5)
    assert pam_alpha(model) == pytest.approx(0.25)
    assert "pam_own_class_ratio" not in evaluate_model(
        build_model("fcn-eca", width=0.125), [(image, label)], progress=False, pam_queries=5
    )
