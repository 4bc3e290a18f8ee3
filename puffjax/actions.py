"""Actions: the distribution a policy samples from, and the mapping to what the env takes.

Each distribution is a small frozen (hashable) dataclass holding only static
facts about the action space, with pure, jit-friendly methods:

``sample(key, params) -> action``
``log_prob(params, action) -> [...]``
``entropy(params) -> [...]``
``mode(params) -> action``              deterministic action for evaluation
``to_env_action(action) -> action``     what to send to the environment (jittable)
``zeros_action(batch_shape)``           a placeholder action array (buffers)

``params`` is the policy head's output (``PolicyOutput.action_params``):

=================  =============================  ==========================
space              params                         action
=================  =============================  ==========================
Discrete(n)        logits ``[..., n]``            int32 ``[...]``
MultiDiscrete      tuple of ``[..., n_i]`` logits int32 ``[..., k]``
MultiBinary(n)     as MultiDiscrete([2] * n)      int32 ``[..., n]``
Dict / Tuple       as MultiDiscrete if every leaf is discrete, as Box if every leaf is a
                   Box; else :class:`Mixed`: ``(logits tuple, (mean, log_std))`` and
                   float32 ``[..., k + d]``
Box (continuous)   ``(mean, log_std)``, each      float32 ``[..., d]``
                   ``[..., d]``, d = prod(shape)  (unclipped, flat)
=================  =============================  ==========================

Log-probs and entropies of MultiDiscrete and Gaussian actions are summed over
the components. A Gaussian action is stored unclipped (its log-prob stays
exact); :meth:`DiagGaussian.to_env_action` clips it to the Box bounds and
reshapes it to the space's shape only when it is sent to the environment.
``to_env_action`` is the one mapping from a sampled action to the environment's
(``Discrete(n, start)`` adds ``start``); the rollout and evaluation both call it inside
their jitted step.

``for_space(space)`` picks the distribution for a gymnasium action space.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from .envs.spaces import action_layout

__all__ = ["Categorical", "MultiCategorical", "DiagGaussian", "Mixed", "for_space"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _categorical_log_prob(logits, action):
    logp = jax.nn.log_softmax(logits, axis=-1)
    action = jnp.asarray(action, jnp.int32)
    return jnp.take_along_axis(logp, action[..., None], axis=-1)[..., 0]


def _categorical_entropy(logits):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


@dataclasses.dataclass(frozen=True)
class Categorical:
    """Categorical over ``n`` logits (gymnasium ``Discrete(n, start)``)."""

    n: int
    start: int = 0

    @property
    def num_params(self) -> int:
        """Width of the head that feeds this distribution."""
        return self.n

    def sample(self, key, logits):
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)

    def log_prob(self, logits, action):
        return _categorical_log_prob(logits, action)

    def entropy(self, logits):
        return _categorical_entropy(logits)

    def mode(self, logits):
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def zeros_action(self, batch_shape: Sequence[int] = ()):
        return jnp.zeros(tuple(batch_shape), jnp.int32)

    def to_env_action(self, action):
        """int32 ``[...]`` in ``[start, start + n)``."""
        return jnp.asarray(action, jnp.int32) + self.start


@dataclasses.dataclass(frozen=True)
class MultiCategorical:
    """Independent categoricals with sizes ``nvec`` (MultiDiscrete / MultiBinary)."""

    nvec: tuple[int, ...]
    start: tuple[int, ...] | None = None

    @property
    def num_params(self) -> int:
        return int(sum(self.nvec))

    def split(self, flat_logits):
        """Split ``[..., sum(nvec)]`` logits into the tuple this distribution takes."""
        idx = np.cumsum(self.nvec)[:-1].tolist()
        return tuple(jnp.split(flat_logits, idx, axis=-1))

    def sample(self, key, logits):
        keys = jax.random.split(key, len(self.nvec))
        acts = [
            jax.random.categorical(k, lg, axis=-1).astype(jnp.int32)
            for k, lg in zip(keys, logits)
        ]
        return jnp.stack(acts, axis=-1)

    def log_prob(self, logits, action):
        action = jnp.asarray(action, jnp.int32)
        return sum(_categorical_log_prob(lg, action[..., i]) for i, lg in enumerate(logits))

    def entropy(self, logits):
        return sum(_categorical_entropy(lg) for lg in logits)

    def mode(self, logits):
        return jnp.stack([jnp.argmax(lg, axis=-1).astype(jnp.int32) for lg in logits], axis=-1)

    def zeros_action(self, batch_shape: Sequence[int] = ()):
        return jnp.zeros(tuple(batch_shape) + (len(self.nvec),), jnp.int32)

    def to_env_action(self, action):
        """int32 ``[..., k]``, component i in ``[start_i, start_i + nvec_i)``."""
        a = jnp.asarray(action, jnp.int32)
        return a + np.asarray(self.start, np.int32) if self.start is not None else a


@dataclasses.dataclass(frozen=True)
class DiagGaussian:
    """Diagonal Gaussian over a flat ``[..., dim]`` action; params ``(mean, log_std)``.

    ``low``/``high``/``shape`` describe the Box, used only by :meth:`to_env_action`.
    """

    dim: int
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    shape: tuple[int, ...] | None = None

    @property
    def num_params(self) -> int:
        return self.dim

    def sample(self, key, params):
        mean, log_std = params
        eps = jax.random.normal(key, jnp.shape(mean), jnp.float32)
        return mean + jnp.exp(log_std) * eps

    def log_prob(self, params, action):
        mean, log_std = params
        z = (action - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z * z - log_std - _HALF_LOG_2PI, axis=-1)

    def entropy(self, params):
        mean, log_std = params
        log_std = jnp.broadcast_to(log_std, jnp.shape(mean))
        return jnp.sum(log_std + 0.5 + _HALF_LOG_2PI, axis=-1)

    def mode(self, params):
        return params[0]

    def zeros_action(self, batch_shape: Sequence[int] = ()):
        return jnp.zeros(tuple(batch_shape) + (self.dim,), jnp.float32)

    def to_env_action(self, action):
        """Clip a stored (unclipped, flat) action to the Box and restore its shape."""
        a = jnp.asarray(action, jnp.float32)
        if self.low is not None:
            a = jnp.clip(a, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))
        if self.shape is not None:
            a = a.reshape(a.shape[:-1] + tuple(self.shape))
        return a


@dataclasses.dataclass(frozen=True)
class Mixed:
    """Discrete and continuous components together (a Dict / Tuple action space holding both).

    The action is float32 ``[..., k + d]``: the k discrete components (as floats, exact up to
    2^24), then the d continuous ones; ``params`` is ``(logits tuple, (mean, log_std))``.
    ``order[j]`` is the stored component that goes to element j of the env's flat action row."""

    discrete: MultiCategorical
    continuous: DiagGaussian
    order: tuple[int, ...]

    @property
    def num_params(self) -> int:
        return self.discrete.num_params + self.continuous.num_params

    def _split(self, action):
        k = len(self.discrete.nvec)
        return jnp.asarray(action[..., :k], jnp.int32), action[..., k:]

    def sample(self, key, params):
        k1, k2 = jax.random.split(key)
        d = self.discrete.sample(k1, params[0]).astype(jnp.float32)
        return jnp.concatenate([d, self.continuous.sample(k2, params[1])], axis=-1)

    def log_prob(self, params, action):
        d, c = self._split(action)
        return self.discrete.log_prob(params[0], d) + self.continuous.log_prob(params[1], c)

    def entropy(self, params):
        return self.discrete.entropy(params[0]) + self.continuous.entropy(params[1])

    def mode(self, params):
        d = self.discrete.mode(params[0]).astype(jnp.float32)
        return jnp.concatenate([d, self.continuous.mode(params[1])], axis=-1)

    def zeros_action(self, batch_shape: Sequence[int] = ()):
        return jnp.zeros(tuple(batch_shape) + (len(self.discrete.nvec) + self.continuous.dim,), jnp.float32)

    def to_env_action(self, action):
        """float32 ``[..., k + d]`` in the env's row order: starts added, Box parts clipped."""
        d, c = self._split(action)
        both = jnp.concatenate([self.discrete.to_env_action(d).astype(jnp.float32),
                                self.continuous.to_env_action(c)], axis=-1)
        return both[..., np.asarray(self.order)]


