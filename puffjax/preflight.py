"""Checks a run passes before anything is built: directories it will write, and the memory its
environments need. Each failure is a ValueError with one line that names the problem and the
numbers (what is needed, what there is), so that a mistake costs no minutes of building.
"""
from __future__ import annotations

import os
import tracemalloc


def check_writable_dir(path: str, what: str) -> None:
    """``path`` is a directory this process can write, or can be made as one: a ValueError
    naming ``what`` (e.g. ``--run-dir``) when it or the nearest existing folder above it is a
    file or is not writable."""
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "" if existing == path else f" ({existing} is a file)"
        raise ValueError(f"{what} {path} is not a directory{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing} is not writable)"
        raise ValueError(f"{what} {path} cannot be written{where}")


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable of /proc/meminfo; None where
    that is unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def make_env(name: str, **kwargs):
    """:func:`puffjax.envs.make`, with an environment that refuses its options (an unknown
    keyword, a value of the wrong type: a TypeError from its constructor) reported as a
    ValueError naming the environment."""
    from . import envs
    try:
        return envs.make(name, **kwargs)
    except TypeError as e:
        raise ValueError(f"environment {name}: {e}") from None


ENV_BYTES_EXTRA = 8  # env_bytes compares a vector env of 1 + this many with one of 1


def env_bytes(name: str, options: dict) -> int:
    """Bytes one more environment of ``name`` (with its buffer rows) allocates from Python:
    a vector env of ``1 + ENV_BYTES_EXTRA`` less one of one, per extra environment, measured
    after a first one has imported what the env needs (the whole vector env of one where the
    difference is not positive). Over several environments, so that memory the allocator hands
    back from freed objects cannot make one environment look almost free. C environments' own
    structs are not counted: a lower bound."""
    make_env(name, num_envs=1, **options).close()
    used = []
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        for n in (1, 1 + ENV_BYTES_EXTRA):
            before = tracemalloc.get_traced_memory()[0]
            with make_env(name, num_envs=n, **options):
                used.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        if not tracing:
            tracemalloc.stop()
    extra = (used[1] - used[0]) // ENV_BYTES_EXTRA
    return extra if extra > 0 else max(used[0], 0)


def check_env_memory(name: str, num_envs: int, options: dict, available: int | None = None) -> None:
    """Refuse ``num_envs`` environments of ``name`` when their estimated memory (``num_envs``
    times :func:`env_bytes`) exceeds what the machine has (``available``, default
    :func:`available_memory`): a ValueError with both numbers."""
    available = available_memory() if available is None else available
    if available is None:
        return
    per_env = env_bytes(name, options)
    need = per_env * num_envs
    if need > available:
        raise ValueError(f"env.num_envs {num_envs:,} of {name} need about {_size(need)} ({_size(per_env)} per "
                         f"environment, measured on {1 + ENV_BYTES_EXTRA}); this machine has {_size(available)} "
                         f"available: lower --env.num-envs")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
