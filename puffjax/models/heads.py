"""Heads: a policy network's last stage, on the core's features ``[..., H]``.

Action heads (parameters ``actor``, orthogonal gain 0.01, zero bias, and ``log_std`` for the
continuous part), one per distribution of :mod:`puffjax.actions` (:func:`action_head` picks it):

* :class:`CategoricalHead`: ``Dense(n)`` logits (``Discrete``);
* :class:`MultiCategoricalHead`: ``Dense(sum(nvec))`` split into a tuple of logits
  (``MultiDiscrete``, ``MultiBinary``, Dict / Tuple of discrete spaces);
* :class:`GaussianHead`: the mean ``Dense(d)`` and a state-independent learned ``log_std [d]``
  initialised to 0, as ``(mean, log_std)`` (float ``Box``);
* :class:`MixedHead`: one ``Dense(sum(nvec) + d)`` read as both of the above, as
  ``(logits tuple, (mean, log_std))`` (Dict / Tuple mixing discrete and Box leaves).

Value heads (parameters ``value``, orthogonal gain 1; :func:`value_head` picks one) return
``(value, value_logits)``:

* :class:`ScalarValueHead`: ``Dense(1)`` with a zero bias; no logits;
* :class:`CategoricalValueHead`: ``Dense(num_bins)`` logits over a
  :class:`puffjax.value_head.Support` and their expected value. The bias is the log of the
  HL-Gauss target of 0, so the first estimates are near 0, as the scalar head's are.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from puffjax import actions as _actions
from puffjax import value_head as _vh
from puffjax.models.layer_init import dense, zeros


def _split_logits(logits, nvec):
    return tuple(jnp.split(logits, np.cumsum(nvec)[:-1].tolist(), axis=-1))


class CategoricalHead(nn.Module):
    """``Dense(n)``: the logits of one categorical distribution."""

    n: int

    @nn.compact
    def __call__(self, x):
        return dense(self.n, 0.01, "actor")(x)


class MultiCategoricalHead(nn.Module):
    """``Dense(sum(nvec))`` split into a tuple of logits, one per component."""

    nvec: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        return _split_logits(dense(int(sum(self.nvec)), 0.01, "actor")(x), self.nvec)


class GaussianHead(nn.Module):
    """``(mean, log_std)``, each ``[..., dim]``: the mean ``Dense(dim)`` and a learned ``log_std``
    that does not depend on the input (initialised to 0)."""

    dim: int

    @nn.compact
    def __call__(self, x):
        mean = dense(self.dim, 0.01, "actor")(x)
        log_std = self.param("log_std", zeros, (self.dim,), jnp.float32)
        return mean, jnp.broadcast_to(log_std, mean.shape)


class MixedHead(nn.Module):
    """``(logits tuple, (mean, log_std))``: one ``Dense(sum(nvec) + dim)`` whose first
    ``sum(nvec)`` outputs are the logits of the discrete components and the rest the Gaussian
    mean; ``log_std [dim]`` as in :class:`GaussianHead`."""

    nvec: tuple[int, ...]
    dim: int

    @nn.compact
    def __call__(self, x):
        k = int(sum(self.nvec))
        out = dense(k + self.dim, 0.01, "actor")(x)
        mean = out[..., k:]
        log_std = self.param("log_std", zeros, (self.dim,), jnp.float32)
        return _split_logits(out[..., :k], self.nvec), (mean, jnp.broadcast_to(log_std, mean.shape))


def action_head(dist) -> nn.Module:
    """The action head that feeds the distribution ``dist`` (:func:`puffjax.actions.for_space`)."""
    if isinstance(dist, _actions.Categorical):
        return CategoricalHead(dist.n)
    if isinstance(dist, _actions.MultiCategorical):
        return MultiCategoricalHead(tuple(dist.nvec))
    if isinstance(dist, _actions.Mixed):
        return MixedHead(tuple(dist.discrete.nvec), dist.continuous.dim)
    return GaussianHead(dist.dim)


class ScalarValueHead(nn.Module):
    """``Dense(1)``: ``(value [...], None)``."""

    @nn.compact
    def __call__(self, x):
        return dense(1, 1.0, "value")(x)[..., 0], None


def _centred_value_bias(support):
    """Bias init of a categorical value head: the log of the HL-Gauss target of 0 (floored at 1e-6).

    A zero bias would make the first value estimate the support's middle (105 for [-10, 220]),
    every terminal TD error about -105, and the policy collapse before the critic recovers. This
    bias starts the head near 0, as the scalar head starts (0 is clipped into the support).
    """
    def init(key, shape, dtype=jnp.float32):
        del key
        probs = _vh.hl_gauss_target(jnp.zeros(()), support)
        return jnp.log(jnp.maximum(probs, 1e-6)).astype(dtype).reshape(shape)
    return init


class CategoricalValueHead(nn.Module):
    """``Dense(num_bins)`` logits over ``support``: ``(expected value [...], logits [..., num_bins])``."""

    support: Any  # puffjax.value_head.Support

    @nn.compact
    def __call__(self, x):
        logits = dense(self.support.num_bins, 1.0, "value", bias_init=_centred_value_bias(self.support))(x)
        return _vh.expected_value(logits, self.support), logits


def value_head(support) -> nn.Module:
    """The value head for ``support`` (a :class:`puffjax.value_head.Support`; None: scalar)."""
    return ScalarValueHead() if support is None else CategoricalValueHead(support)
