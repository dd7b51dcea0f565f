"""How a measurement is taken, and on what: the timing loop and the machine description that
results.json and bench.json carry beside their figures."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch

__all__ = ["machine_info", "time_calls", "memory_mib"]


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def time_calls(fn, repeats: int, warmup: int = 1) -> dict:
    """Call `fn` `warmup` times untimed, then `repeats` times: {"median_s", "min_s", "repeats"}."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def time_alternating(fns, repeats: int, warmup: int = 1) -> list[dict]:
    """`time_calls` for several functions at once, called in turn within each repeat (a, b, a, b, ...), so that
    a drift of the machine (its clock, another process, the allocator's state) weighs on each alike when their
    times are compared: one {"median_s", "min_s", "repeats"} per function."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times):
            start = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - start)
    return [{"median_s": statistics.median(t), "min_s": min(t), "repeats": repeats} for t in times]


def memory_mib(field: str = "VmRSS", pid: int | str = "self") -> float | None:
    """A process's memory figure from Linux's /proc/<pid>/status in MiB ("VmRSS" now, "VmHWM" its peak since
    it started or since "5" was written to /proc/<pid>/clear_refs); None where there is no such process."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024
    except (OSError, StopIteration):
        return None
