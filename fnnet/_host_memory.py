"""Keep freed host memory for the next step (Linux with glibc).

XLA:CPU allocates a compiled program's temporary buffer afresh on every execution
(46 MB for the baby-GPT train step of ``benchmarks/bench_gpt.py``). glibc's ``malloc``
serves an allocation above its mmap threshold (adaptive, at most 32 MB) with a new
``mmap`` and unmaps it on ``free``, so every step page-faulted its whole temporary
buffer again: 11,500 faults and 18 ms of kernel time per GPT step on this project's
2-core machine, about 40% of the step.

:func:`keep_host_memory` serves allocations below ``threshold`` from the heap and keeps
up to ``threshold`` freed bytes mapped, so the next step reuses pages that are already
there. ``import fnnet`` applies it once. It changes the whole process's ``malloc``
(PyTorch, NumPy and plain JAX in the same process gain too), never a result. The cost:
up to ``threshold`` freed bytes stay with the process instead of returning to the
system.

A worker thread's arena still maps blocks above its 64 MB heaps afresh (ResNet-18's
304 MB buffer at batch 8: 77,000 faults and 131 ms of kernel time per step).
``MALLOC_ARENA_MAX=1`` in the environment serves those from the main heap too (the
step 15% faster) but made XLA's compilations 17% slower here, so fnnet leaves that
choice to the user. Opt out with ``FNNET_KEEP_HOST_MEMORY=0``; glibc's own
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_ARENA_MAX``, when
set, are left to rule.
"""
from __future__ import annotations

import os
import platform
import sys

__all__ = ["keep_host_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # mallopt parameters, <malloc.h>
_GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX")


def keep_host_memory(threshold: int = 1 << 30) -> bool:
    """Serve allocations below ``threshold`` bytes from the heap and keep up to
    ``threshold`` freed bytes mapped (glibc ``mallopt`` of ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD``). Returns whether both were set: ``False`` off Linux/glibc,
    where glibc refuses the threshold, with ``FNNET_KEEP_HOST_MEMORY=0``, or when the
    user set glibc's own ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
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
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))
