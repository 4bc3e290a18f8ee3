"""Running observation and return statistics: the trainer's observation and reward normalisation.

Statistics are :class:`Moments` (count, mean, sum of squared deviations ``m2``): pure, jittable
functions build them from a batch (:func:`of_batch`), merge two of them (:func:`merge`, Chan et
al.'s parallel formula, exact in exact arithmetic whatever the split) and combine every device's
over a mesh axis (:func:`combine`, the same formula through ``psum``), so N devices or processes
give the statistics one device gets from the same data.

The trainer keeps one :class:`Stats` (replicated): the observations' moments
(``train.normalize_obs``: an observation becomes ``clip((obs - mean) / sqrt(var + eps), ±obs_clip)``)
and the moments of each agent's discounted return (``train.normalize_reward``: a reward is divided
by the return's standard deviation, as gymnasium's ``NormalizeReward`` does, then clipped to
``±reward_clip``). A rollout uses the statistics of the epochs before it, frozen, and accumulates
its own live steps' moments (:func:`observe`), merged in after the rollout (:func:`update`).
The first epoch has no statistics and uses mean 0 and variance 1.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from . import parallel
from .envs.spaces import observation_layout

EPS = 1e-8  # added to the variance before its square root


class Moments(NamedTuple):
    """Moments of a set of samples of shape ``mean.shape``: how many (float32), their mean and
    the sum of their squared deviations from it."""
    count: jax.Array
    mean: jax.Array
    m2: jax.Array


class Stats(NamedTuple):
    """The trainer's running statistics: of the observations and of the discounted returns."""
    obs: Moments
    ret: Moments


def empty(shape=()) -> Moments:
    """No samples yet."""
    return Moments(jnp.zeros((), jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))


def empty_stats(obs_shape) -> Stats:
    return Stats(empty(obs_shape), empty())


def of_batch(x, weights) -> Moments:
    """The moments of the samples ``x[i]`` (axis 0) whose ``weights[i]`` is 1 (0 leaves one out)."""
    x = x.astype(jnp.float32)
    w = weights.astype(jnp.float32).reshape(-1, *(1,) * (x.ndim - 1))
    count = jnp.sum(weights.astype(jnp.float32))
    mean = jnp.sum(w * x, axis=0) / jnp.maximum(count, 1.0)
    m2 = jnp.sum(w * jnp.square(x - mean), axis=0)
    return Moments(count, mean, m2)


def merge(a: Moments, b: Moments) -> Moments:
    """The moments of both sets of samples (Chan et al.)."""
    count = a.count + b.count
    share = b.count / jnp.maximum(count, 1.0)  # 0 when both are empty
    delta = b.mean - a.mean
    return Moments(count, a.mean + delta * share, a.m2 + b.m2 + jnp.square(delta) * a.count * share)


def combine(m: Moments, axis_name) -> Moments:
    """The moments of every device's samples along mesh axis ``axis_name`` (inside ``shard_map``),
    replicated: one ``psum`` for the counts and means, one for the squared deviations."""
    count, weighted = jax.lax.psum((m.count, m.count * m.mean), axis_name)
    mean = weighted / jnp.maximum(count, 1.0)
    m2 = jax.lax.psum(m.m2 + m.count * jnp.square(m.mean - mean), axis_name)
    return Moments(count, mean, m2)


def variance(m: Moments):
    """The (population) variance; 1 while there are no samples."""
    return jnp.where(m.count > 0, m.m2 / jnp.maximum(m.count, 1.0), 1.0)


