"""Keep freed host memory for the next step (Linux with glibc).

XLA:CPU allocates a compiled program's temporary buffer afresh on every execution
(46 MB for the baby-GPT train step of ``benchmarks/bench_gpt.py``, 304 MB for a
ResNet-18 step at batch 8). glibc's ``malloc`` serves an allocation above its mmap
threshold (adaptive, at most 32 MB), or above 64 MB in a worker thread's arena, with a
new ``mmap`` and unmaps it on ``free``, so every step page-faulted its whole temporary
buffer again: 11,500 faults and 18 ms of kernel time per GPT step on this project's
2-core machine (about 40% of the step), 77,000 faults and 131 ms per ResNet-18 step.

:func:`keep_host_memory` makes every thread allocate from the main heap (one arena),
serves allocations below ``threshold`` from it, and keeps up to ``threshold`` freed
bytes mapped, so the next step reuses pages that are already there. ``import fnnet``
applies it once. It changes the whole process's ``malloc`` (PyTorch, NumPy and plain
JAX in the same process gain too), never a result. The costs: up to ``threshold`` freed
bytes stay with the process instead of returning to the system, and threads share one
arena (glibc's per-thread caches still serve small blocks without a lock).

Threads that allocated before the call keep their own arenas, and new threads may
join those: import fnnet before NumPy and JAX (NumPy starts a thread when imported)
for the whole effect, or export ``MALLOC_ARENA_MAX=1``. Opt out with
``FNNET_KEEP_HOST_MEMORY=0``; glibc's own ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_ARENA_MAX``, when set, are left to rule.
"""
from __future__ import annotations

import os
import platform
import sys

__all__ = ["keep_host_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8   # mallopt parameters, <malloc.h>
_GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX")


def keep_host_memory(threshold: int = 1 << 30) -> bool:
    """One ``malloc`` arena, allocations below ``threshold`` bytes from the heap, and up
    to ``threshold`` freed bytes kept mapped (glibc ``mallopt`` of ``M_ARENA_MAX``,
    ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``). Returns whether they were set:
    ``False`` off Linux/glibc, where glibc refuses the threshold, with
    ``FNNET_KEEP_HOST_MEMORY=0``, or when the user set
    glibc's own ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
    ``MALLOC_ARENA_MAX``."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"keep_host_memory: expected a threshold of at least 1 byte, got {threshold!r}")
    if os.environ.get("FNNET_KEEP_HOST_MEMORY", "1").strip() == "0":
        return False
    if any(name in os.environ for name in _GLIBC_SETTINGS):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # The mmap threshold first: a glibc that refuses it (older ones capped it at 32 MiB)
    # is left as it was.
    return all(libc.mallopt(param, value) for param, value in
               ((_M_MMAP_THRESHOLD, threshold), (_M_TRIM_THRESHOLD, threshold), (_M_ARENA_MAX, 1)))
