"""puffjax.heap: the glibc setting that lets XLA's CPU buffers be reused."""
import ctypes
import ctypes.util
import sys

import pytest

from puffjax.heap import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_keep_freed_memory_reuses_large_blocks():
    if not keep_freed_memory():
        pytest.skip("not glibc")
    assert keep_freed_memory()  # idempotent
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    # A 64 MiB block now comes from the heap (below the program break) instead of a fresh
    # mmap (with glibc's default threshold of at most 32 MiB it would be mapped far above it).
    block = libc.malloc(64 << 20)
    try:
        assert block < libc.sbrk(0)
    finally:
        libc.free(block)
