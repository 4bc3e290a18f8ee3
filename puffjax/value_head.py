"""Distributional value head: HL-Gauss and two-hot targets over a fixed support (categorical critic).

Pure JAX, batched over arbitrary leading dimensions, and jit/vmap/grad friendly.

The *support* is a :class:`Support` made by :func:`make_support`: ``num_bins``
equally spaced bin centres over ``[v_min, v_max]`` (both ends are centres), each
bin ``width = (v_max - v_min) / (num_bins - 1)`` wide, so the bin edges run from
``v_min - width / 2`` to ``v_max + width / 2``.  With ``symlog=True`` the centres
live in symlog space (``symlog(x) = sign(x) * ln(1 + |x|)``): targets are built
from ``symlog(y)`` and :func:`expected_value` maps the mean back with
``symexp``.

A :class:`Support` holds only Python scalars (it is hashable, a pytree with no
leaves, and can be closed over, passed to ``jax.jit`` as an argument or marked
static).  Every function here also accepts a plain 1-D array of equally spaced
centres in place of a :class:`Support` (no symlog then).

Example::

    support = make_support(-10.0, 10.0, 101)
    target = hl_gauss_target(returns, support)          # [..., 101]
    loss = cross_entropy(logits, target).mean()
    value = expected_value(logits, support)             # [...]
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

__all__ = [
    "Support",
    "make_support",
    "symlog",
    "symexp",
    "hl_gauss_target",
    "two_hot_target",
    "expected_value",
    "cross_entropy",
    "value_loss",
]


def symlog(x):
    """``sign(x) * ln(1 + |x|)`` (finite for any finite x, smooth gradient)."""
    x = jnp.asarray(x)
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x):
    """Inverse of :func:`symlog`: ``sign(x) * (exp(|x|) - 1)``."""
    x = jnp.asarray(x)
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Support:
    """A fixed, equally spaced value support (all fields static Python values).

    Attributes:
      v_min, v_max: the first and last bin centres (in symlog space if
        ``symlog``).
      num_bins: number of bins (>= 2).
      symlog: whether the support lives in symlog space.
    """

    v_min: float
    v_max: float
    num_bins: int
    symlog: bool = False

    @property
    def width(self) -> float:
        """Distance between neighbouring centres (= bin width)."""
        return (self.v_max - self.v_min) / (self.num_bins - 1)

    @property
    def centers(self) -> jax.Array:
        """``[num_bins]`` float32 bin centres (in symlog space if ``symlog``)."""
        # built with numpy: a constant under jit, and no compilation when eager
        return jnp.asarray(np.linspace(self.v_min, self.v_max, self.num_bins, dtype=np.float32))

    @property
    def edges(self) -> jax.Array:
        """``[num_bins + 1]`` float32 bin edges."""
        w = self.width
        return jnp.asarray(
            np.linspace(self.v_min - w / 2, self.v_max + w / 2, self.num_bins + 1, dtype=np.float32)
        )

    @property
    def values(self) -> jax.Array:
        """``[num_bins]`` bin centres in value space (symexp'd if ``symlog``)."""
        c = np.linspace(self.v_min, self.v_max, self.num_bins, dtype=np.float64)
        return jnp.asarray((np.sign(c) * np.expm1(np.abs(c)) if self.symlog else c).astype(np.float32))

    def __array__(self, dtype=None, copy=None):  # numpy interop: the centres
        return np.asarray(self.centers, dtype=dtype)


def make_support(v_min: float, v_max: float, num_bins: int, symlog: bool = False) -> Support:
    """``num_bins`` equally spaced bin centres over ``[v_min, v_max]``.

    With ``symlog=True``, ``v_min``/``v_max`` are given in value space and the
    centres are equally spaced over ``[symlog(v_min), symlog(v_max)]``.

    Raises:
      ValueError: if ``v_min >= v_max``, ``num_bins < 2`` or a bound is not finite.
    """
    try:
        v_min_f, v_max_f = float(v_min), float(v_max)
    except (TypeError, ValueError) as e:
        raise ValueError(f"make_support: v_min and v_max must be numbers, got {v_min!r}, {v_max!r}") from e
    if not (math.isfinite(v_min_f) and math.isfinite(v_max_f)):
        raise ValueError(f"make_support: v_min and v_max must be finite, got {v_min_f}, {v_max_f}")
    if not v_min_f < v_max_f:
        raise ValueError(f"make_support: v_min ({v_min_f}) must be < v_max ({v_max_f})")
    if isinstance(num_bins, bool) or int(num_bins) != num_bins or num_bins < 2:
        raise ValueError(f"make_support: num_bins must be an integer >= 2, got {num_bins!r}")
    if symlog:
        v_min_f = math.copysign(math.log1p(abs(v_min_f)), v_min_f)
        v_max_f = math.copysign(math.log1p(abs(v_max_f)), v_max_f)
    return Support(v_min_f, v_max_f, int(num_bins), bool(symlog))


def _resolve(support):
    """Return (centres [n], lo, hi, width, symlog) for a Support or centre array."""
    if isinstance(support, Support):
        return support.centers, support.v_min, support.v_max, support.width, support.symlog
    centers = jnp.asarray(support, dtype=jnp.float32)
    if centers.ndim != 1 or centers.shape[0] < 2:
        raise ValueError(
            f"support must be a Support or a 1-D array of >= 2 bin centres, got shape {centers.shape}"
        )
    return centers, centers[0], centers[-1], centers[1] - centers[0], False


def _transform(y, symlog_flag):
    y = jnp.asarray(y, dtype=jnp.float32)
    return symlog(y) if symlog_flag else y


def hl_gauss_target(y, support, sigma_ratio: float = 0.75):
    """HL-Gauss target (Farebrother et al. 2024): ``[..., num_bins]`` probabilities.

    The mass of ``N(y, sigma^2)`` in each bin, from the normal CDF at the bin
    edges, renormalised to the support; ``sigma = sigma_ratio * bin width``.
    ``y`` (any shape, symlog'd first when the support is) is clipped to
    ``[v_min, v_max]`` so the normaliser is never ~0 (no NaN for huge y).

    Raises:
      ValueError: if ``sigma_ratio`` is not positive (checked when it is a
        Python number).
    """
    if isinstance(sigma_ratio, (int, float)) and not sigma_ratio > 0:
        raise ValueError(f"hl_gauss_target: sigma_ratio must be > 0, got {sigma_ratio}")
    centers, lo, hi, width, symlog_flag = _resolve(support)
    y = jnp.clip(_transform(y, symlog_flag), lo, hi)
    sigma = sigma_ratio * width
    edges = jnp.concatenate([centers - width / 2, centers[-1:] + width / 2])
    z = (edges - y[..., None]) / (jnp.sqrt(2.0) * sigma)
    cdf = 0.5 * erf(z)  # the +0.5 cancels in differences
    mass = cdf[..., 1:] - cdf[..., :-1]
    total = cdf[..., -1:] - cdf[..., :1]
    probs = jnp.maximum(mass, 0.0) / jnp.maximum(total, 1e-12)
    return probs


def two_hot_target(y, support):
    """Two-hot target: ``[..., num_bins]``; mass on the two neighbouring centres.

    Its mean over the centres is ``y`` (symlog'd when the support is); values
    outside the support are clipped to the end bins.
    """
    centers, lo, hi, width, symlog_flag = _resolve(support)
    n = centers.shape[0]
    y = jnp.clip(_transform(y, symlog_flag), lo, hi)
    pos = (y - lo) / width
    lower = jnp.clip(jnp.floor(pos), 0, n - 2)
    frac = jnp.clip(pos - lower, 0.0, 1.0)
    lower_i = lower.astype(jnp.int32)
    return (
        jax.nn.one_hot(lower_i, n, dtype=jnp.float32) * (1.0 - frac)[..., None]
        + jax.nn.one_hot(lower_i + 1, n, dtype=jnp.float32) * frac[..., None]
    )


def expected_value(logits, support):
    """Scalar value ``[...]`` from ``[..., num_bins]`` logits.

    The mean of the centres under ``softmax(logits)``, mapped back through
    ``symexp`` when the support is in symlog space.
    """
    centers, _, _, _, symlog_flag = _resolve(support)
    probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    mean = jnp.sum(probs * centers, axis=-1)
    return symexp(mean) if symlog_flag else mean


def cross_entropy(logits, target_probs):
    """``-sum(target * log_softmax(logits), -1)``: shape ``[...]``.

    Bins with zero target mass contribute 0 even where a logit is ``-inf``.
    """
    logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return -jnp.sum(jnp.where(target_probs > 0, target_probs * logp, 0.0), axis=-1)


def value_loss(logits, returns, support, kind: str = "hl_gauss", sigma_ratio: float = 0.75):
    """Per-element cross-entropy ``[...]`` of ``logits`` against a target built from ``returns``.

    ``kind`` is ``"hl_gauss"`` or ``"two_hot"``. The target is wrapped in
    ``stop_gradient``; reduce (e.g. ``.mean()``) at the call site.
    """
    if kind == "hl_gauss":
        target = hl_gauss_target(returns, support, sigma_ratio)
    elif kind == "two_hot":
        target = two_hot_target(returns, support)
    else:
        raise ValueError(f"value_loss: kind must be 'hl_gauss' or 'two_hot', got {kind!r}")
    return cross_entropy(logits, jax.lax.stop_gradient(target))
