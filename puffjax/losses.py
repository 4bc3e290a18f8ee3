"""PPO-family loss pieces as pure JAX functions (PufferLib 3.0 semantics).

Every function takes plain arrays and returns scalars or arrays; import them into your own
training code without the trainer.
"""
from __future__ import annotations

import jax.numpy as jnp


def normalize(advantages, eps: float = 1e-8):
    """(A - mean) / (std + eps) over all elements (the minibatch)."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def clipped_policy_loss(advantages, ratio, clip_coef: float):
    """PPO's clipped surrogate: mean(max(-A * r, -A * clip(r, 1 - c, 1 + c)))."""
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    return jnp.maximum(unclipped, clipped).mean()


def clipped_value_loss(new_values, old_values, returns, vf_clip_coef: float):
    """0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, +-c) - R)^2))."""
    unclipped = (new_values - returns) ** 2
    v_clipped = old_values + jnp.clip(new_values - old_values, -vf_clip_coef, vf_clip_coef)
    clipped = (v_clipped - returns) ** 2
    return 0.5 * jnp.maximum(unclipped, clipped).mean()


def kl_stats(logratio, ratio, clip_coef: float):
    """(old_approx_kl, approx_kl, clipfrac) as PufferLib logs them."""
    old_approx_kl = (-logratio).mean()
    approx_kl = ((ratio - 1.0) - logratio).mean()
    clipfrac = (jnp.abs(ratio - 1.0) > clip_coef).astype(jnp.float32).mean()
    return old_approx_kl, approx_kl, clipfrac


def explained_variance(predicted, target):
    """Standard 1 - Var(target - predicted) / Var(target); NaN when Var(target) is 0."""
    target, predicted = jnp.asarray(target), jnp.asarray(predicted)
    var_target = target.var()
    return jnp.where(var_target > 0, 1.0 - (target - predicted).var() / var_target, jnp.nan)
