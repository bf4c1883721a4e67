"""Keeping freed memory in the process, so that a step's large temporaries are not faulted in
again on every call.

glibc's ``malloc`` serves blocks above its ``mmap`` threshold straight from the kernel and
gives freed memory at the top of its heap back once more than its trim threshold is free.
Both thresholds move with the process's history, so the same code on the same inputs runs
at one of two speeds: in some processes every call of a batched decoder, or every training
step, maps its megabyte-sized tensors afresh and pays a page fault per 4 KiB written
(``docs/codecs.md`` measures it: 784 faults per call against 2). Blocks above the largest
threshold glibc allows, 32 MiB (a batch of 256 maps of 17 x 64 x 48 is 53 MB), are mapped and unmapped
on every call unless the heap happens to have room for them. :func:`keep_freed_memory` fixes
both thresholds high and lets no block be mapped on its own, as ``kitpose run``, ``study``,
``predict`` and ``lab`` do at their start. It changes where memory comes from, never a number
computed; the cost is that up to :data:`TRIM_THRESHOLD` bytes of freed heap at its top stay
with the process, and freed blocks below the top stay until they are reused.
"""
from __future__ import annotations

import ctypes
import os

#: glibc's ``mallopt`` parameters (``malloc.h``)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4

#: glibc's ``mmap`` threshold, fixed at its largest allowed value on 64-bit systems (which
#: also stops glibc moving it); with :data:`MMAP_MAX` 0 the main heap serves larger blocks too
MMAP_THRESHOLD = 32 << 20

#: how many blocks glibc may map straight from the kernel at once: none, so that blocks
#: above :data:`MMAP_THRESHOLD` come from the heap as well and are reused once freed (glibc
#: still maps memory when the heap cannot grow)
MMAP_MAX = 0

#: free heap kept before any is given back to the kernel
TRIM_THRESHOLD = 256 << 20

#: settings that mean the user chose the allocator's behaviour: kept as they are
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_",
                 "GLIBC_TUNABLES")

#: what :func:`keep_freed_memory` says when it set the thresholds
KEPT = "freed memory kept in the process"

#: what :func:`keep_freed_memory` did in this process (None: not called), for the run's log
outcome: str | None = None


def keep_freed_memory() -> str:
    """Fix glibc's ``mmap`` and trim thresholds high (see the module docstring); says what it did.

    Leaves the allocator alone where the user configured it (``MALLOC_*_``,
    ``GLIBC_TUNABLES``, or another allocator in ``LD_PRELOAD``) and where the C library is
    not glibc. Safe to call more than once.
    """
    global outcome
    outcome = _apply()
    return outcome


def large_blocks_reused() -> bool:
    """Whether :func:`keep_freed_memory` set the thresholds in this process, so that blocks of
    any size come from the heap and are reused once freed (no page faults on reuse)."""
    return outcome == KEPT


def _apply() -> str:
    chosen = [name for name in USER_SETTINGS if os.environ.get(name)]
    preload = os.environ.get("LD_PRELOAD", "")
    if chosen:
        return f"kept as set ({', '.join(chosen)})"
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "kept: another allocator is preloaded"
    libc = _glibc()
    if libc is None:
        return "kept: not glibc"
    done = all(libc.mallopt(parameter, value) for parameter, value in
               ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_MMAP_MAX, MMAP_MAX), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    return KEPT if done else "kept: mallopt refused"


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (the one ``mallopt`` thresholds apply to)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded: the process's own C library
        libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
