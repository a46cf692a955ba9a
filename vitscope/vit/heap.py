"""Freed tensor memory kept for the next tensor, in the processes that run models (Linux, glibc).

glibc's malloc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB)
with fresh pages from the kernel and hands them back when it is freed. A CPU forward allocates
and frees activations far larger than that in every block (a ViT-S block's MLP on 384 images holds
465 MB), so each block has the kernel fault in and zero its activations again, page by page: on the
2-core development VM, about 510,000 page faults per ViT-S block at 384 images. Kept, ViT-S ran its
forward 1.30x and the ablation of every head 1.37x as fast (`vitscope bench heap`, docs/BENCHMARKS.md).

`keep_freed_memory` has malloc serve everything from its heap and keep up to 2 GiB of freed
memory at the heap's top for reuse; the CLI calls it at start and every worker pool process before
its first job. The cost is memory: the process keeps its high-water mark resident, and until freed
holes have merged a new tensor may not fit the hole of a freed one of its size (its alignment
slack), so the heap can hold a few of the largest activations more than the forward needs (the
bench reports both sides' peak). A worker must not count that against its next job (its memory
cap reads the resident set size), so it calls `release_freed_memory` after every job, which gives
the free pages back (`malloc_trim`). Elsewhere (macOS, musl) both do nothing: their allocators are
not glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

M_TRIM_THRESHOLD = -1
"""mallopt parameter: free memory at the heap's top above this many bytes is given back."""
M_MMAP_MAX = -4
"""mallopt parameter: how many allocations may be served by mmap at once (0: none)."""
KEPT_BYTES = 2**31 - 1
"""Free memory at the heap's top kept for reuse (mallopt takes an int: 2 GiB at most)."""


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def keep_freed_memory() -> bool:
    """Serve allocations from the heap and keep freed memory for reuse; return whether it applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEPT_BYTES))


def release_freed_memory() -> None:
    """Give the heap's free pages back to the system (after a job: its high-water mark is not the next's)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
