"""Flatten any standard gymnasium space into one buffer row, and unflatten it again.

Every vector env hands the trainer one contiguous row per agent: ``observations [N, *row_shape]``
and ``actions [N, *row_shape]``. :func:`observation_layout` and :func:`action_layout` say how a
(possibly nested) space maps onto such a row, and :class:`Layout` converts both ways.

Supported: ``Box``, ``Discrete`` (any ``start``), ``MultiDiscrete`` (any shape and ``start``),
``MultiBinary`` (any shape), and ``Dict`` / ``Tuple`` nesting them. Anything else (``Text``,
``Sequence``, ``Graph``, ``OneOf``...) is refused up front with its name and where it sits.

The flatten rule:

* **Plain spaces keep their shape.** A lone ``Box`` observation is its own row:
  ``[*box.shape]``, ``uint8`` when the Box is ``uint8`` (images), ``float32`` otherwise. A lone
  ``Discrete`` action is one ``int32``; a lone ``Box`` action is ``float32 [*box.shape]``.
* **Images are channels-last.** A lone Box observation of three dims whose first is the
  smallest and at most 4 (channels-first, e.g. ``(4, 84, 84)`` from gymnasium's
  ``FrameStackObservation``) is written transposed, as ``[H, W, C]`` (:func:`channels_first`;
  ``Layout.row_space`` is the Box the row holds).
* **Everything else is one flat row** ``[size]``: the leaves in order (``Dict`` in the order of
  its keys as the space holds them, ``Tuple`` by index, depth first), each leaf's elements in C
  order. A ``Discrete`` leaf is one element holding its value (``start`` included, not one-hot);
  ``MultiDiscrete`` and ``MultiBinary`` are their elements; a ``Box`` its elements.
* **One dtype per row.** Observations: ``uint8`` when every leaf's values fit in 0..255 (``uint8``
  or ``bool`` Boxes, ``MultiBinary``, ``Discrete`` / ``MultiDiscrete`` with values in 0..255),
  else ``float32`` (integers are exact up to 2^24; larger discrete values are refused).
  Actions: ``int32`` when every leaf is discrete, else ``float32``.

:func:`find_bad_observation` checks rows against the bounds of every finite Box (the vector
envs run it on the first observations after a reset).

``Layout.unflatten(rows)`` is the inverse: nested dicts / tuples of arrays with the leaves' shapes
and leading dims kept, in NumPy for NumPy input and in ``jax.numpy`` (jittable) otherwise, so a
custom Flax policy can take ``policy.obs_layout.unflatten(obs)`` apart.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import numpy as np
from gymnasium import spaces

__all__ = ["Leaf", "Layout", "SpaceError", "observation_layout", "action_layout", "check_space", "channels_first",
           "find_bad_observation"]

SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple of them"
_FLOAT_EXACT = 1 << 24  # float32 holds every integer up to this


class SpaceError(ValueError):
    """A value an env returned does not fit its declared space (the message names where)."""


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One non-nested space inside a layout, and where its elements sit in the row."""

    path: tuple  # Dict keys and Tuple indices from the root
    kind: str  # "box" | "discrete" | "multi_discrete" | "multi_binary"
    shape: tuple  # the leaf's own shape (() for Discrete)
    dtype: str  # the leaf's own dtype (what unflatten gives back in NumPy)
    offset: int  # first element in the row
    size: int  # number of elements
    nvec: tuple = ()  # discrete kinds: number of values of each element
    start: tuple = ()  # discrete kinds: smallest value of each element
    high: float = 1.0  # box: the largest upper bound (uint8 images are scaled by 1 / high)

    @property
    def discrete(self) -> bool:
        return self.kind != "box"


def _where(path) -> str:
    return "".join(f"[{p!r}]" for p in path)


def check_space(space, what: str = "observation", path: tuple = ()) -> None:
    """Raise TypeError/ValueError naming an unsupported or degenerate (sub)space."""
    at = f" at {what}{_where(path)}" if path else ""
    if isinstance(space, spaces.Dict):
        if not space.spaces:
            raise ValueError(f"empty Dict {what} space{at}")
        for k, sub in space.spaces.items():
            check_space(sub, what, path + (k,))
    elif isinstance(space, spaces.Tuple):
        if not space.spaces:
            raise ValueError(f"empty Tuple {what} space{at}")
        for i, sub in enumerate(space.spaces):
            check_space(sub, what, path + (i,))
    elif isinstance(space, spaces.Box):
        if int(np.prod(space.shape)) == 0:
            raise ValueError(f"{what} space {space}{at} has no elements")
    elif isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        n = np.asarray(space.nvec if isinstance(space, spaces.MultiDiscrete) else space.n)
        start = np.asarray(space.start)
        if n.size == 0 or np.any(n < 1):
            raise ValueError(f"{what} space {space}{at} needs at least one value per element")
        if np.any(np.abs(start) >= _FLOAT_EXACT) or np.any(np.abs(start + n) > _FLOAT_EXACT):
            raise ValueError(f"{what} space {space}{at}: values beyond 2^24 do not fit a float32 buffer exactly")
    elif isinstance(space, spaces.MultiBinary):
        if int(np.prod(space.shape)) == 0:
            raise ValueError(f"{what} space {space}{at} has no elements")
    else:
        raise TypeError(f"unsupported {what} space {type(space).__name__}{at} ({space!r}): puffjax takes "
                        f"{SUPPORTED}")


