"""fnnet.keep_host_memory: large freed buffers stay mapped, so reusing one page-faults
no more (the kernel's count of minor page faults is the reference)."""
import os
import platform
import subprocess
import sys

import pytest

import fnnet
from fnnet import keep_host_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
# measured on glibc 2.36; older ones may refuse an mmap threshold above 32 MiB
MODERN_GLIBC = GLIBC and tuple(int(v) for v in platform.libc_ver()[1].split(".")[:2]) >= (2, 36)

# Allocate, touch and free a buffer above glibc's largest adaptive mmap threshold of
# 32 MiB (64 MiB in the main thread; 48 MiB in one worker thread, within a thread
# arena's 64 MiB heaps, as XLA's pool threads allocate) once to warm up, then 5 times
# more, and print the imported flag and the minor page faults of those 5 rounds.
PROGRAM = """
import ctypes, resource, sys, threading
import fnnet
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size, in_thread = int(sys.argv[1]), sys.argv[2] == "thread"
faults = []
def cycle():
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
def rounds():
    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        cycle()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
if in_thread:
    t = threading.Thread(target=rounds)
    t.start()
    t.join()
else:
    rounds()
print(fnnet.HOST_MEMORY_KEPT, faults[0])
"""


def run_program(size=64 << 20, where="main", **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(size), where], env=environ,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


CASES = [(64 << 20, "main"), (48 << 20, "thread")]


def pages(size):
    """The faults of mapping the buffer afresh in each of the 5 rounds: one per 4 KiB
    page, or per 2 MiB page where transparent huge pages are always on."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            huge = "[always]" in f.read()
    except OSError:
        huge = False
    return 5 * size // ((2 << 20) if huge else 4096)


@pytest.mark.skipif(not MODERN_GLIBC, reason="glibc 2.36 or later")
@pytest.mark.parametrize("size, where", CASES)
def test_freed_buffer_is_reused_without_page_faults(size, where):
    kept, faults = run_program(size, where)
    assert kept
    assert faults < 64, faults      # bookkeeping, never the buffer


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
@pytest.mark.parametrize("size, where", CASES)
def test_opt_out_maps_the_buffer_afresh_every_time(size, where):
    kept, faults = run_program(size, where, FNNET_KEEP_HOST_MEMORY="0")
    assert not kept
    assert faults > pages(size) // 2, faults


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
@pytest.mark.parametrize("name, value", [("MALLOC_TRIM_THRESHOLD_", "131072"), ("MALLOC_ARENA_MAX", "4")])
def test_glibc_environment_settings_are_left_to_rule(name, value):
    kept, _ = run_program(**{name: value})
    assert not kept


def test_imported_flag_and_bad_threshold():
    assert fnnet.HOST_MEMORY_KEPT is (MODERN_GLIBC and os.environ.get("FNNET_KEEP_HOST_MEMORY", "1") != "0"
                                      and not any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_",
                                                                            "MALLOC_TRIM_THRESHOLD_",
                                                                            "MALLOC_ARENA_MAX")))
    for bad in (0, -1, 2.5, True, "1"):
        with pytest.raises(ValueError, match="expected a threshold of at least 1 byte"):
            keep_host_memory(bad)
