"""Keep freed host memory for the next step (Linux with glibc).

XLA:CPU allocates a compiled program's temporary buffer afresh on every execution
(46 MB for the baby-GPT train step of ``benchmarks/bench_gpt.py``). glibc's ``malloc``
serves any allocation above its mmap threshold (adaptive, at most 32 MB) with a new
``mmap`` and unmaps it on ``free``, so every step page-faults its whole temporary
buffer again: 11,500 faults and 18 ms of kernel time per GPT step on this project's
2-core machine, about 40% of the step. Raising the mmap and trim thresholds serves such
buffers from the heap and keeps them there after ``free``, so the next step reuses
pages that are already mapped.

``import fnnet`` applies :func:`keep_host_memory` once. It changes the whole process's
``malloc`` (PyTorch, NumPy and plain JAX in the same process gain too), never a result.
The cost: up to ``threshold`` bytes that were freed stay with the process instead of
returning to the system. Opt out with ``FNNET_KEEP_HOST_MEMORY=0`` in the environment;
glibc's own ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``, when set, are left
to rule.
"""
from __future__ import annotations

import os
import platform
import sys

__all__ = ["keep_host_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # mallopt parameters, <malloc.h>


def keep_host_memory(threshold: int = 1 << 30) -> bool:
    """Serve allocations below ``threshold`` bytes from the heap and keep up to
    ``threshold`` freed bytes mapped (glibc ``mallopt(M_MMAP_THRESHOLD)`` and
    ``mallopt(M_TRIM_THRESHOLD)``). Returns whether the thresholds were set: ``False``
    off Linux/glibc, with ``FNNET_KEEP_HOST_MEMORY=0``, or when the user set glibc's own
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"keep_host_memory: expected a threshold of at least 1 byte, got {threshold!r}")
    if os.environ.get("FNNET_KEEP_HOST_MEMORY", "1").strip() == "0":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))
