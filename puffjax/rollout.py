"""Rollouts: the environment's zero-copy buffers -> jitted policy step -> actions back into C.

The policy step writes straight into the device-side rollout buffer (donated, so updated in
place), following the buffer convention of :class:`puffjax.update.Batch`.
"""
from __future__ import annotations

import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from .update import Batch


def empty_batch(geom, observation_space, action_space) -> Batch:
    S, H = geom.segments, geom.horizon
    obs_dtype = np.uint8 if observation_space.dtype == np.uint8 else np.float32
    if isinstance(action_space, gym.spaces.Discrete):
        actions = jnp.zeros((S, H), jnp.int32)
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        actions = jnp.zeros((S, H, len(action_space.nvec)), jnp.int32)
    else:
        actions = jnp.zeros((S, H, *action_space.shape), jnp.float32)
    f = lambda: jnp.zeros((S, H), jnp.float32)
    return Batch(obs=jnp.zeros((S, H, *observation_space.shape), obs_dtype), actions=actions,
                 logprobs=f(), values=f(), rewards=f(), terminals=f())


def make_act(policy, action_space, gamma: float):
    """act(params, buf, carry, key, obs, rew, term, trunc, prev_value, row0, t) ->
    (buf, carry, key, env_action, value). Jitted; ``buf`` is donated (updated in place)."""
    dist = policy.dist
    if isinstance(action_space, gym.spaces.Box):
        low, high = np.asarray(action_space.low, np.float32), np.asarray(action_space.high, np.float32)
        to_env = lambda a: jnp.clip(a, low, high)  # the unclipped sample is what gets stored
    else:
        to_env = lambda a: a.astype(jnp.int32)

    def write(buffer, column, row0, t):
        update = column[:, None].astype(buffer.dtype)
        start = (row0, t) + (0,) * (buffer.ndim - 2)
        return jax.lax.dynamic_update_slice(buffer, update, start)

    def act(params, buf, carry, key, obs, rew, term, trunc, prev_value, row0, t):
        done = term | trunc
        # Zero the recurrent state where an episode began and at every segment start,
        # exactly as training replays each segment from a zero carry.
        out, carry = policy.step(params, obs, carry, done | (t == 0))
        key, sub = jax.random.split(key)
        action = dist.sample(sub, out.action_params)
        logp = dist.log_prob(out.action_params, action)
        # A truncated episode still had a future: bootstrap it with the value of the last
        # state seen (its final observation was replaced by the auto-reset).
        reward = jnp.clip(rew, -1.0, 1.0) + jnp.where(trunc & ~term, gamma * prev_value, 0.0)
        columns = (obs, action, logp, out.value, reward, done.astype(jnp.float32))
        buf = Batch(*(write(b, c, row0, t) for b, c in zip(buf, columns)))
        return buf, carry, key, to_env(action), out.value

    return jax.jit(act, donate_argnums=(1,))


class Timer:
    """Accumulates wall time per phase."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def pop(self) -> dict[str, float]:
        out, self.totals = self.totals, {}
        return out


def collect(env, act, params, buf, carry, key, prev_value, geom, timer: Timer):
    """Play one epoch: ``geom.rows_per_agent`` horizons of every agent, into ``buf``."""
    N, clock = env.num_envs, time.perf_counter
    for j in range(geom.rows_per_agent):
        for t in range(geom.horizon):
            t0 = clock()
            inputs = jax.device_put((env.observations, env.rewards, env.terminals, env.truncations))
            t1 = clock()
            buf, carry, key, action, prev_value = act(params, buf, carry, key, *inputs, prev_value, j * N, t)
            action = np.asarray(action)  # waits for the policy
            t2 = clock()
            env.step(action)
            t3 = clock()
            timer.add("copy", t1 - t0)
            timer.add("rollout", t2 - t1)
            timer.add("env", t3 - t2)
    return buf, carry, key, prev_value
