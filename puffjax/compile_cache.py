"""JAX's persistent compilation cache, so a second run starts without recompiling.

The trainer's jitted rollout step and update epoch take seconds to compile (tens of seconds for
Breakout's LSTM on a GPU); with the cache on, a later run with the same shapes, config and
versions loads them from disk. Like :func:`puffjax.keep_freed_memory` this is a process-wide
setting, so the library does not switch it on by itself: ``puffjax train`` and the example
scripts call :func:`enable_compile_cache`; call it yourself from Python or Jupyter.
"""
from __future__ import annotations

import os

import jax


def default_dir() -> str:
    """``$PUFFJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/puffjax/jax`` (``~/.cache/puffjax/jax``)."""
    if os.environ.get("PUFFJAX_CACHE_DIR"):
        return os.environ["PUFFJAX_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "puffjax", "jax")


def enable_compile_cache(path: str | None = None) -> str:
    """Cache every compiled program that took at least 0.1 s in ``path`` (default
    :func:`default_dir`); returns the directory. Safe to call more than once."""
    path = os.path.abspath(path or default_dir())
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
