"""Giving the heap memory a training step freed back to the operating system.

TensorFlow allocates CPU tensors with malloc. glibc keeps the memory a step frees in its heaps
for reuse, but the heaps fragment, so the resident memory of a training process creeps up from
step to step while its live tensors stay the same: Inf-Net, 352 x 352 px, batch 4, float32 with
the backbone recomputed, grows from 2.37 GB after its first step to 2.58 GB after fourteen.
`release_free_memory` (glibc's ``malloc_trim``, about 3 ms there) after each step keeps the
peak at that of the first step (``benchmarks/RESULTS.md``). On a C library without
``malloc_trim`` (macOS, musl) it does nothing.

Example::

    for batch in batches:
        train_step(batch)
        release_free_memory()
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


def release_free_memory() -> bool:
    """Returns the free pages of every malloc heap to the operating system.

    Returns:
        bool: True where the C library has ``malloc_trim`` (glibc), else False.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim():
    """glibc's ``int malloc_trim(size_t pad)``, or None."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    trim = getattr(ctypes.CDLL(library), "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
