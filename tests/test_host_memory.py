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

# Allocate, touch and free a 64 MiB buffer (above glibc's largest adaptive mmap
# threshold, 32 MiB) once to warm up, then 5 times more, and print the imported
# flag and the minor page faults of those 5 rounds.
PROGRAM = """
import ctypes, resource
import fnnet
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
def cycle():
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cycle()
print(fnnet.HOST_MEMORY_KEPT, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_program(**env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=environ, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


PAGES = 5 * (64 << 20) // 4096   # the faults of mapping the buffer afresh every round


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_freed_buffer_is_reused_without_page_faults():
    kept, faults = run_program()
    assert kept
    assert faults < PAGES // 100, faults


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_opt_out_maps_the_buffer_afresh_every_time():
    kept, faults = run_program(FNNET_KEEP_HOST_MEMORY="0")
    assert not kept
    assert faults > PAGES // 2, faults


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_glibc_environment_settings_are_left_to_rule():
    kept, _ = run_program(MALLOC_TRIM_THRESHOLD_="131072")
    assert not kept


def test_imported_flag_and_bad_threshold():
    assert fnnet.HOST_MEMORY_KEPT is (GLIBC and os.environ.get("FNNET_KEEP_HOST_MEMORY", "1") != "0"
                                      and not any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_",
                                                                            "MALLOC_TRIM_THRESHOLD_")))
    for bad in (0, -1, 2.5, True, "1"):
        with pytest.raises(ValueError, match="expected a threshold of at least 1 byte"):
            keep_host_memory(bad)
