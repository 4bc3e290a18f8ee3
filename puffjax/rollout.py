"""Rollouts: the environment's zero-copy buffers -> jitted policy step -> actions back into C.

The policy step writes straight into the device-side rollout buffer (:mod:`puffjax.buffer`,
donated, so updated in place) and keeps the non-finite guard's record (:mod:`puffjax.finite`).
It runs under ``shard_map`` over the mesh (:mod:`puffjax.parallel`): each device steps the policy
for its own block of agents and writes its own rows, so nothing crosses devices.

The agents of a process are split into groups that take turns: while the environments of one
group step in C (GIL released, on all env threads), the policy already runs, asynchronously, on
the next group's observations. The only host waits are for a group's actions, which its
environments need. Each agent samples with its own key (:meth:`puffjax.models.Policy.act`), so
the groups change the timing, not the result: the rollout is the same for any number of groups.

Layout of a process's N environments with G groups on D local devices (n = N / D agents per
device): environment e is in group g = e // (N / G); within the group, devices take consecutive
blocks of n / G environments. On its device, agent i of group g is row j * n + g * n / G + i of
the j-th horizon.
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from . import finite, normalize, parallel
from .buffer import Batch, write_step


def groups_for(env, agents_per_device: int, requested: int | str = "auto") -> int:
    """How many groups the rollout splits a process's agents into (``train.rollout_groups``).

    ``"auto"``: two, so one group's environments step while the policy runs on the other, when
    two groups are possible, else one. A count G is possible when each device's agents and the
    environments (an environment's agents step together) split evenly into G, and, for G > 1,
    the environment can step part of its environments (``step_range``); an impossible count is
    a ValueError saying why."""
    if requested == "auto":
        return 2 if _split_error(env, agents_per_device, 2) is None else 1
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"train.rollout_groups must be 'auto' or a positive integer, got {requested!r}")
    problem = _split_error(env, agents_per_device, requested)
    if problem:
        raise ValueError(f"train.rollout_groups = {requested}: {problem}; use 'auto' or 1")
    return requested


def _split_error(env, agents_per_device: int, groups: int) -> str | None:
    """Why the rollout cannot step ``groups`` groups, or None if it can."""
    if groups == 1:
        return None
    if agents_per_device % groups:
        return f"{agents_per_device} agents per device do not split into {groups} groups"
    if env.num_envs % groups:
        return f"{env.num_envs} environments do not split into {groups} groups"
    if not hasattr(env, "step_range"):
        return f"this vector env ({type(env).__name__}) can only step all its environments at once"
    return None


class Slot(NamedTuple):
    """Where one group's step goes: the first buffer row of the group's block on each device,
    the column (time step), the global id of the group's first agent, and the rollout step."""
    row0: int
    t: int
    id0: int
    step: int


def policy_step(policy, gamma, params, carry, key, obs, rew, term, trunc, mask, prev_value, segment_start,
                agent_ids, reward_clip=1.0):
    """One rollout step of N agents: the policy acts on ``obs`` and the step's buffer column is
    made. Returns ``(step, carry, next_key, env_action)``: ``step`` a :class:`Batch` of ``[N]``
    columns (what :func:`puffjax.buffer.write_step` writes), ``env_action`` what the environment
    takes.

    ``rew``, ``term``, ``trunc``: what arrived with ``obs`` (the outcome of the previous action);
    ``mask``: 0 for an agent not playing this step; ``prev_value``: each agent's value of its
    previous observation; ``segment_start``: whether this is column 0 of a buffer segment;
    ``agent_ids``: the agents' global ids (their sampling keys, :meth:`puffjax.models.Policy.act`).
    ``gamma`` may be traced; rewards are clipped to ``±reward_clip`` (``train.reward_clip``)."""
    done = term | trunc
    # Zero the recurrent state where an episode began and at every segment start,
    # exactly as training replays each segment from a zero carry.
    out, action, carry, next_key = policy.act(params, obs, carry, done | segment_start, key, agent_ids=agent_ids)
    logp = policy.dist.log_prob(out.action_params, action)
    # A truncated episode still had a future: bootstrap it with the value of the last
    # state seen (its final observation was replaced by the auto-reset).
    reward = jnp.clip(rew, -reward_clip, reward_clip) + jnp.where(trunc & ~term, gamma * prev_value, 0.0)
    step = Batch(obs, action, logp, out.value, reward, done.astype(jnp.float32), mask.astype(jnp.float32))
    return step, carry, next_key, policy.dist.to_env_action(action)


class Act(NamedTuple):
    """The rollout's policy step (:func:`make_act`): ``step``, the jitted call, and ``feed``,
    which makes a group's host rows (observations, :func:`pack_flags`) into its arguments
    (:func:`puffjax.parallel.row_feed`)."""
    step: Callable
    feed: Callable


FLAGS = ("rewards", "terminals", "truncations", "masks")  # the columns of a group's flags


def pack_flags(env, rows: slice, out: np.ndarray) -> np.ndarray:
    """``out`` ([N, 4] float32) with the env's rewards, terminals, truncations and masks of
    ``rows`` in its columns (:data:`FLAGS`): the four arrive on device in one transfer. A
    float32 reward is copied bit for bit, a flag as 0 or 1."""
    for column, name in enumerate(FLAGS):
        out[:, column] = getattr(env, name)[rows]
    return out


def unpack_flags(flags):
    """``(rewards, terminals, truncations, masks)`` from :func:`pack_flags`'s columns: float32
    rewards, boolean flags (jittable)."""
    return flags[:, 0], flags[:, 1] != 0, flags[:, 2] != 0, flags[:, 3] != 0


def make_act(policy, gamma: float, mesh, check_finite: bool = True, reward_clip: float = 1.0,
             normalize_obs: bool = False, normalize_reward: bool = False, obs_clip: float = 10.0) -> Act:
    """The policy step of one group of agents, :class:`Act`: ``step(params, buf, carry, key, obs,
    flags, prev_value, ret, seen, acc, stats, slot) -> (buf, carry, next_key, env_action, value,
    ret, seen, acc)``, jitted; ``buf`` is donated (updated in place).

    ``slot``: a :class:`Slot` as an int32 array (where the group's agents go). Arrays of agents
    are sharded over ``mesh`` (each device: its block of the group's agents), buffer rows as
    :mod:`puffjax.buffer` lays them out; agents' global ids give their sampling keys;
    ``flags`` are the rewards, terminals, truncations and masks (:func:`pack_flags`; a mask is
    0 for an agent that is not playing this step); ``seen`` stacks one non-finite record
    (:func:`puffjax.finite.record`) per device, passed through unchanged when ``check_finite``
    is false (``train.check_finite``).

    Normalisation (:mod:`puffjax.normalize`): ``stats`` (replicated) are the running statistics
    the rollout uses, ``acc`` stacks one :class:`puffjax.normalize.Stats` per device that
    accumulates this rollout's moments, ``ret`` is each agent's running discounted return.
    With ``normalize_obs`` the policy sees (and the buffer holds) standardised observations,
    clipped to ``±obs_clip``; with ``normalize_reward`` rewards are divided by the discounted
    return's standard deviation. Rewards are then clipped to ``±reward_clip``."""
    rows = P(parallel.AXIS)
    local_devices = parallel.local_devices(mesh)

    def act(params, buf, carry, key, obs, flags, prev_value, ret, seen, acc, stats, slot):
        n = obs.shape[0]  # this group's agents on this device
        rew, term, trunc, mask = unpack_flags(flags)
        slot = Slot(*slot)
        first = slot.id0 + (jax.lax.axis_index(parallel.AXIS) % local_devices) * n
        record = finite.record(seen[0], slot.step, obs, rew, first)[None] if check_finite else seen
        if normalize_obs or normalize_reward:
            obs, rew, ret, local = normalize.rollout_step(stats, jax.tree.map(lambda a: a[0], acc), ret, obs, rew,
                                                          term | trunc, mask, gamma, normalize_obs,
                                                          normalize_reward, obs_clip)
            acc = jax.tree.map(lambda a: a[None], local)
        step, carry, next_key, env_action = policy_step(policy, gamma, params, carry, key, obs, rew, term, trunc,
                                                        mask, prev_value, slot.t == 0, first + jnp.arange(n),
                                                        reward_clip)
        buf = write_step(buf, step, slot.row0, slot.t)
        return buf, carry, next_key, env_action, step.values, ret, record, acc

    sharded = jax.shard_map(act, mesh=mesh, check_vma=False,
                            in_specs=(P(), rows, rows, P(), rows, rows, rows, rows, rows, rows, P(), P()),
                            out_specs=(rows, rows, P(), rows, rows, rows, rows, rows))
    return Act(jax.jit(sharded, donate_argnums=(1,)), parallel.row_feed(mesh))


class Timer:
    """Accumulates wall time per phase."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def pop(self) -> dict[str, float]:
        out, self.totals = self.totals, {}
        return out


def collect(env, act, params, buf, carries, key, prev_values, returns, stats, acc, geom, timer: Timer,
            epoch: int, mesh):
    """Play one epoch (:func:`play`) and check its non-finite record over every process.
    Returns ``(buf, key, prev_values, returns, acc)``. Raises :class:`puffjax.finite.NonFiniteError` naming
    the input, environment row and step when the environment returned NaN or inf and ``act``
    records it (:func:`make_act` with ``check_finite``; ``epoch``: 1-based, for the message)."""
    buf, key, prev_values, returns, acc, record = play(env, act, params, buf, carries, key, prev_values, returns,
                                                       stats, acc, geom, timer, epoch, mesh)
    multi = jax.process_count() > 1
    finite.check_record(parallel.gather(record) if multi else record, epoch, env.num_agents if multi else None)
    return buf, key, prev_values, returns, acc


def play(env, act, params, buf, carries, key, prev_values, returns, stats, acc, geom, timer: Timer, epoch: int,
         mesh):
    """Play one epoch: ``geom.rows_per_agent`` horizons of every agent, into ``buf``.

    ``carries``, ``prev_values`` and ``returns`` (the agents' running discounted returns) hold
    one entry per group (see the module's docstring); ``stats`` and ``acc``: the normalisation
    statistics and the per-device accumulator that :func:`make_act` takes.
    Returns ``(buf, key, prev_values, returns, acc, record)``: ``record`` stacks this process's devices'
    non-finite records (:func:`puffjax.finite.record`, agent indices global), for the caller to
    check with :func:`puffjax.finite.check_record` (alone or gathered with the other
    processes'). When the environment fails to step, this process's record is checked first, so
    a NaN action from a NaN observation is reported as the observation
    (:class:`puffjax.finite.NonFiniteError`; ``epoch``: 1-based, for the message)."""
    clock = time.perf_counter
    groups, A, H = len(carries), env.num_agents, geom.horizon
    size, envs_per_group = A // groups, env.num_envs // groups  # agent rows and environments per group
    n = A // parallel.local_devices(mesh)  # agents per device
    process_first = jax.process_index() * A
    carries, prev_values, returns = list(carries), list(prev_values), list(returns)
    seen = parallel.from_local(mesh, np.tile(finite.clean_record(), (parallel.local_devices(mesh), 1, 1)))
    multi = jax.process_count() > 1
    steps = geom.rows_per_agent * H
    actions = [None] * groups
    # Group g's flags, rewritten for each of its steps once the step before has been played
    # (its actions waited for), so no call still reads them (parallel.row_feed).
    packed = [np.empty((size, len(FLAGS)), np.float32) for _ in range(groups)]

    def dispatch(g, s, step_key):
        """Start the policy on group g's observations for rollout step s (returns at once)."""
        nonlocal buf, seen, acc
        t0 = clock()
        rows = slice(g * size, (g + 1) * size)
        obs, flags = act.feed(env.observations[rows]), act.feed(pack_flags(env, rows, packed[g]))
        timer.add("copy", clock() - t0)
        j, t = divmod(s, H)
        slot = np.array(Slot(j * n + g * (n // groups), t, process_first + g * size, s), np.int32)
        buf, carries[g], next_key, actions[g], prev_values[g], returns[g], seen, acc = act.step(
            params, buf, carries[g], step_key, obs, flags, prev_values[g], returns[g], seen, acc, stats, slot)
        return next_key

    # Step s draws with key k_s for every group; its acts return k_{s+1}.
    for g in range(groups):
        next_key = dispatch(g, 0, key)
    for s in range(steps):
        step_key = next_key  # k_{s+1}, for the dispatches of step s + 1
        for g in range(groups):
            t0 = clock()
            action = parallel.to_local(actions[g])  # waits for group g's policy
            t1 = clock()
            try:
                if groups == 1:
                    env.step(action)
                else:  # meanwhile the policy runs on the next group
                    env.step_range(g * envs_per_group, (g + 1) * envs_per_group, action)
            except Exception:  # e.g. NaN actions computed from NaN observations
                finite.check_record(parallel.to_local(seen), epoch, A if multi else None)
                raise
            timer.add("rollout", t1 - t0)
            timer.add("env", clock() - t1)
            if s + 1 < steps:
                next_key = dispatch(g, s + 1, step_key)
    return buf, next_key, prev_values, returns, acc, parallel.to_local(seen)
