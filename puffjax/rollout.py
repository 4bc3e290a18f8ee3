"""Rollouts: the environment's zero-copy buffers -> jitted policy step -> actions back into C.

The policy step writes straight into the device-side rollout buffer (:mod:`puffjax.buffer`,
donated, so updated in place) and keeps the non-finite guard's record (:mod:`puffjax.finite`).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from . import finite
from .buffer import Batch, write_step


def make_act(policy, gamma: float):
    """act(params, buf, carry, key, obs, rew, term, trunc, prev_value, seen, row0, t) ->
    (buf, carry, key, env_action, value, seen). Jitted; ``buf`` is donated (updated in place).

    ``row0`` is the first buffer row of this block of agents and ``t`` the column; ``seen`` is
    the guard's record of non-finite inputs (:func:`puffjax.finite.record`)."""
    dist = policy.dist

    def act(params, buf, carry, key, obs, rew, term, trunc, prev_value, seen, row0, t):
        n = obs.shape[0]
        seen = finite.record(seen, (row0 // n) * buf.obs.shape[1] + t, obs, rew)
        done = term | trunc
        # Zero the recurrent state where an episode began and at every segment start,
        # exactly as training replays each segment from a zero carry.
        out, action, carry, key = policy.act(params, obs, carry, done | (t == 0), key)
        logp = dist.log_prob(out.action_params, action)
        # A truncated episode still had a future: bootstrap it with the value of the last
        # state seen (its final observation was replaced by the auto-reset).
        reward = jnp.clip(rew, -1.0, 1.0) + jnp.where(trunc & ~term, gamma * prev_value, 0.0)
        step = Batch(obs, action, logp, out.value, reward, done.astype(jnp.float32))
        buf = write_step(buf, step, row0, t)
        return buf, carry, key, dist.to_env_action(action), out.value, seen

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


def collect(env, act, params, buf, carry, key, prev_value, geom, timer: Timer, epoch: int):
    """Play one epoch: ``geom.rows_per_agent`` horizons of every agent, into ``buf``.

    Returns ``(buf, key, prev_value)``. Raises :class:`puffjax.finite.NonFiniteError` naming the
    input, row and step when the environment returned NaN or inf (``epoch``: 1-based, for it)."""
    N, clock = env.num_envs, time.perf_counter
    seen = finite.clean_record()
    for j in range(geom.rows_per_agent):
        for t in range(geom.horizon):
            t0 = clock()
            inputs = jax.device_put((env.observations, env.rewards, env.terminals, env.truncations))
            t1 = clock()
            buf, carry, key, action, prev_value, seen = act(params, buf, carry, key, *inputs, prev_value, seen,
                                                            j * N, t)
            action = np.asarray(action)  # waits for the policy
            t2 = clock()
            try:
                env.step(action)
            except Exception as e:  # e.g. NaN actions computed from NaN observations
                finite.check_record(seen, epoch)
                raise
            t3 = clock()
            timer.add("copy", t1 - t0)
            timer.add("rollout", t2 - t1)
            timer.add("env", t3 - t2)
    finite.check_record(seen, epoch)
    return buf, key, prev_value
