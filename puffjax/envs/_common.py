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


def write_actions(env_name: str, buffer: np.ndarray, actions, discrete_n: int, discrete_start: int = 0) -> None:
    """Copy `actions` into the env's `buffer`, checking shape, dtype and (for
    non-int32 integers) range. int32 discrete actions are range-checked by the
    C step itself, and float actions for NaN, so the fast path is one copy."""
    a = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
    if a.shape != buffer.shape:
        kind = f"int32 actions for Discrete({discrete_n})" if discrete_n else "float32 actions"
        raise ValueError(f"{env_name}: expected {kind} of shape {buffer.shape}, got shape {a.shape}")
    if discrete_n:
        if a.dtype == np.int32 and discrete_start == 0:
            np.copyto(buffer, a)
            return
        if a.dtype.kind not in "iu":
            raise TypeError(
                f"{env_name}: expected integer actions (int32) for Discrete({discrete_n}), got dtype {a.dtype}")
        lo, hi = discrete_start, discrete_start + discrete_n
        bad = np.flatnonzero((a < lo) | (a >= hi))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{env_name}: actions[{i}] = {a.flat[i]} is out of range; "
                             f"expected an integer in [{lo}, {hi}) for Discrete({discrete_n})")
        np.copyto(buffer, a, casting="unsafe")
        return
    if a.dtype.kind != "f":
        raise TypeError(f"{env_name}: expected float actions (float32) of shape {buffer.shape}, got dtype {a.dtype}")
    np.copyto(buffer, a, casting="unsafe")


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
