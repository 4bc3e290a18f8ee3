"""One training epoch of minibatch updates (the update of PufferLib 3.0's PuffeRL.train).

Per minibatch (the body of a ``lax.scan``): recompute the puff advantage over the whole buffer
from the current values and ratios, draw prioritized rows, forward them, take the clipped
PPO step, and write the new ratios and values back into the buffer so that later minibatches
see the V-trace correction (with ``train.recompute_advantage`` false, every minibatch uses the
rollout's values instead: GAE once per epoch). The epoch also reports whether any loss, gradient or the new
parameters were non-finite (:mod:`puffjax.finite`), unless ``train.check_finite`` is false.

Data parallel over the mesh (:mod:`puffjax.parallel`), under ``shard_map``: each device holds
its block of buffer rows and runs the custom calls (advantage, LSTM) on those rows only.
Prioritized replay samples per shard: device d draws its share of the minibatch,
``minibatch_segments / devices`` rows, from its own S_d rows in proportion to its own
priorities, p_i = (w_i + 1e-6) / (sum_{j in d} w_j + 1e-6), with importance weight
(S_d * p_i)^(-beta); on one device that is exactly PufferLib's global formula. Advantage
normalisation, the loss statistics and the gradients are averaged over the devices (equal
shares), so a step on N devices is the step one device takes on the same rows; parameters and
optimizer state stay replicated. The devices meet once per minibatch: its gradients, its loss
statistics and the next minibatch's normalisation moments (drawn as soon as this minibatch's
ratios and values are written back) travel as one flat float32 vector in one all-reduce, plus
one all-reduce per epoch for the first minibatch's moments.

The epoch is one pure function, :func:`make_update`'s ``update(hyper, tx, state, batch, key,
epoch)``, with its hyperparameters passed explicitly as a :class:`Hyper` so they may be traced
(vmapped over, as :func:`puffjax.make_train` does); :func:`make_train_epoch` is that same
epoch under ``shard_map`` with a config's values: one jitted function, or for CNN policies on
CPU its one jitted minibatch step called per minibatch from Python (:func:`minibatch_driver`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax.flatten_util import ravel_pytree
from jax.sharding import PartitionSpec as P

from . import finite, losses, parallel, prioritized, value_head
from .advantage import puff_advantage, puff_advantage_reference


class Hyper(NamedTuple):
    """The hyperparameters the update (and the rollout's truncation bootstrap) read as values:
    each a Python float (a compile-time constant) or a float32 scalar array, which may be traced,
    so ``jax.vmap`` can run several values in one call. Everything that sets a shape or a
    program's structure (batch and minibatch sizes, horizon, update epochs, the policy, the
    optimizer kind, ``anneal_lr``, ``max_grad_norm``, the Adam/Muon betas) stays in the config.

    ``gamma``, ``gae_lambda``, ``vtrace_rho_clip`` and ``vtrace_c_clip`` are attributes of the
    puff advantage custom call: given as Python floats the update runs
    :func:`puffjax.puff_advantage`; traced, it runs :func:`puffjax.puff_advantage_reference`
    (the same computation as a ``lax.scan``). ``learning_rate`` reaches the update through the
    optimizer built from it (:func:`puffjax.make_optimizer`'s ``learning_rate``)."""
    learning_rate: Any
    gamma: Any
    gae_lambda: Any
    clip_coef: Any
    vf_clip_coef: Any
    vf_coef: Any
    ent_coef: Any
    prio_alpha: Any
    prio_beta0: Any
    vtrace_rho_clip: Any
    vtrace_c_clip: Any

    @classmethod
    def from_config(cls, train_cfg) -> "Hyper":
        """The values of a :class:`puffjax.config.TrainConfig`, as Python floats."""
        return cls(*(float(getattr(train_cfg, name)) for name in cls._fields))


class TrainState(NamedTuple):
    params: Any
    opt_state: Any


class Drawn(NamedTuple):
    """A minibatch's drawn rows on one device: their indices, importance weights and advantages,
    and the moments its normalisation and loss weights need (see :func:`make_update`). With
    ``train.minibatch_steps`` each row is one step: ``idx`` is its (rows, columns), each ``[n, 1]``."""
    idx: Any
    weights: jax.Array
    advantages: jax.Array
    moments: jax.Array


LOSS_KEYS = ("policy_loss", "value_loss", "entropy", "old_approx_kl", "approx_kl", "clipfrac",
             "importance", "ratio", "explained_variance")
_REPORTED_TERMS = ("loss", "policy_loss", "value_loss", "entropy")  # named when a loss goes non-finite


def make_loss_fn(policy):
    """loss(params, minibatch, hyper) -> (loss, aux); the minibatch already holds normalised,
    importance-weighted advantages and the return targets; ``hyper``: a :class:`Hyper`."""
    dist = policy.dist
    categorical_value = policy.support is not None

    def loss_fn(params, mb, hyper):
        clip, vf_clip = hyper.clip_coef, hyper.vf_clip_coef
        live = mb["live"]  # per-step weights: 0 for masked agents, mean 1 over the minibatch
        out = policy.unroll(params, mb["obs"], mb["episode_starts"] > 0)
        newlogp = dist.log_prob(out.action_params, mb["actions"])
        entropy = (dist.entropy(out.action_params) * live).mean()
        logratio = newlogp - mb["logprobs"]
        ratio = jnp.exp(logratio)
        pg_loss = losses.clipped_policy_loss(mb["advantages"], ratio, clip, live)
        if categorical_value:
            v_loss = (value_head.value_loss(out.value_logits, mb["returns"], policy.support, policy.value_head)
                      * live).mean()
        else:
            v_loss = losses.clipped_value_loss(out.value, mb["values"], mb["returns"], vf_clip, live)
        loss = pg_loss + hyper.vf_coef * v_loss - hyper.ent_coef * entropy
        old_kl, kl, clipfrac = losses.kl_stats(logratio, ratio, clip, live)
        aux = dict(loss=loss, policy_loss=pg_loss, value_loss=v_loss, entropy=entropy, old_approx_kl=old_kl,
                   approx_kl=kl, clipfrac=clipfrac, ratio=ratio.mean(),
                   new_ratio=jax.lax.stop_gradient(ratio), new_values=jax.lax.stop_gradient(out.value))
        return loss, aux

    return loss_fn


def _conv_on_cpu(policy, mesh) -> bool:
    """Whether ``policy`` has a convolutional encoder and ``mesh`` is of the CPU backend, where XLA
    runs a convolution's gradient inside a loop body many times slower than the same gradient
    outside one (see benchmarks/cnn_cpu.py)."""
    return mesh.devices.flat[0].platform == "cpu" and policy.kind.startswith("cnn")


def minibatch_unroll(policy, mesh):
    """The ``unroll`` of the update's loops over minibatches and gradient chunks: ``True`` (every
    iteration inlined) for a policy with a convolutional encoder on the CPU backend; ``1`` (a
    loop) otherwise."""
    return True if _conv_on_cpu(policy, mesh) else 1


MINIBATCH_DRIVERS = ("loop", "unroll", "host")


def minibatch_driver(policy, mesh) -> str:
    """How :func:`make_train_epoch` runs an epoch's minibatches by default: ``"host"`` (one jitted
    minibatch step, compiled once and called per minibatch from Python) for a policy with a
    convolutional encoder on the CPU backend, where it runs as fast as the unrolled epoch and
    compiles in a fraction of its time (docs/results.md, "The Nature CNN on CPU"); ``"loop"``
    (the whole epoch one jitted ``lax.scan``) otherwise."""
    return "host" if _conv_on_cpu(policy, mesh) else "loop"


def _advantage(values, rewards, episode_starts, ratio, hyper):
    """The puff advantage with ``hyper``'s gamma, lambda and V-trace clips: the custom call when
    they are Python floats, its ``lax.scan`` reference when any is traced (see :class:`Hyper`)."""
    kw = dict(gamma=hyper.gamma, gae_lambda=hyper.gae_lambda, rho_clip=hyper.vtrace_rho_clip,
              c_clip=hyper.vtrace_c_clip)
    traced = any(isinstance(v, jax.core.Tracer) for v in kw.values())
    return (puff_advantage_reference if traced else puff_advantage)(values, rewards, episode_starts, ratio, **kw)


class EpochParts(NamedTuple):
    """The pieces of :func:`make_update`'s epoch, pure and not jitted, each run on one device's
    rows inside ``shard_map`` (see :func:`make_update` for the arguments):

    ``start(hyper, state, batch, key, epoch) -> (carry, xs, beta)``: the first carry of
    ``minibatch``, the per-minibatch inputs ``xs`` (stacked on their first axis, one per
    minibatch) and prioritized replay's beta of this epoch;
    ``minibatch(carry, x, batch, hyper, tx, beta) -> (carry, metrics)``: one minibatch's step
    (``x``: one minibatch's slice of ``xs``), the body of the epoch's loop; ``carry[0]`` is the
    :class:`TrainState`;
    ``finish(state, metrics) -> (metrics, health)``: the epoch's results from the minibatches'
    ``metrics`` stacked on their first axis."""
    start: Any
    minibatch: Any
    finish: Any


def make_epoch_parts(policy, geom, check_finite: bool = True, unroll: int | bool = 1,
                     recompute_advantage: bool = True, shuffle: bool = False) -> EpochParts:
    """The :class:`EpochParts` of one epoch of minibatch updates (:func:`make_update`);
    ``unroll``: of the loop over gradient chunks (``train.max_minibatch_size``).

    ``recompute_advantage`` (``train.recompute_advantage``): True, every minibatch is drawn by
    the advantages of the current values and V-trace-clipped ratios, which earlier minibatches
    wrote back, and its value targets and clipping start from those values (PufferLib's way);
    False, every minibatch uses the rollout's values with ratio 1, i.e. GAE computed once per
    epoch, as CleanRL and PureJaxRL do.

    ``shuffle`` (``train.shuffle``): each pass over the batch takes every row (every step with
    ``train.minibatch_steps``) of the device exactly once, in a fresh random order split into the
    pass's minibatches, with importance weights 1 (PPO's usual sampling, as CleanRL and
    PureJaxRL draw); False, each minibatch draws its rows on its own, by priority."""
    if geom.minibatch_steps and policy.is_recurrent:
        raise ValueError("train.minibatch_steps draws single steps, which a recurrent policy cannot unroll: "
                         "set train.minibatch_steps = false or use a feedforward policy")
    grad_fn = jax.value_and_grad(make_loss_fn(policy), has_aux=True)
    mb_rows, accum = geom.minibatch_segments // geom.devices, geom.accumulation_steps  # per device
    mb_steps = geom.minibatch_steps // geom.devices  # per device, when steps are drawn one by one
    mean = lambda x: jax.lax.pmean(x, parallel.AXIS)  # over the devices' equal shares

    def gradients(params, mb, hyper):
        if accum == 1:
            (_, aux), grads = grad_fn(params, mb, hyper)
            return grads, aux
        # Gradient accumulation: chunks of max_minibatch_size, their gradients averaged.
        chunks = jax.tree.map(lambda x: x.reshape(accum, x.shape[0] // accum, *x.shape[1:]), mb)

        def body(acc, chunk):
            (_, aux), grads = grad_fn(params, chunk, hyper)
            return jax.tree.map(jnp.add, acc, grads), aux

        zeros = jax.tree.map(jnp.zeros_like, params)
        grads, aux = jax.lax.scan(body, zeros, chunks, unroll=unroll)
        aux = {k: (v.reshape(-1, *v.shape[2:]) if k.startswith("new_") else v.mean()) for k, v in aux.items()}
        return jax.tree.map(lambda g: g / accum, grads), aux

    def advantages_of(batch, hyper, values, ratio):
        # Masked agents' steps (batch.masks 0) have no advantage, so no priority either.
        return _advantage(values, batch.rewards, batch.episode_starts, ratio, hyper) * batch.masks

    def draw(batch, hyper, beta, key, adv, chosen=None):
        """A minibatch's rows (whole segments, or single steps with ``geom.minibatch_steps``),
        drawn by priority from the advantages ``adv`` of the device's rows (or the flat indices
        ``chosen``, with weights 1), and this device's moments that must be averaged before its
        gradient: the mean mask, and the masked advantages' mean and mean square."""
        if chosen is not None:
            idx = jnp.divmod(chosen[:, None], adv.shape[1]) if mb_steps else chosen
            weights = jnp.ones(chosen.shape, jnp.float32)
        elif mb_steps:  # each step a row of its own; idx: (rows, columns) [n, 1], so x[idx] is [n, 1, ...]
            flat, weights = prioritized.draw(parallel.device_key(key), adv.reshape(-1, 1), mb_steps,
                                             hyper.prio_alpha, beta)
            idx = jnp.divmod(flat[:, None], adv.shape[1])
        else:
            idx, weights = prioritized.draw(parallel.device_key(key), adv, mb_rows, hyper.prio_alpha, beta)
        masks = batch.masks[idx]
        moments = jnp.concatenate([masks.mean()[None], losses.normalize_moments(adv[idx], weights=masks)])
        return Drawn(idx, weights, adv[idx], moments)

    def minibatch(carry, xs, batch, hyper, tx, beta):
        # drawn.moments: already averaged over the devices; fixed: the epoch's advantages when
        # they are not recomputed (GAE of the rollout's values, computed once by start), else ()
        state, values, ratio, drawn, fixed = carry
        k, next_key = xs[:2]
        next_chosen = xs[2] if shuffle else None
        mask_mean = jnp.maximum(drawn.moments[0], 1e-8)
        idx, mb_adv = drawn.idx, drawn.advantages
        mb_values = values[idx]  # the rollout's values unless recomputed ones were written back
        returns = mb_adv + mb_values
        # Loss weights: the masks scaled to mean 1 over the whole minibatch (all 1 when no agent is
        # masked), so every mean below is a mean over live steps.
        live = batch.masks[idx] / mask_mean
        advantages = losses.normalize_with(mb_adv, drawn.moments[1:] / mask_mean) * drawn.weights[:, None]
        mb = dict(obs=batch.obs[idx], actions=batch.actions[idx], logprobs=batch.logprobs[idx],
                  episode_starts=batch.episode_starts[idx], values=mb_values, returns=returns,
                  advantages=advantages, live=live)
        grads, aux = gradients(state.params, mb, hyper)  # this device's rows
        new_ratio, new_values = aux.pop("new_ratio"), aux.pop("new_values")
        if recompute_advantage:
            ratio, values = ratio.at[idx].set(new_ratio), values.at[idx].set(new_values)
        # The next minibatch depends on this one only through the ratios and values just written
        # back, so it is drawn now and its moments cross with this minibatch's gradients.
        upcoming = jax.lax.cond(k + 1 < geom.minibatches_per_epoch,
                                lambda: draw(batch, hyper, beta, next_key, advantages_of(batch, hyper, values, ratio)
                                             if recompute_advantage else fixed, next_chosen),
                                lambda: jax.tree.map(jnp.zeros_like, drawn))
        local = dict(grads=grads, aux=aux, importance=drawn.weights.mean(), next=upcoming.moments,
                     explained_variance=losses.explained_variance_moments(mb_values, returns, weights=live))
        flat, unravel = ravel_pytree(local)
        shared = unravel(mean(flat))  # the minibatch's one all-reduce
        grads = shared["grads"]  # the gradient of the whole minibatch's mean loss
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(shared["aux"], importance=shared["importance"],
                       explained_variance=losses.explained_variance_with(shared["explained_variance"]))
        if check_finite:
            metrics["finite"] = jnp.isfinite(metrics["loss"]) & finite.all_finite(grads)
        return (TrainState(params, opt_state), values, ratio, upcoming._replace(moments=shared["next"]),
                fixed), metrics

    def _pass_orders(key, adv):
        """[minibatches_per_epoch, n]: each pass's minibatches of flat indices into the device's
        rows (or steps), every one once per pass, in a fresh order per pass."""
        size = adv.size if mb_steps else adv.shape[0]
        n_mb = mb_steps or mb_rows
        per_pass = size // n_mb
        passes = geom.minibatches_per_epoch // per_pass
        keys = jax.random.split(jax.random.fold_in(key, 1), passes)  # the same order on every device
        orders = jax.vmap(lambda k: jax.random.permutation(k, size))(keys)[:, :per_pass * n_mb]
        return orders.reshape(passes * per_pass, n_mb)

    def start(hyper, state, batch, key, epoch):
        """The epoch's first carry of ``minibatch`` (the first minibatch drawn, its moments
        averaged: the epoch's one all-reduce outside the minibatches) and its ``xs``: the
        minibatch indices and the keys each minibatch draws its successor with."""
        beta = prioritized.beta_schedule(hyper.prio_beta0, hyper.prio_alpha, epoch, geom.total_epochs)
        ratio = jnp.ones_like(batch.values)
        n = geom.minibatches_per_epoch
        keys = jax.random.split(key, n)
        adv = advantages_of(batch, hyper, batch.values, ratio)
        order = _pass_orders(key, adv) if shuffle else None
        first = draw(batch, hyper, beta, keys[0], adv, None if order is None else order[0])
        first = first._replace(moments=mean(first.moments))
        xs = (jnp.arange(n), jnp.roll(keys, -1, axis=0))  # minibatch k draws minibatch k + 1 with keys[k + 1]
        if shuffle:
            xs = (*xs, jnp.roll(order, -1, axis=0))
        return (state, batch.values, ratio, first, () if recompute_advantage else adv), xs, beta

    def finish(state, metrics):
        """The epoch's ``(metrics, health)`` from its per-minibatch ``metrics`` (stacked)."""
        health = {}
        if check_finite:
            ok = metrics.pop("finite")
            bad = jnp.where(ok.all(), -1, jnp.argmin(ok))
            health = dict(bad_minibatch=bad, bad_terms={k: metrics[k][jnp.maximum(bad, 0)] for k in _REPORTED_TERMS},
                          params_finite=finite.all_finite(state.params))
        return {k: jnp.nanmean(metrics[k]) for k in LOSS_KEYS}, health

    return EpochParts(start, minibatch, finish)


def make_update(policy, geom, check_finite: bool = True, unroll: int | bool = 1, recompute_advantage: bool = True,
                shuffle: bool = False):
    """Returns ``update(hyper, tx, state, batch, key, epoch) -> (state, metrics, health)``: one
    epoch of minibatch updates, pure and not jitted. It runs on one device's rows of the batch
    inside ``shard_map`` over :data:`puffjax.parallel.AXIS` (a mesh of one device included), with
    everything but ``batch`` replicated.

    ``hyper``: a :class:`Hyper`; ``tx``: the optax optimizer (built from ``hyper.learning_rate``,
    e.g. by :func:`puffjax.make_optimizer`); ``state``: a :class:`TrainState`; ``batch``: the
    rollout's :class:`puffjax.buffer.Batch`; ``key``: this epoch's key; ``epoch``: the 0-based
    epoch index (prioritized replay's beta anneals over ``geom.total_epochs``).

    ``metrics``: the epoch means of :data:`LOSS_KEYS`. ``health``: ``bad_minibatch`` (the first
    minibatch whose loss or gradients were non-finite, -1 if none), that minibatch's loss terms
    and ``params_finite``, for :func:`puffjax.finite.check_update`; ``{}`` when ``check_finite``
    is false (nothing checked). ``unroll``: of the loops over minibatches and gradient chunks
    (:func:`minibatch_unroll`); it changes the speed, not the result. The epoch is
    :func:`make_epoch_parts`'s pieces with its minibatches in one ``lax.scan``; ``recompute_advantage``:
    see there."""
    parts = make_epoch_parts(policy, geom, check_finite, unroll, recompute_advantage, shuffle)

    def update(hyper, tx, state, batch, key, epoch):
        carry, xs, beta = parts.start(hyper, state, batch, key, epoch)
        step = lambda c, x: parts.minibatch(c, x, batch, hyper, tx, beta)
        (state, *_), metrics = jax.lax.scan(step, carry, xs, unroll=unroll)
        return (state, *parts.finish(state, metrics))

    return update


def make_train_epoch(policy, tx, geom, train_cfg, mesh, driver: str | None = None):
    """Returns ``train_epoch(state, batch, key, epoch) -> (state, metrics, health)``: :func:`make_update`'s
    epoch with ``train_cfg``'s hyperparameters (:meth:`Hyper.from_config`) and the optimizer
    ``tx``, under ``shard_map`` over ``mesh``, with ``batch`` sharded by rows and everything else
    replicated.

    ``driver`` (default :func:`minibatch_driver`): how the minibatches run, all with the same
    results. ``"loop"``: the whole epoch one jitted function, its minibatches a ``lax.scan``;
    ``"unroll"``: the same with the scan unrolled (every minibatch inlined: compile time grows
    with their number); ``"host"``: :func:`make_epoch_parts`'s ``start``, ``minibatch`` and
    ``finish`` jitted each once, ``minibatch`` called once per minibatch from a Python loop
    (asynchronously dispatched, as the one call of the others is)."""
    driver = driver or minibatch_driver(policy, mesh)
    if driver not in MINIBATCH_DRIVERS:
        raise ValueError(f"minibatch driver {driver!r}: use one of {', '.join(MINIBATCH_DRIVERS)}")
    hyper = Hyper.from_config(train_cfg)
    rows = P(parallel.AXIS)
    shard = lambda fn, in_specs, out_specs: jax.jit(jax.shard_map(fn, mesh=mesh, check_vma=False, in_specs=in_specs,
                                                                  out_specs=out_specs))
    if driver != "host":
        update = make_update(policy, geom, train_cfg.check_finite, True if driver == "unroll" else 1,
                             train_cfg.recompute_advantage, train_cfg.shuffle)
        return shard(lambda state, batch, key, epoch: update(hyper, tx, state, batch, key, epoch),
                     (P(), rows, P(), P()), (P(), P(), P()))

    parts = make_epoch_parts(policy, geom, train_cfg.check_finite, minibatch_unroll(policy, mesh),
                             train_cfg.recompute_advantage, train_cfg.shuffle)
    carry_specs = (P(), rows, rows, rows, rows)  # the state; this device's values, ratios, drawn rows, fixed advantages
    start = shard(lambda state, batch, key, epoch: parts.start(hyper, state, batch, key, epoch),
                  (P(), rows, P(), P()), (carry_specs, P(), P()))
    step = shard(lambda carry, xs, k, batch, beta: parts.minibatch(carry, jax.tree.map(lambda x: x[k], xs), batch,
                                                                   hyper, tx, beta),
                 (carry_specs, P(), P(), rows, P()), (carry_specs, P()))
    finish = shard(lambda state, metrics: parts.finish(state, jax.tree.map(lambda *m: jnp.stack(m), *metrics)),
                   (P(), P()), (P(), P()))

    def train_epoch(state, batch, key, epoch):
        carry, xs, beta = start(state, batch, key, epoch)
        metrics = []
        for k in range(geom.minibatches_per_epoch):
            carry, m = step(carry, xs, k, batch, beta)
            metrics.append(m)
        return (carry[0], *finish(carry[0], metrics))

    return train_epoch