def _leaves(space, path: tuple, offset: int, out: list) -> int:
    if isinstance(space, spaces.Dict):
        for k, sub in space.spaces.items():
            offset = _leaves(sub, path + (k,), offset, out)
        return offset
    if isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            offset = _leaves(sub, path + (i,), offset, out)
        return offset
    shape = tuple(int(s) for s in space.shape)
    size = int(np.prod(shape)) if shape else 1
    if isinstance(space, spaces.Discrete):
        leaf = Leaf(path, "discrete", (), str(space.dtype), offset, 1, (int(space.n),), (int(space.start),))
    elif isinstance(space, spaces.MultiDiscrete):
        leaf = Leaf(path, "multi_discrete", shape, str(space.dtype), offset, size,
                    tuple(int(x) for x in np.asarray(space.nvec).reshape(-1)),
                    tuple(int(x) for x in np.broadcast_to(space.start, shape).reshape(-1)))
    elif isinstance(space, spaces.MultiBinary):
        leaf = Leaf(path, "multi_binary", shape, str(space.dtype), offset, size, (2,) * size, (0,) * size)
    else:
        high = np.asarray(space.high, np.float64)
        finite = high[np.isfinite(high)]
        leaf = Leaf(path, "box", shape, str(space.dtype), offset, size,
                    high=float(finite.max()) if finite.size else 1.0)
    out.append(leaf)
    return offset + size


