"""A least-recently-used cache bounded by the bytes its values hold, for results a server shares.

A count bound (st.cache_resource's max_entries) does not bound memory when the values differ in size: an
analysis of a 360x480 sample photo holds about 7 MB, one of a 768x1024 upload about 39 MB (the captured
records' input features), so 48 entries were 0.3 to 1.9 GB. In a class where one student in five uploads a
photo, that and the uploads' transients put one process at 5.2 GB (python -m attnviz.load_bench
--sessions 200, issue 31). This cache drops the least recently used values once the bytes held pass its
budget (the newest value is always kept, whatever its size).

`held_bytes` counts what a value holds: the storage of every torch tensor (a storage shared by views counted
once), numpy arrays (their base once), bytes and str, through dataclasses, dicts, lists, tuples and objects'
attributes. Python objects' own overhead is not counted: the arrays are what grows.

Thread-safe; a value is computed outside the lock (attnviz.workpool already makes the same key one job).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch

__all__ = ["SizedCache", "held_bytes"]

_MAX_DEPTH = 12


def held_bytes(value: Any) -> int:
    """The bytes of the arrays, tensors and strings `value` holds now (each storage once). Objects are walked
    through their `__dict__`, not their properties: a part computed when first read (a token record's
    log-sum-exps) counts once it is computed and is never computed to be counted."""
    seen: set[int] = set()  # ids of the objects walked
    storages: set[int] = set()  # addresses of the tensor storages counted

    def walk(item: Any, depth: int) -> int:
        if depth > _MAX_DEPTH or item is None or isinstance(item, (bool, int, float, complex, type)):
            return 0
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            if storage.data_ptr() in storages:
                return 0
            storages.add(storage.data_ptr())
            return storage.nbytes()
        if id(item) in seen:
            return 0
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            return walk(item.base, depth + 1) if isinstance(item.base, np.ndarray) else item.nbytes
        if isinstance(item, (bytes, bytearray, memoryview, str)):
            return len(item)
        if isinstance(item, dict):
            return sum(walk(k, depth + 1) + walk(v, depth + 1) for k, v in item.items())
        if isinstance(item, (list, tuple, set, frozenset)):
            return sum(walk(v, depth + 1) for v in item)
        if dataclasses.is_dataclass(item) and not hasattr(item, "__dict__"):  # slots: its fields are what it holds
            return sum(walk(getattr(item, f.name, None), depth + 1) for f in dataclasses.fields(item))
        if isinstance(item, torch.nn.Module):
            return 0  # a model is shared and cached apart (attnviz.app.resources.loaded_model)
        fields = getattr(item, "__dict__", None)
        return 0 if fields is None else sum(walk(v, depth + 1) for v in fields.values())

    return walk(value, 0)


class SizedCache:
    """key -> value, least recently used dropped first once the values hold more than `budget_bytes`.

    A value is sized once, when stored: what it computes later and keeps is not counted (an analysis's token
    records' log-sum-exps, 57 KB for ViT-S's 72 heads at N = 197, and its rollout's R, 0.3 MB, both computed
    when a page first reads them)."""

    def __init__(self, budget_bytes: int, size_of: Callable[[Any], int] = held_bytes):
        if budget_bytes < 0:
            raise ValueError(f"the budget must not be negative, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._size_of = size_of
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    @property
    def held(self) -> int:
        """The bytes the values hold now."""
        return self._held

    def holds(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._values:
                return default
            self._values.move_to_end(key)
            return self._values[key][0]

    def put(self, key: Hashable, value: Any) -> Any:
        """Keep `value` (the most recently used), then drop the least recently used past the budget."""
        size = self._size_of(value)
        with self._lock:
            if key in self._values:
                self._held -= self._values.pop(key)[1]
            self._values[key] = (value, size)
            self._held += size
            while self._held > self.budget_bytes and len(self._values) > 1:
                self._held -= self._values.popitem(last=False)[1][1]
        return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        missing = object()
        value = self.get(key, missing)
        return self.put(key, compute()) if value is missing else value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._held = 0
