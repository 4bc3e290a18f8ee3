"""Rollouts: the environment's zero-copy buffers -> jitted policy step -> actions back into C.

The policy step writes straight into the device-side rollout buffer (:mod:`puffjax.buffer`,
donated, so updated in place) and keeps the non-finite guard's record (:mod:`puffjax.finite`).
It runs under ``shard_map`` over the mesh (:mod:`puffjax.parallel`): each device steps the policy
for its own block of agents and writes its own rows, so nothing crosses devices.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from . import finite, parallel
from .buffer import Batch, write_step


def make_act(policy, gamma: float, mesh):
    """act(params, buf, carry, key, obs, rew, term, trunc, mask, prev_value, seen, row0, t) ->
    (buf, carry, key, env_action, value, seen). Jitted; ``buf`` is donated (updated in place).

    Arrays of agents and buffer rows are sharded over ``mesh`` (each device: n agents, its rows);
    ``row0`` is the first row of this block of n agents within a device's rows and ``t`` the
    column; ``seen`` stacks one non-finite record (:func:`puffjax.finite.record`) per device."""
    dist = policy.dist
    rows = P(parallel.AXIS)

    def act(params, buf, carry, key, obs, rew, term, trunc, mask, prev_value, seen, row0, t):
        n = obs.shape[0]
        first_agent = jax.lax.axis_index(parallel.AXIS) * n
        record = finite.record(seen[0], (row0 // n) * buf.obs.shape[1] + t, obs, rew, first_agent)[None]
        done = term | trunc
        # Zero the recurrent state where an episode began and at every segment start,
        # exactly as training replays each segment from a zero carry.
        out, action, carry, _ = policy.act(params, obs, carry, done | (t == 0), parallel.device_key(key))
        logp = dist.log_prob(out.action_params, action)
        # A truncated episode still had a future: bootstrap it with the value of the last
        # state seen (its final observation was replaced by the auto-reset).
        reward = jnp.clip(rew, -1.0, 1.0) + jnp.where(trunc & ~term, gamma * prev_value, 0.0)
        step = Batch(obs, action, logp, out.value, reward, done.astype(jnp.float32), mask.astype(jnp.float32))
        buf = write_step(buf, step, row0, t)
        next_key = jax.random.split(key)[0]  # as Policy.act advances it: the same on every device
        return buf, carry, next_key, dist.to_env_action(action), out.value, record

    sharded = jax.shard_map(act, mesh=mesh, check_vma=False,
                            in_specs=(P(), rows, rows, P(), rows, rows, rows, rows, rows, rows, rows, P(), P()),
                            out_specs=(rows, rows, P(), rows, rows, rows))
    return jax.jit(sharded, donate_argnums=(1,))


class Timer:
    """Accumulates wall time per phase."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def pop(self) -> dict[str, float]:
        out, self.totals = self.totals, {}
        return out


def collect(env, act, params, buf, carry, key, prev_value, geom, timer: Timer, epoch: int, mesh):
    """Play one epoch: ``geom.rows_per_agent`` horizons of every agent, into ``buf``.

    Returns ``(buf, key, prev_value)``. Raises :class:`puffjax.finite.NonFiniteError` naming the
    input, row and step when the environment returned NaN or inf (``epoch``: 1-based, for it)."""
    clock = time.perf_counter
    n = env.num_agents // parallel.local_devices(mesh)  # agents (buffer rows) per device
    seen = parallel.from_local(mesh, np.full((parallel.local_devices(mesh), len(finite.INPUTS), 2), -1, np.int32))
    multi = jax.process_count() > 1

    def check():
        record = parallel.to_local(seen)
        finite.check_record(parallel.gather(record) if multi else record, epoch, env.num_agents if multi else None)

    for j in range(geom.rows_per_agent):
        for t in range(geom.horizon):
            t0 = clock()
            inputs = [parallel.from_local(mesh, x) for x in (env.observations, env.rewards, env.terminals,
                                                              env.truncations, env.masks)]
            t1 = clock()
            buf, carry, key, action, prev_value, seen = act(params, buf, carry, key, *inputs, prev_value, seen,
                                                            j * n, t)
            action = parallel.to_local(action)  # waits for the policy
            t2 = clock()
            try:
                env.step(action)
            except Exception:  # e.g. NaN actions computed from NaN observations
                check()
                raise
            t3 = clock()
            timer.add("copy", t1 - t0)
            timer.add("rollout", t2 - t1)
            timer.add("env", t3 - t2)
    check()
    return buf, key, prev_value
