"""Tests of tfcovid.memory: freed heap pages go back to the system."""

import ctypes.util
import sys

import numpy as np
import pytest

from tfcovid import memory

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or memory._malloc_trim() is None,
    reason="malloc_trim is glibc's")


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@glibc_only
def test_release_returns_the_free_pages_between_live_blocks():
    # 256 MB in 64 kB blocks (below malloc's mmap threshold, so on the heap), then every block
    # but one in a hundred freed: the free pages sit between live blocks, where free() keeps them
    blocks = [np.ones(8192) for _ in range(4096)]
    kept = blocks[::100]
    del blocks
    before = _resident_mb()
    assert memory.release_free_memory() is True
    assert before - _resident_mb() > 100
    assert all(block.sum() == 8192 for block in kept)


def test_without_malloc_trim_nothing_happens(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    memory._malloc_trim.cache_clear()
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
