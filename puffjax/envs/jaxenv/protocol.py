"""The functional environment protocol: one pure, jittable environment, and N of them in a batch.

A :class:`JaxEnv` is ONE environment written in JAX: ``reset(key) -> (state, obs)`` and
``step(key, state, action) -> (state, obs, reward, terminated, truncated, info)``, with no side
effects, so it runs inside ``jit``, ``vmap`` and ``lax.scan``. ``obs`` is already the buffer row
of :func:`puffjax.envs.spaces.observation_layout` of its ``observation_space`` (shape
``row_shape``, dtype ``layout.dtype``); ``action`` is what the policy's
``dist.to_env_action`` gives (an int32 scalar for ``Discrete``, a float32 vector for ``Box``).

:func:`vec_reset` and :func:`vec_step` run ``num_envs`` of them as a batch held in a
:class:`VecState`: the step is vmapped, an episode that ends starts the next one at once
(auto-reset: the returned ``obs`` row is the new episode's first observation, while reward,
terminated and truncated belong to the finished one), and the statistics of finished episodes
(return, length and the env's own ``log_names``) are summed in the state until
:func:`log_means` / :func:`read_log` take them. Every function here is pure and jittable, and
vmaps over keys (several seeds at once).
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["JaxEnv", "VecState", "EPISODE_FIELDS", "obs_row", "vec_log_names", "vec_reset", "vec_step",
           "log_means", "read_log"]

EPISODE_FIELDS = ("episode_return", "episode_length")  # summed for every env, before its log_names


class JaxEnv(abc.ABC):
    """One environment as pure functions (see the module docstring).

    ``observation_space`` / ``action_space``: gymnasium spaces for one agent (the policy is
    built from them); ``agents_per_env``: 1; ``log_names``: what the env reports per finished
    episode beyond its return and length (e.g. ``("perf",)``): ``step``'s ``info`` holds a
    scalar for each, the value the episode reports if it ended at this step.
    An instance is static configuration: it is closed over (or passed as a static argument)
    by jitted code, never traced."""

    observation_space: Any
    action_space: Any
    agents_per_env: int = 1
    log_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def reset(self, key: jax.Array) -> tuple[Any, jax.Array]:
        """``(state, obs)`` of a new episode drawn with ``key``."""

    @abc.abstractmethod
    def step(self, key: jax.Array, state, action) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, dict]:
        """``(state, obs, reward, terminated, truncated, info)`` after ``action``. ``terminated``:
        the episode reached a terminal state (no bootstrapping); ``truncated``: it was cut (a
        time limit). Either ends it; the caller resets (see :func:`vec_step`)."""


def obs_row(layout, obs) -> jax.Array:
    """One observation (the structure of ``layout.space``: arrays, dicts, tuples, or objects whose
    attributes are the Dict keys) as its buffer row, with ``jax.numpy`` (jittable): the flatten
    rule of :mod:`puffjax.envs.spaces`, for adapters to build ``obs`` with."""
    if layout.plain:
        return jnp.reshape(jnp.asarray(obs), layout.row_shape).astype(layout.dtype)
    parts = []
    for leaf in layout.leaves:
        value = obs
        for p in leaf.path:
            value = value[p] if isinstance(value, (Mapping, tuple, list)) else getattr(value, p)
        parts.append(jnp.ravel(jnp.asarray(value)).astype(layout.dtype))
    return jnp.concatenate(parts)


class VecState(NamedTuple):
    """``num_envs`` environments and their episode statistics (a pytree of arrays).

    ``env``: the batched states of the environments; ``obs [N, *row]``: their current
    observations; ``episode_return [N]`` f32 / ``episode_length [N]`` i32: the running
    episodes so far; ``log_sum [K]`` f32: sums over the episodes finished since the last
    :func:`read_log`, in the order of :func:`vec_log_names`; ``log_count``: their number (f32)."""

    env: Any
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    log_sum: jax.Array
    log_count: jax.Array


def vec_log_names(env: JaxEnv) -> tuple[str, ...]:
    """The names of ``VecState.log_sum``'s entries: return, length, then the env's ``log_names``."""
    return EPISODE_FIELDS + tuple(env.log_names)


def vec_reset(env: JaxEnv, key: jax.Array, num_envs: int) -> VecState:
    """``num_envs`` new episodes (environment i drawn with ``split(key, num_envs)[i]``), no
    finished episodes logged."""
    state, obs = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return VecState(state, obs, jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, jnp.int32),
                    jnp.zeros(len(vec_log_names(env)), jnp.float32), jnp.zeros((), jnp.float32))


def _select(done: jax.Array, new, old):
    """``new`` where ``done`` (one flag per environment, the leading axis), else ``old``, leaf by leaf."""
    def pick(a, b):
        return jnp.where(jnp.reshape(done, done.shape + (1,) * (jnp.ndim(a) - 1)), a, b)
    return jax.tree.map(pick, new, old)


def vec_step(env: JaxEnv, key: jax.Array, state: VecState, action) -> tuple[VecState, jax.Array, jax.Array, jax.Array]:
    """Step every environment once with ``action [N, ...]``; returns ``(state, reward [N] f32,
    terminated [N] bool, truncated [N] bool)``. ``truncated`` is False where ``terminated`` is
    True (a terminal state is never bootstrapped). Environments whose episode ended are reset
    with fresh keys (the returned ``state.obs`` is the new episode's first observation) and
    their episode's statistics are added to ``log_sum`` / ``log_count``."""
    n = state.obs.shape[0]
    step_key, reset_key = jax.random.split(key)
    env_state, obs, reward, terminated, truncated, info = jax.vmap(env.step)(
        jax.random.split(step_key, n), state.env, action)
    reward = jnp.asarray(reward, jnp.float32)
    terminated = jnp.asarray(terminated, jnp.bool_)
    truncated = jnp.asarray(truncated, jnp.bool_) & ~terminated
    done = terminated | truncated
    episode_return = state.episode_return + reward
    episode_length = state.episode_length + 1
    finished = jnp.stack([episode_return, episode_length.astype(jnp.float32),
                          *(jnp.asarray(info[k], jnp.float32) for k in env.log_names)])
    log_sum = state.log_sum + jnp.sum(jnp.where(done, finished, 0.0), axis=1)
    log_count = state.log_count + jnp.sum(done, dtype=jnp.float32)
    fresh_state, fresh_obs = jax.vmap(env.reset)(jax.random.split(reset_key, n))
    new = VecState(_select(done, fresh_state, env_state), _select(done, fresh_obs, obs),
                   jnp.where(done, 0.0, episode_return), jnp.where(done, 0, episode_length), log_sum, log_count)
    return new, reward, terminated, truncated


def log_means(state: VecState) -> tuple[jax.Array, jax.Array]:
    """``(means [K], count)``: the mean of each :func:`vec_log_names` field over the episodes
    finished since the last :func:`read_log` (zeros when none), and their number (jittable)."""
    return state.log_sum / jnp.maximum(state.log_count, 1.0), state.log_count


def read_log(env: JaxEnv, state: VecState) -> tuple[dict, VecState]:
    """On the host: ``({name: mean, ..., "n": count}`` over the episodes finished since the last
    call, or ``{}`` when none; the state with those sums cleared)``."""
    means, count = jax.device_get(log_means(state))
    cleared = state._replace(log_sum=jnp.zeros_like(state.log_sum), log_count=jnp.zeros_like(state.log_count))
    n = int(count)
    if n == 0:
        return {}, cleared
    return {**{k: float(v) for k, v in zip(vec_log_names(env), np.asarray(means))}, "n": n}, cleared