def for_space(space):
    """The distribution for a gymnasium action space: ``Discrete`` -> :class:`Categorical`,
    float ``Box`` -> :class:`DiagGaussian`; ``MultiDiscrete``, ``MultiBinary`` and ``Dict`` /
    ``Tuple`` of discrete spaces -> :class:`MultiCategorical` over every component of the flat
    action row (:func:`puffjax.envs.spaces.action_layout`); Dict / Tuple mixing discrete and Box
    leaves -> :class:`Mixed`.

    Raises:
      TypeError: for unsupported spaces (Text, Sequence, integer Box, ...), naming them.
      ValueError: for degenerate ones (empty spaces). Box bounds may be infinite (then
        nothing is clipped).
    """
    layout = action_layout(space)
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(int(space.n), int(space.start))
    if isinstance(space, gym.spaces.Box):
        dim = layout.size
        low = tuple(float(x) for x in np.broadcast_to(space.low, space.shape).reshape(-1))
        high = tuple(float(x) for x in np.broadcast_to(space.high, space.shape).reshape(-1))
        return DiagGaussian(dim, low, high, tuple(space.shape))
    discrete = [leaf for leaf in layout.leaves if leaf.discrete]
    nvec = tuple(n for leaf in discrete for n in leaf.nvec)
    start = tuple(s for leaf in discrete for s in leaf.start)
    multi = MultiCategorical(nvec, start if any(start) else None) if discrete else None
    if len(discrete) == len(layout.leaves):
        return multi
    low, high, is_discrete = layout.element_bounds()
    continuous = DiagGaussian(int((~is_discrete).sum()), tuple(float(x) for x in low[~is_discrete]),
                              tuple(float(x) for x in high[~is_discrete]), None)
    if multi is None:  # a Dict / Tuple of Boxes only: one Gaussian over the flat row
        return continuous
    # stored order: discrete components, then continuous ones; the row interleaves them
    d_idx, c_idx = np.flatnonzero(is_discrete), np.flatnonzero(~is_discrete)
    order = np.empty(layout.size, np.int64)
    order[d_idx] = np.arange(len(d_idx))
    order[c_idx] = len(d_idx) + np.arange(len(c_idx))
    return Mixed(multi, continuous, tuple(int(i) for i in order))