def standardize(obs, m: Moments, clip):
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` in float32."""
    z = (obs.astype(jnp.float32) - m.mean) * jax.lax.rsqrt(variance(m) + EPS)
    return jnp.clip(z, -clip, clip)


def scale_reward(reward, m: Moments):
    """``reward / sqrt(var + eps)``, ``m``: the discounted return's moments."""
    return reward * jax.lax.rsqrt(variance(m) + EPS)


def discounted_return(ret, reward, done, gamma):
    """One step of each agent's running discounted return: ``ret * gamma + reward``, then 0 where
    the episode ended (the next reward starts a new one). Returns (the return with this reward,
    the one to carry)."""
    ret = ret * gamma + reward
    return ret, jnp.where(done, 0.0, ret)


def observe(acc: Stats, obs, ret, live, with_obs: bool, with_ret: bool) -> Stats:
    """``acc`` with one step of this device's agents merged in (``live``: 1 for agents that count):
    their observations (when ``with_obs``) and discounted returns (when ``with_ret``)."""
    return Stats(merge(acc.obs, of_batch(obs, live)) if with_obs else acc.obs,
                 merge(acc.ret, of_batch(ret, live)) if with_ret else acc.ret)


def rollout_step(stats: Stats, acc: Stats, ret, obs, rew, done, live, gamma, with_obs: bool, with_ret: bool,
                 obs_clip):
    """One rollout step's normalisation of a device's agents: their running discounted returns
    advance (:func:`discounted_return`; ``done``: the episode ended with ``rew``), the step's raw
    observations and returns are accumulated into ``acc`` (:func:`observe`), then the observations
    are standardised with ``stats`` (when ``with_obs``, clipped to ``±obs_clip``) and the rewards
    scaled (when ``with_ret``). Returns ``(obs, rew, ret, acc)``: what the policy sees and the
    buffer holds, the return to carry and the accumulator."""
    ret_now, ret = discounted_return(ret, rew, done, gamma)
    acc = observe(acc, obs, ret_now, live, with_obs, with_ret)
    if with_obs:
        obs = standardize(obs, stats.obs, obs_clip)
    if with_ret:
        rew = scale_reward(rew, stats.ret)
    return obs, rew, ret, acc


def update(stats: Stats, acc: Stats, axis_name) -> Stats:
    """The running statistics with a rollout's accumulated moments (one per device, combined
    over ``axis_name``) merged in."""
    return jax.tree.map(lambda s, a: merge(s, combine(a, axis_name)), stats, acc,
                        is_leaf=lambda x: isinstance(x, Moments))


def observation_stats(saved: dict | None, train_cfg, path: str):
    """``(moments, clip)`` for :func:`standardize` from a checkpoint's statistics
    (:func:`to_host`), or None when its run did not normalise observations."""
    if not train_cfg.normalize_obs:
        return None
    if saved is None:
        raise ValueError(f"{path}: the run normalised observations but the checkpoint holds no statistics")
    obs = saved["obs"]
    return Moments(*(jnp.asarray(np.asarray(obs[k], np.float32)) for k in Moments._fields)), float(train_cfg.obs_clip)


def to_host(stats: Stats) -> dict:
    """The statistics as plain NumPy arrays, for a checkpoint."""
    return {name: {k: np.asarray(v) for k, v in m._asdict().items()} for name, m in stats._asdict().items()}


def from_host(saved: dict, like: Stats, path: str) -> Stats:
    """Statistics from a checkpoint's arrays (:func:`to_host`), checked against ``like``'s shapes
    (``path``: the checkpoint, for the error)."""
    parts = {}
    for name, m in like._asdict().items():
        fields = {}
        for k, v in m._asdict().items():
            a = np.asarray(saved[name][k], np.float32)
            if a.shape != v.shape:
                raise ValueError(f"{path}: saved {name} statistics have shape {a.shape}, this environment "
                                 f"needs {tuple(v.shape)}")
            fields[k] = a
        parts[name] = Moments(**fields)
    return Stats(**parts)


def initial_stats(observation_space, train_cfg) -> Stats:
    """The statistics a run of ``train_cfg`` starts from (no samples): per observation element
    with ``train.normalize_obs``, else a scalar placeholder. Observation normalisation of byte
    observations (images) is a ValueError."""
    layout = observation_layout(observation_space)
    if train_cfg.normalize_obs and layout.dtype != np.float32:
        raise ValueError(f"train.normalize_obs needs float observations; this environment's are {layout.dtype} "
                         f"(images are scaled by the policy instead): set train.normalize_obs = false")
    return empty_stats(layout.row_shape if train_cfg.normalize_obs else ())


def trainer_parts(observation_space, train_cfg, mesh):
    """What the trainer needs for ``train_cfg``'s normalisation on ``mesh``: the initial
    statistics (replicated), ``empty_acc()`` (a zeroed per-device accumulator, sharded) and
    ``update(stats, acc)`` (jitted; the statistics as they are when nothing is normalised).
    Observation normalisation of byte observations (images) is a ValueError (:func:`initial_stats`)."""
    t = train_cfg
    stats = initial_stats(observation_space, t)
    empty_acc = jax.jit(lambda: jax.tree.map(lambda a: jnp.broadcast_to(a, (mesh.size, *a.shape)), stats),
                        out_shardings=parallel.rows(mesh))
    if not (t.normalize_obs or t.normalize_reward):
        return parallel.replicate(mesh, stats), empty_acc, lambda stats, acc: stats
    step = lambda stats, acc: update(stats, jax.tree.map(lambda a: a[0], acc), parallel.AXIS)
    update_fn = jax.jit(jax.shard_map(step, mesh=mesh, check_vma=False, in_specs=(P(), P(parallel.AXIS)),
                                      out_specs=P()))
    return parallel.replicate(mesh, stats), empty_acc, update_fn
