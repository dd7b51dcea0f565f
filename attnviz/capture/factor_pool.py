"""Memory for the factors a capture keeps, lent again once every record holding it has died.

A transformer's capture keeps, per `F.scaled_dot_product_attention` call, q · scale and k (attnviz.capture.dataflow):
605 KB a layer for ViT-S/16 at 224 px, 7.3 MB a capture. Made anew each time, that memory is new to the process:
the C allocator returns freed blocks of this size to the system, and the first touch of every page is a page fault
(about 2,000 a ViT-S capture on this project's 2-core machine, 2.4 ms of the 17 ms a capture added to a 46 ms
forward: `python -m attnviz.bench --only transformers`). A caching allocator, as PyTorch's own on CUDA, keeps such
blocks instead. This pool is one for these factors only, on the CPU: its blocks are numpy arrays lent to torch with
`torch.from_numpy`, whose tensors keep their array alive for as long as any tensor on that memory lives (a view of
one head included); a block is lent again once nothing but the pool refers to it (its reference count). What the
pool holds, lent or idle, is at most `POOL_BYTES`; past that, and on other devices, a request is made with
`torch.empty`, as before.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import torch

__all__ = ["POOL_BYTES", "factor_storage", "pooled_bytes"]

POOL_BYTES = 64 * 2**20  # the most the pool holds, lent or idle (a ViT-S capture takes 7.3 MB)

_lock = threading.Lock()
_blocks: dict[int, list[np.ndarray]] = {}  # float32 entries -> the pool's blocks of that size
_held = [0]  # bytes of every block in `_blocks`


def _references(blocks: list[np.ndarray], index: int) -> int:
    return sys.getrefcount(blocks[index])


def _calibrate() -> int:
    """The reference count `_references` reads for a block nothing but the pool refers to."""
    blocks = [np.empty(1, np.float32)]
    return _references(blocks, 0)


_IDLE = _calibrate()


def pooled_bytes() -> int:
    """The bytes the pool holds now, lent or idle."""
    return _held[0]


def _free_room(needed: int) -> bool:
    """Drop idle blocks of other sizes until `needed` more bytes fit under `POOL_BYTES` (under the lock)."""
    for size in list(_blocks):
        blocks = _blocks[size]
        for index in reversed(range(len(blocks))):
            if _held[0] + needed <= POOL_BYTES:
                return True
            if _references(blocks, index) == _IDLE:
                _held[0] -= blocks.pop(index).nbytes
        if not blocks:
            del _blocks[size]
    return _held[0] + needed <= POOL_BYTES


def factor_storage(*shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """An uninitialised float32 tensor of `shape` for factors a record keeps: an idle block of the pool on the CPU
    (or a new one while the pool holds less than `POOL_BYTES`), else `torch.empty`."""
    size = math.prod(shape)
    if (device.type if isinstance(device, torch.device) else torch.device(device).type) != "cpu" or size == 0:
        return torch.empty(shape, device=device, dtype=torch.float32)
    with _lock:
        blocks = _blocks.get(size, [])
        for index in range(len(blocks)):
            if _references(blocks, index) == _IDLE:
                return torch.from_numpy(blocks[index]).view(shape)
        if _free_room(4 * size):
            block = np.empty(size, np.float32)
            _blocks.setdefault(size, []).append(block)
            _held[0] += block.nbytes
            return torch.from_numpy(block).view(shape)
    return torch.empty(shape, dtype=torch.float32)
