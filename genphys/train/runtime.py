"""Process-level settings that make CPU training faster.

glibc's allocator returns every freed block above its mmap threshold (128 KiB at first,
adapted upwards up to 32 MiB) straight to the kernel, and trims the heap top above 128 KiB.
A training step allocates and frees the same activation buffers thousands of times, so
each step pays page faults for memory it just gave back: with two threads on the
``advdiff_mesh2d`` autoencoder half of the CPU time was kernel time. Raising both thresholds
keeps the freed pages in the process (the resident set stays at the high-water mark of one
step) — the effect the PyTorch CPU performance guide gets by swapping in jemalloc or
tcmalloc, with the allocator that is already loaded. ``docs/benchmarks.md`` has the
measured speed-up (``benchmarks/allocator.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks below 1 GiB are served from (and returned to) the heap


def tune_allocator(keep_bytes: int = KEEP_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds to ``keep_bytes``; True if applied.

    A no-op (False) off Linux/glibc, when ``GENPHYS_TUNE_MALLOC=0``, or when the user already
    set ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` (their choice wins). Affects
    the whole process from this call on; call it once at start-up.
    """
    if os.environ.get("GENPHYS_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if any(v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or no libc found: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, keep_bytes)) & bool(mallopt(M_TRIM_THRESHOLD,
                                                                      keep_bytes))