def _fits_uint8(leaf: Leaf) -> bool:
    if leaf.kind == "box":
        return leaf.dtype in ("uint8", "bool")
    return all(s >= 0 and s + n <= 256 for n, s in zip(leaf.nvec, leaf.start))


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """How one agent's (nested) space maps onto one buffer row (see the module docstring).

    ``row_shape`` and ``dtype``: the row; ``size``: its elements; ``leaves``: the flattened
    spaces in order; ``plain``: the row is the space itself (a lone Box, or a lone Discrete
    action), so flatten and unflatten are the identity. Hashes by identity (a static value)."""

    space: object
    leaves: tuple
    row_shape: tuple
    dtype: np.dtype
    plain: bool
    what: str  # "observation" | "action", for messages
    transpose: tuple = ()  # a plain row holding the space's value transposed by these axes (channels-last)

    @property
    def size(self) -> int:
        return int(np.prod(self.row_shape)) if self.row_shape else 1

    @property
    def row_space(self):
        """The space of one row as the trainer sees it: ``space`` itself, or for a transposed
        (channels-first) Box, that Box channels-last."""
        if not self.transpose:
            return self.space
        box, t = self.space, self.transpose
        return spaces.Box(np.transpose(np.broadcast_to(box.low, box.shape), t),
                          np.transpose(np.broadcast_to(box.high, box.shape), t), dtype=box.dtype)

    # ---- rows -> structure ----
    def unflatten(self, rows):
        """``rows [..., *row_shape]`` -> the space's structure, leading dims kept. NumPy in,
        NumPy out (each leaf in its own dtype); anything else goes through ``jax.numpy`` (integer
        leaves as int32, Box leaves in their float dtype) and is jittable."""
        if self.plain:
            return rows
        if isinstance(rows, np.ndarray):
            batch = rows.shape[:-1]
            values = [rows[..., l.offset:l.offset + l.size].reshape(batch + l.shape).astype(l.dtype)
                      for l in self.leaves]
            values = [v[()] if v.ndim == 0 else v for v in values]  # a lone Discrete: a NumPy scalar
            return _rebuild(self.space, iter(values))
        import jax.numpy as jnp

        def cast(leaf):
            kind = np.dtype(leaf.dtype).kind
            return jnp.float32 if kind == "f" else jnp.bool_ if kind == "b" else jnp.int32

        batch = rows.shape[:-1]
        values = [jnp.reshape(rows[..., l.offset:l.offset + l.size], batch + l.shape).astype(cast(l))
                  for l in self.leaves]
        return _rebuild(self.space, iter(values))

    @functools.cached_property
    def _bounds(self):
        low, high, discrete = self._element_bounds()
        for a in (low, high, discrete):
            a.flags.writeable = False
        return low, high, discrete

    def element_bounds(self):
        """Per element of a row (flattened): ``(low, high, discrete)``, discrete values in
        ``[low, high)`` and Box values in ``[low, high]`` (used to check actions; read-only)."""
        return self._bounds

    def _element_bounds(self):
        low, high = np.zeros(self.size), np.zeros(self.size)
        discrete = np.zeros(self.size, bool)
        for l in self.leaves:
            s = slice(l.offset, l.offset + l.size)
            if l.discrete:
                low[s], high[s], discrete[s] = l.start, np.add(l.start, l.nvec), True
            else:
                low[s] = self._in_row(np.broadcast_to(self._box(l).low, l.shape))
                high[s] = self._in_row(np.broadcast_to(self._box(l).high, l.shape))
        return low, high, discrete

    def _in_row(self, a: np.ndarray) -> np.ndarray:
        """Per-element values of a plain leaf, in the row's (flattened) order."""
        return (np.transpose(a, self.transpose) if self.transpose else a).reshape(-1)

    def position(self, element: int) -> str:
        """Where element ``element`` of a row sits in the space, e.g. ``['pos'][1]`` or ``[0, 3, 2]``."""
        leaf = next(l for l in self.leaves if l.offset <= element < l.offset + l.size)
        shape = tuple(np.array(leaf.shape)[list(self.transpose)]) if self.transpose else leaf.shape
        index = np.unravel_index(element - leaf.offset, shape) if shape else ()
        if self.transpose:
            index = tuple(index[self.transpose.index(axis)] for axis in range(len(index)))
        return _where(leaf.path) + (f"[{', '.join(str(int(i)) for i in index)}]" if shape else "")

    def _box(self, leaf):
        space = self.space
        for p in leaf.path:
            space = space[p]
        return space

    # ---- structure -> a row ----
    def write(self, row: np.ndarray, value) -> None:
        """Write one agent's ``value`` (the space's structure) into its buffer ``row``. No checks
        beyond NumPy's own: call :meth:`check` on the first values an env returns."""
        if self.plain:
            row[...] = np.transpose(value, self.transpose) if self.transpose else value
            return
        for leaf in self.leaves:
            v = value
            for p in leaf.path:
                v = v[p]
            row[leaf.offset:leaf.offset + leaf.size] = np.reshape(v, -1)

    def flatten(self, value) -> np.ndarray:
        """One agent's ``value`` as a new row."""
        row = np.zeros(self.row_shape, self.dtype)
        self.write(row, value)
        return row

    def check(self, value, where: str = "") -> None:
        """Raise :class:`SpaceError` (a ValueError) if ``value`` does not fit the space: a missing or unexpected key, a
        wrong length, shape or dtype kind, or a discrete value out of range, naming it."""
        _check(self.space, value, (), f"{where}{self.what}")


def _rebuild(space, values):
    if isinstance(space, spaces.Dict):
        return {k: _rebuild(sub, values) for k, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_rebuild(sub, values) for sub in space.spaces)
    return next(values)


