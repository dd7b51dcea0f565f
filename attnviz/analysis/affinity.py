"""Class affinity of DANet's position attention: a training loss and an evaluation measure.

The loss follows the "affinity loss" idea of Context Prior (Yu, Wang, Gao, Yu,
Shen, Sang, "Context Prior for Scene Segmentation", CVPR 2020): the labels,
downsampled to the feature map, define an ideal affinity matrix (pixel i and
pixel j share a class), and the network's attention is supervised with it.
What differs from that paper: Context Prior supervises a separate sigmoid
prior map with a binary cross-entropy plus global terms; here the supervised
map is DANet's own softmax S, so each row S[i, :] is pulled towards the
uniform distribution over the pixels of i's class with one cross-entropy,

    L_i = - (1 / |A_i|) * sum_{j in A_i} log S[i, j],   A_i = {j : label(j) = label(i)},

averaged over the labelled query pixels i. With S[i, j] = exp(e_ij - lse_i)
(e = B^T C, lse_i = logsumexp_j e_ij) this is lse_i - mean_{j in A_i} e_ij, so
the loss needs one chunk of energies at a time: the queries run in chunks under
activation checkpointing, and memory stays at chunk x N floats, as in the
chunked PAM forward.

The measure (`attnviz.analysis.forward.own_class_ratio` on the rows of `query_cells`) is what the app reports: for a
query cell
that is at least 80% one class, the share of row S[i, :] that falls on that
class divided by the class's share of the labelled photo (1.0 = chance).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from attnviz.analysis.forward import class_fractions
from attnviz.analysis.geometry import cell_majority
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES

__all__ = ["cell_labels", "pam_affinity_loss", "query_cells"]


def cell_labels(labels: torch.Tensor, feature_hw: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) class indices -> (B, h * w): each feature cell's majority class.

    A cell whose majority is unlabelled (IGNORE_INDEX) gets IGNORE_INDEX. A cell's
    pixels are exactly those that map to it (attnviz.analysis.geometry, the same cells as a
    click on the app's photo); ties go to the smaller class index.
    """
    return cell_majority(labels.long().clamp(0, IGNORE_INDEX), feature_hw, IGNORE_INDEX + 1).flatten(1)


def _chunk_loss(
    query: torch.Tensor, key: torch.Tensor, targets: torch.Tensor, query_labels: torch.Tensor
) -> torch.Tensor:
    """Sum over the chunk's labelled queries of lse_i - mean_{j in A_i} e_ij.

    query (B, n, C'), key (B, N, C'), targets (B, N, K) one-hot of the key labels
    (zero rows for unlabelled keys), query_labels (B, n) in 0..K (K = ignore).
    """
    energy = query @ key.transpose(1, 2)  # (B, n, N)
    log_normaliser = torch.logsumexp(energy, dim=-1)  # (B, n)
    class_energy = energy @ targets  # (B, n, K): sum of e_ij over class k
    counts = targets.sum(1)  # (B, K)
    labelled = query_labels < targets.shape[-1]
    safe = query_labels.clamp(max=targets.shape[-1] - 1)
    same_sum = class_energy.gather(-1, safe[..., None])[..., 0]
    same_count = counts.gather(-1, safe).clamp(min=1)
    per_query = log_normaliser - same_sum / same_count
    return (per_query * labelled).sum()


def pam_affinity_loss(query: torch.Tensor, key: torch.Tensor, labels: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Mean over labelled query pixels of the cross-entropy between S[i, :] and uniform-over-A_i.

    query, key: (B, N, C') as in PAM (S = softmax(query key^T)); labels: (B, N)
    cell classes (IGNORE_INDEX = unlabelled: such queries are skipped and such
    keys are in no A_i). Zero when no query is labelled.
    """
    query, key = query.float(), key.float()
    num_pixels = query.shape[1]
    targets = F.one_hot(labels.long().clamp(0, NUM_CLASSES), NUM_CLASSES + 1)[..., :NUM_CLASSES].float()
    total = query.new_zeros(())
    for start in range(0, num_pixels, chunk):
        stop = min(start + chunk, num_pixels)
        args = (query[:, start:stop], key, targets, labels[:, start:stop])
        if torch.is_grad_enabled() and (query.requires_grad or key.requires_grad):
            total = total + checkpoint(_chunk_loss, *args, use_reentrant=False)
        else:
            total = total + _chunk_loss(*args)
    labelled = int((labels < NUM_CLASSES).sum())
    return total / max(labelled, 1)


def query_cells(
    label: np.ndarray, feature_hw: tuple[int, int], count: int, rng: np.random.Generator, purity: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` feature cells (flat indices) that are at least `purity` one class, and that class.

    Drawn without replacement by `rng` among all such cells of the photo.
    """
    fractions = class_fractions(label, feature_hw)[:NUM_CLASSES].reshape(NUM_CLASSES, -1)
    best = fractions.argmax(0)
    eligible = np.flatnonzero(fractions.max(0) >= purity)
    chosen = np.sort(rng.choice(eligible, size=min(count, eligible.size), replace=False))
    return chosen, best[chosen]
