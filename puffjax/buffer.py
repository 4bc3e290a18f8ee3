"""The rollout buffer: what the rollout writes and the update reads.

One :class:`Batch` of ``[S, H, ...]`` device arrays: S rows (segments) of H consecutive steps
of one agent. Agent ``i``'s ``j``-th horizon of an epoch is row ``j * num_agents + i``.
Column ``t`` of a row holds observation o_t, the action a_t taken on it, log pi(a_t | o_t),
V(o_t), and the reward r_t and the episode-start flag that ARRIVED WITH o_t (the outcome of
a_{t-1}), the convention :func:`puffjax.puff_advantage` reads (rewards and flags at t + 1).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .envs.spaces import observation_layout


class Batch(NamedTuple):
    obs: jax.Array  # [S, H, *obs_shape], uint8 or float32 as the env gives them
    actions: jax.Array  # [S, H, ...] as the policy sampled them (before the env mapping)
    logprobs: jax.Array  # [S, H] float32
    values: jax.Array  # [S, H] float32
    rewards: jax.Array  # [S, H] float32, clipped to [-1, 1]; a truncation adds gamma * V(last state)
    # float32: 1 where o_t is the first observation of a new episode, i.e. the previous one
    # ended by a terminal OR a truncation (the env's `terminals` buffer holds terminals only).
    episode_starts: jax.Array
    # float32: 1 where o_t is a live agent's (a_t counts as a step), 0 where the agent is masked (a
    # PettingZoo agent that finished before the others, see puffjax.envs.pettingzoo): its steps
    # get no advantage and no weight in the loss.
    masks: jax.Array


def allocate(segments: int, horizon: int, observation_space, action_dist) -> Batch:
    """A zeroed buffer for ``segments`` rows of ``horizon`` steps (``action_dist``: the policy's
    action distribution, which knows the action's shape and dtype)."""
    S, H = segments, horizon
    layout = observation_layout(observation_space)  # the env's observation row (flattened space)
    f = lambda: jnp.zeros((S, H), jnp.float32)
    return Batch(obs=jnp.zeros((S, H, *layout.row_shape), layout.dtype),
                 actions=action_dist.zeros_action((S, H)), logprobs=f(), values=f(), rewards=f(),
                 episode_starts=f(), masks=f())


def write_step(batch: Batch, columns: Batch, row0, t) -> Batch:
    """Write one step of N agents (``columns``: ``[N, ...]`` each) into rows ``row0 .. row0 + N``
    at column ``t`` (jittable; with the buffer donated, XLA updates it in place)."""
    def write(buffer, column):
        update = column[:, None].astype(buffer.dtype)
        return jax.lax.dynamic_update_slice(buffer, update, (row0, t) + (0,) * (buffer.ndim - 2))

    return Batch(*(write(b, c) for b, c in zip(batch, columns)))
