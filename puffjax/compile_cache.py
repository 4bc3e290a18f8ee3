"""puffjax's cache folder on disk, and JAX's persistent compilation cache in it.

The cache root is ``$PUFFJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/puffjax`` (``~/.cache/puffjax``).
Each cache has its own subfolder (:func:`cache_dir`): ``jax`` for JAX's compiled programs,
``c_envs`` for the libraries of out-of-tree C environments. Both hold code this process runs,
so each is readable and writable by this user alone (mode 0700), and one that another user
owns is refused.

The trainer's jitted rollout step and update epoch take seconds to compile (tens of seconds for
Breakout's LSTM on a GPU); with the compilation cache on, a later run with the same shapes,
config and versions loads them from disk. Like :func:`puffjax.keep_freed_memory` this is a
process-wide setting, so the library does not switch it on by itself: ``puffjax train`` and the
example scripts call :func:`enable_compile_cache`; call it yourself from Python or Jupyter.
"""
from __future__ import annotations

import os
import stat

import jax


def cache_root() -> str:
    """``$PUFFJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/puffjax`` (``~/.cache/puffjax``)."""
    if os.environ.get("PUFFJAX_CACHE_DIR"):
        return os.path.abspath(os.path.expanduser(os.environ["PUFFJAX_CACHE_DIR"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "puffjax"))


def private_dir(path: str, tighten: bool = True) -> str:
    """Folder ``path``, created with mode 0700 (its missing parents with the default mode) if it
    does not exist; with ``tighten``, an existing one is set to 0700 too. Returns ``path``.
    A ValueError names the folder when it cannot be made, is not a folder, or (with ``tighten``)
    belongs to another user."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as e:
        raise ValueError(f"cannot make the cache folder {path}: {e.strerror or e}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"the cache folder {path} is not a folder")
    if tighten:
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise ValueError(f"the cache folder {path} belongs to another user (uid {info.st_uid}); "
                             "set PUFFJAX_CACHE_DIR to a folder of your own")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(path, 0o700)
    return path


def cache_dir(name: str) -> str:
    """Subfolder ``name`` of :func:`cache_root` (``"jax"``, ``"c_envs"``), private to this user
    (see :func:`private_dir`); the root itself is created with mode 0700 if it does not exist."""
    root = private_dir(cache_root(), tighten=False)
    return private_dir(os.path.join(root, name))


def enable_compile_cache(path: str | None = None) -> str:
    """Cache every compiled program that took at least 0.1 s in ``path``; returns the directory.
    Default: :func:`cache_dir` ``("jax")`` (``~/.cache/puffjax/jax``). A folder named here is
    created with mode 0700 if it does not exist, and used as it is if it does (a team may share
    one). Safe to call more than once."""
    path = cache_dir("jax") if path is None else private_dir(os.path.abspath(path), tighten=False)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