def _check(space, value, path, what):
    at = f"{what}{_where(path)}"
    if isinstance(space, spaces.Dict):
        if not isinstance(value, Mapping):
            raise SpaceError(f"{at} is a {type(value).__name__}, expected a dict with keys {list(space.spaces)}")
        missing = [k for k in space.spaces if k not in value]
        extra = [k for k in value if k not in space.spaces]
        if missing or extra:
            raise SpaceError(f"{at}: " + "; ".join(
                ([f"missing key {missing[0]!r}"] if missing else []) + ([f"unexpected key {extra[0]!r}"] if extra
                                                                        else [])) + f" (the space has {list(space.spaces)})")
        for k, sub in space.spaces.items():
            _check(sub, value[k], path + (k,), what)
        return
    if isinstance(space, spaces.Tuple):
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != len(space.spaces):
            n = len(value) if isinstance(value, Sequence) else type(value).__name__
            raise SpaceError(f"{at} has {n} entries, expected a tuple of {len(space.spaces)}")
        for i, sub in enumerate(space.spaces):
            _check(sub, value[i], path + (i,), what)
        return
    a = np.asarray(value)
    shape = () if isinstance(space, spaces.Discrete) else tuple(space.shape)
    if a.shape != shape:
        raise SpaceError(f"{at} has shape {a.shape}, expected {shape} for {space}")
    integer = not (isinstance(space, spaces.Box) and np.dtype(space.dtype).kind == "f")
    if a.dtype.kind not in ("biu" if integer else "biuf"):
        raise SpaceError(f"{at} has dtype {a.dtype}, expected {'integers' if integer else 'numbers'} "
                         f"({space.dtype}) for {space}")
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        if isinstance(space, spaces.MultiBinary):
            lo, hi = 0, 2
        else:
            lo = np.asarray(space.start)
            hi = lo + np.asarray(space.n if isinstance(space, spaces.Discrete) else space.nvec)
        bad = (a < lo) | (a >= hi)
        if np.any(bad):
            i = tuple(int(j) for j in np.argwhere(np.broadcast_to(bad, a.shape))[0]) if a.ndim else ()
            raise SpaceError(f"{at}{''.join(f'[{j}]' for j in i)} = {a[i]} is outside {space}")
    elif isinstance(space, spaces.Box) and np.dtype(space.dtype).kind in "iub":
        low, high = np.broadcast_to(space.low, shape), np.broadcast_to(space.high, shape)
        bad = (a < low) | (a > high)
        if np.any(bad):
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            raise SpaceError(f"{at}{''.join(f'[{j}]' for j in i)} = {a[i]} is outside {space}")


def find_bad_observation(layout: Layout, observations: np.ndarray, live=None) -> tuple[int, str] | None:
    """The first observation in ``observations [N, *row]`` outside the bounds of its Box, as
    (its row, a message naming its position in the space and its value), or None. Only finite
    bounds of Box leaves are checked (discrete values are checked where they are written), and
    only in the rows where ``live [N]`` (a mask: rows of agents that are there) is True."""
    low, high, discrete = layout.element_bounds()
    box = ~discrete & (np.isfinite(low) | np.isfinite(high))
    if not box.any():
        return None
    rows = observations.reshape(observations.shape[0], -1)
    bad = (rows < low) | (rows > high)
    bad &= box
    if live is not None:
        bad &= np.asarray(live, bool)[:, None]
    if not bad.any():
        return None
    n, element = (int(i) for i in np.argwhere(bad)[0])
    return n, (f"observation{layout.position(element)} = {rows[n, element].item()} is outside "
               f"[{low[element]:g}, {high[element]:g}], the bounds of its space {layout.space}")


def channels_first(space) -> bool:
    """Whether ``space`` looks like a channels-first image: a Box of three dims whose first is
    the smallest of them and at most 4 (e.g. ``(4, 84, 84)``, four stacked frames)."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        return False
    c, h, w = space.shape
    return c <= 4 and c < h and c < w


def _layout(space, what: str) -> tuple[tuple, int]:
    check_space(space, what)
    leaves: list = []
    size = _leaves(space, (), 0, leaves)
    return tuple(leaves), size


def observation_layout(space) -> Layout:
    """The row layout of one agent's observations (see the module docstring for the rule)."""
    leaves, size = _layout(space, "observation")
    if isinstance(space, spaces.Box):
        dtype = np.dtype(np.uint8 if space.dtype in (np.uint8, np.bool_) else np.float32)
        if channels_first(space):
            c, h, w = (int(s) for s in space.shape)
            return Layout(space, leaves, (h, w, c), dtype, True, "observation", transpose=(1, 2, 0))
        return Layout(space, leaves, tuple(int(s) for s in space.shape), dtype, True, "observation")
    dtype = np.dtype(np.uint8 if all(_fits_uint8(l) for l in leaves) else np.float32)
    return Layout(space, leaves, (size,), dtype, False, "observation")


def action_layout(space) -> Layout:
    """The row layout of one agent's actions: a lone Discrete is one int32, a lone float Box
    its own shape in float32, anything else a flat row (int32 if every leaf is discrete)."""
    leaves, size = _layout(space, "action")
    for leaf in leaves:
        if leaf.kind == "box" and np.dtype(leaf.dtype).kind != "f":
            raise TypeError(f"Box action space with non-float dtype {leaf.dtype} is not supported "
                            f"(use Discrete/MultiDiscrete): {space}")
    if isinstance(space, spaces.Discrete):
        return Layout(space, leaves, (), np.dtype(np.int32), True, "action")
    if isinstance(space, spaces.Box):
        return Layout(space, leaves, tuple(int(s) for s in space.shape), np.dtype(np.float32), True, "action")
    dtype = np.dtype(np.int32 if all(l.discrete for l in leaves) else np.float32)
    return Layout(space, leaves, (size,), dtype, False, "action")
