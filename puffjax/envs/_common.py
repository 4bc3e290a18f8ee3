"""Helpers shared by the C-backed and the gymnasium-backed vector envs."""
from __future__ import annotations

import operator

import numpy as np


def check_int(what: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as a Python int, or a TypeError/ValueError that says what was expected."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        lo = "" if minimum is None else f">= {minimum}"
        hi = "" if maximum is None else f"<= {maximum}"
        raise ValueError(f"{what} must be {' and '.join(s for s in (lo, hi) if s)}, got {v}")
    return v


def _describe(layout) -> str:
    if layout.plain and layout.dtype == np.int32:
        return f"int32 actions for {layout.space}"
    return f"{layout.dtype} actions for {layout.space}"


def write_actions(env_name: str, buffer: np.ndarray, actions, layout) -> None:
    """Copy `actions` into the env's `buffer` (rows of the action layout), checking shape and
    dtype, and the range of integers that are not int32 (they could wrap in the copy). int32
    and float actions are range-checked where they are used (the C step, or
    :func:`find_bad_action`), so the fast path is one copy."""
    a = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
    if a.shape != buffer.shape:
        raise ValueError(f"{env_name}: expected {_describe(layout)} of shape {buffer.shape}, got shape {a.shape}")
    if a.dtype == buffer.dtype:
        np.copyto(buffer, a)
        return
    if buffer.dtype == np.int32:
        if a.dtype.kind not in "iu":
            raise TypeError(f"{env_name}: expected integer actions (int32) for {layout.space}, got dtype {a.dtype}")
        bad = find_bad_action(layout, a)
        if bad is not None:
            raise ValueError(f"{env_name}: {bad}")
    elif a.dtype.kind != "f":
        raise TypeError(f"{env_name}: expected float actions (float32) of shape {buffer.shape}, got dtype {a.dtype}")
    np.copyto(buffer, a, casting="unsafe")


def find_bad_action(layout, actions: np.ndarray) -> str | None:
    """A message naming the first invalid action in ``actions [N, *row]`` (a discrete value out
    of range or not an integer, a Box value not finite), or None."""
    n = actions.shape[0]
    rows = actions.reshape(n, -1)
    low, high, discrete = layout.element_bounds()
    if discrete.any():
        d = rows[:, discrete]
        bad = (d < low[discrete]) | (d >= high[discrete])
        if d.dtype.kind == "f":
            bad |= d != np.floor(d)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            value = d[i, j].item()
            if layout.plain:
                return (f"actions[{i}] = {value} is out of range; expected an integer in [{int(low[0])}, "
                        f"{int(high[0])}) for {layout.space}")
            element = np.flatnonzero(discrete)[j]
            return (f"actions[{i}][{element}] = {value} is out of range; expected an integer in "
                    f"[{int(low[element])}, {int(high[element])}) ({layout.space})")
    if not discrete.all():
        c = rows[:, ~discrete]
        bad = ~np.isfinite(c)
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            return f"actions[{i}] = {actions[i]} is not finite; expected finite floats"
    return None


class EnvError(RuntimeError):
    """A Python environment raised. ``env_index``: which one; the message names it and carries
    the original error (chained when it happened in this process, as text from a worker)."""

    def __init__(self, message: str, env_index: int):
        super().__init__(message)
        self.env_index = env_index

    def __reduce__(self):
        return type(self), (self.args[0], self.env_index)


class EpisodeLog:
    """Sums of per-episode stats, averaged and cleared by `take()`."""

    def __init__(self, names):
        self.names = list(names)
        self.sums = dict.fromkeys(self.names, 0.0)
        self.n = 0

    def add(self, **values):
        for k, v in values.items():
            self.sums[k] += float(v)
        self.n += 1

    def take(self) -> dict:
        if self.n == 0:
            return {}
        out = {k: v / self.n for k, v in self.sums.items()}
        out["n"] = self.n
        self.sums = dict.fromkeys(self.names, 0.0)
        self.n = 0
        return out


class Closable:
    """A vector env's ``closed`` flag and ``with env: ...``, which closes it; the env's own
    ``close`` sets ``_closed``."""

    _closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
