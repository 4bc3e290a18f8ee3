"""One training epoch as a single jitted function (PufferLib 3.0's PuffeRL.train, minus its defects).

Per minibatch, all inside ``lax.scan``: recompute the puff advantage over the whole buffer
from the current values and ratios, draw prioritized rows, forward them, take the clipped
PPO step, and write the new ratios and values back into the buffer so that later minibatches
see the V-trace correction. Everything is array code over the row axis, so the batch can be
sharded over devices with ``jax.sharding`` without touching this file. The epoch also reports
whether any loss, gradient or the new parameters were non-finite (:mod:`puffjax.finite`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import finite, losses, prioritized, value_head
from .advantage import puff_advantage


class TrainState(NamedTuple):
    params: Any
    opt_state: Any


LOSS_KEYS = ("policy_loss", "value_loss", "entropy", "old_approx_kl", "approx_kl", "clipfrac",
             "importance", "ratio", "explained_variance")
_REPORTED_TERMS = ("loss", "policy_loss", "value_loss", "entropy")  # named when a loss goes non-finite


def make_loss_fn(policy, train_cfg):
    """loss(params, minibatch) -> (loss, aux); the minibatch already holds normalised,
    importance-weighted advantages and the return targets."""
    dist = policy.dist
    categorical_value = policy.support is not None
    clip, vf_clip = train_cfg.clip_coef, train_cfg.vf_clip_coef

    def loss_fn(params, mb):
        out = policy.unroll(params, mb["obs"], mb["episode_starts"] > 0)
        newlogp = dist.log_prob(out.action_params, mb["actions"])
        entropy = dist.entropy(out.action_params).mean()
        logratio = newlogp - mb["logprobs"]
        ratio = jnp.exp(logratio)
        pg_loss = losses.clipped_policy_loss(mb["advantages"], ratio, clip)
        if categorical_value:
            v_loss = value_head.value_loss(out.value_logits, mb["returns"], policy.support, policy.value_head).mean()
        else:
            v_loss = losses.clipped_value_loss(out.value, mb["values"], mb["returns"], vf_clip)
        loss = pg_loss + train_cfg.vf_coef * v_loss - train_cfg.ent_coef * entropy
        old_kl, kl, clipfrac = losses.kl_stats(logratio, ratio, clip)
        aux = dict(loss=loss, policy_loss=pg_loss, value_loss=v_loss, entropy=entropy, old_approx_kl=old_kl,
                   approx_kl=kl, clipfrac=clipfrac, ratio=ratio.mean(),
                   new_ratio=jax.lax.stop_gradient(ratio), new_values=jax.lax.stop_gradient(out.value))
        return loss, aux

    return loss_fn


def make_train_epoch(policy, tx, geom, train_cfg):
    """Returns ``train_epoch(state, batch, key, epoch) -> (state, metrics, health)``, jitted.

    ``metrics``: the epoch means of :data:`LOSS_KEYS`. ``health``: ``bad_minibatch`` (the first
    minibatch whose loss or gradients were non-finite, -1 if none), that minibatch's loss terms
    and ``params_finite``, for :func:`puffjax.finite.check_update`."""
    t = train_cfg
    grad_fn = jax.value_and_grad(make_loss_fn(policy, t), has_aux=True)
    mb_rows, accum = geom.minibatch_segments, geom.accumulation_steps
    adv_kw = dict(gamma=t.gamma, gae_lambda=t.gae_lambda, rho_clip=t.vtrace_rho_clip, c_clip=t.vtrace_c_clip)

    def gradients(params, mb):
        if accum == 1:
            (_, aux), grads = grad_fn(params, mb)
            return grads, aux
        # Gradient accumulation: chunks of max_minibatch_size, gradients AVERAGED (3.0 summed them).
        chunks = jax.tree.map(lambda x: x.reshape(accum, x.shape[0] // accum, *x.shape[1:]), mb)

        def body(acc, chunk):
            (_, aux), grads = grad_fn(params, chunk)
            return jax.tree.map(jnp.add, acc, grads), aux

        zeros = jax.tree.map(jnp.zeros_like, params)
        grads, aux = jax.lax.scan(body, zeros, chunks)
        aux = {k: (v.reshape(-1, *v.shape[2:]) if k.startswith("new_") else v.mean()) for k, v in aux.items()}
        return jax.tree.map(lambda g: g / accum, grads), aux

    def minibatch(carry, key, batch, beta):
        state, values, ratio = carry
        adv = puff_advantage(values, batch.rewards, batch.episode_starts, ratio, **adv_kw)
        probs = prioritized.row_probabilities(adv, t.prio_alpha)
        idx = prioritized.sample_rows(key, probs, mb_rows)
        weights = prioritized.importance_weights(probs, idx, beta)
        mb_adv, mb_values = adv[idx], values[idx]
        returns = mb_adv + mb_values
        mb = dict(obs=batch.obs[idx], actions=batch.actions[idx], logprobs=batch.logprobs[idx],
                  episode_starts=batch.episode_starts[idx], values=mb_values, returns=returns,
                  advantages=losses.normalize(mb_adv) * weights[:, None])
        grads, aux = gradients(state.params, mb)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ratio = ratio.at[idx].set(aux.pop("new_ratio"))
        values = values.at[idx].set(aux.pop("new_values"))
        metrics = dict(aux, importance=weights.mean(), finite=jnp.isfinite(aux["loss"]) & finite.all_finite(grads),
                       explained_variance=losses.explained_variance(mb_values, returns))
        return (TrainState(params, opt_state), values, ratio), metrics

    @jax.jit
    def train_epoch(state, batch, key, epoch):
        beta = prioritized.beta_schedule(t.prio_beta0, t.prio_alpha, epoch, geom.total_epochs)
        ratio = jnp.ones_like(batch.values)
        keys = jax.random.split(key, geom.minibatches_per_epoch)
        step = lambda c, k: minibatch(c, k, batch, beta)
        (state, values, ratio), metrics = jax.lax.scan(step, (state, batch.values, ratio), keys)
        ok = metrics.pop("finite")
        bad = jnp.where(ok.all(), -1, jnp.argmin(ok))
        health = dict(bad_minibatch=bad, bad_terms={k: metrics[k][jnp.maximum(bad, 0)] for k in _REPORTED_TERMS},
                      params_finite=finite.all_finite(state.params))
        return state, {k: jnp.nanmean(metrics[k]) for k in LOSS_KEYS}, health

    return train_epoch
