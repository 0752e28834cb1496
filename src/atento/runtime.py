"""Process-wide CPU settings that training and decoding share, and what the CPU can do.

glibc serves every allocation above 32 MB (the Transformer's (tokens, vocabulary) logits, its
dropout masks, their gradients) with a fresh `mmap` and returns it with `munmap` when freed, so
each training step page-faults its way through hundreds of megabytes of new zeroed pages. Telling
malloc to take large blocks from the heap and to keep freed memory there (as jemalloc or
tcmalloc would) made a Transformer training step ~15 % faster on this project's 2-core machine
(benchmarks/README.md). Peak memory is unchanged: freed blocks are reused, not leaked.
Set ATENTO_MALLOC_TUNING=0 to keep the system's defaults. Training also caps oneDNN's kernel
cache (`cap_kernel_cache`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_MAX = -4
_done = False


def tune_allocator() -> bool:
    """Keep large freed blocks in the heap (glibc only; once per process). True when applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("ATENTO_MALLOC_TUNING") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _done


def cap_kernel_cache(capacity: int = 16) -> None:
    """Cap oneDNN's cache of compiled kernels (call before the first matrix product).

    oneDNN (bf16 matrix products) caches a kernel per shape, 1,024 by default; with a new batch
    shape at every training step that grew a bf16 run to 13 GB, and 16 kept it at 3 GB at the
    same speed. Decoding keeps the default: its few hundred shapes (rows x width) recur in every
    batch, and with 16 it rebuilt kernels and decoded ~12 % slower (benchmarks/README.md). An
    explicit setting in the environment wins.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX or AVX512-BF16)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
