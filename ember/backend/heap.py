"""Keep freed array memory in the process heap (glibc), so that training steps stop page-faulting.

A training step allocates and frees the same large arrays at every step. glibc returns blocks above its
mmap threshold (128 KiB at first, raised as it sees them freed) straight to the kernel, and trims the top
of its heap beyond its trim threshold, so the next step's arrays are fresh pages and every 4 KiB page
faults on first touch. Measured on the 2-core benchmark VM: 900 faults and 2.2 ms of system time per
LeNet-5 step under ``ember.jit`` (a 5 ms step), 1,400 to 1,950 faults and 3 to 5 ms per Transformer step
(30 ms), eager or jitted, depending on how glibc's thresholds happened to move. Starting both thresholds
where glibc's own adjustment can at most take them (an mmap threshold of 32 MiB, a trim threshold of twice
that) keeps the memory for reuse, as a caching allocator would: afterwards, under one fault per step.

Applied once when Ember is imported, process-wide, on glibc only; at most :data:`TRIM_THRESHOLD` bytes of
free heap top stay held by the process. ``EMBER_KEEP_HEAP=0``, or glibc's own ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` in the environment, leave glibc as it is.

>>> isinstance(keep_freed_memory(), bool)
True
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20      # glibc's ceiling for its dynamic mmap threshold on 64-bit systems
TRIM_THRESHOLD = 64 << 20      # twice that: where glibc's dynamic trim threshold follows it
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # malloc.h
_applied: list = []


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (``mallopt``) once; True when they are set (now or before)."""
    if _applied:
        return _applied[0]
    ok = False
    if (os.environ.get("EMBER_KEEP_HEAP", "1") != "0" and platform.libc_ver()[0] == "glibc"
            and not {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ)):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _applied.append(ok)
    return ok
