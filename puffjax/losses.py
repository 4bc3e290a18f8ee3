"""PPO-family loss pieces as pure JAX functions (PufferLib 3.0 semantics).

Every function takes plain arrays and returns scalars or arrays; import them into your own
training code without the trainer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _means(*xs):
    """The means of all elements of each of ``xs``, stacked into one array: the moments a split
    minibatch averages over its devices in one all-reduce, with whatever else crosses then."""
    return jnp.stack([jnp.mean(x) for x in xs])


def _weigh(x, weights):
    """``x`` times per-element ``weights`` (broadcast over x's trailing dims), or x itself."""
    if weights is None:
        return x
    w = jnp.asarray(weights)
    return x * w.reshape(w.shape + (1,) * (jnp.ndim(x) - w.ndim))


def _variance(mean, mean_square):
    return jnp.maximum(mean_square - jnp.square(mean), 0.0)


def normalize_moments(advantages, weights=None):
    """This device's (weighted) mean and mean square of ``advantages``, as one array [2]: what
    :func:`normalize_with` needs, to be averaged over devices first when the minibatch is split."""
    return _means(_weigh(advantages, weights), _weigh(jnp.square(advantages), weights))


def normalize_with(advantages, moments, eps: float = 1e-8):
    """(A - mean) / (std + eps) from ``moments`` = [mean, mean square] (:func:`normalize_moments`)."""
    mean, mean_square = moments[0], moments[1]
    return (advantages - mean) / (jnp.sqrt(_variance(mean, mean_square)) + eps)


def normalize(advantages, eps: float = 1e-8, axis_name=None, weights=None):
    """(A - mean) / (std + eps) over all elements (the minibatch); ``axis_name``: the minibatch is
    split over that mesh axis and the statistics are those of the whole of it.

    ``weights`` (optional, per element, with mean 1 over the whole minibatch): the statistics
    are weighted, e.g. 0 for masked agents' steps (:mod:`puffjax.update`); None = all 1."""
    moments = normalize_moments(advantages, weights)
    return normalize_with(advantages, moments if axis_name is None else jax.lax.pmean(moments, axis_name), eps)


def clipped_policy_loss(advantages, ratio, clip_coef: float, weights=None):
    """PPO's clipped surrogate: mean(max(-A * r, -A * clip(r, 1 - c, 1 + c))), each element
    times ``weights`` when given (as in :func:`normalize`)."""
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    return _weigh(jnp.maximum(unclipped, clipped), weights).mean()


def clipped_value_loss(new_values, old_values, returns, vf_clip_coef: float, weights=None):
    """0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, +-c) - R)^2)) (``weights``: as above)."""
    unclipped = (new_values - returns) ** 2
    v_clipped = old_values + jnp.clip(new_values - old_values, -vf_clip_coef, vf_clip_coef)
    clipped = (v_clipped - returns) ** 2
    return 0.5 * _weigh(jnp.maximum(unclipped, clipped), weights).mean()


def kl_stats(logratio, ratio, clip_coef: float, weights=None):
    """(old_approx_kl, approx_kl, clipfrac) as PufferLib logs them (``weights``: as above)."""
    old_approx_kl = _weigh(-logratio, weights).mean()
    approx_kl = _weigh((ratio - 1.0) - logratio, weights).mean()
    clipfrac = _weigh((jnp.abs(ratio - 1.0) > clip_coef).astype(jnp.float32), weights).mean()
    return old_approx_kl, approx_kl, clipfrac


def explained_variance_moments(predicted, target, weights=None):
    """This device's (weighted) means of target, target^2, residual and residual^2, as one array
    [4]: what :func:`explained_variance_with` needs, averaged over devices first when split."""
    target, predicted = jnp.asarray(target), jnp.asarray(predicted)
    residual = target - predicted
    return _means(*(_weigh(x, weights) for x in (target, jnp.square(target), residual, jnp.square(residual))))


def explained_variance_with(moments):
    """1 - Var(residual) / Var(target) from :func:`explained_variance_moments`; NaN when
    Var(target) is 0 (or below what float32 moments resolve: 1e-5 of the target's mean square)."""
    m_t, m_t2, m_r, m_r2 = moments[0], moments[1], moments[2], moments[3]
    var_target = _variance(m_t, m_t2)
    return jnp.where(var_target > 1e-5 * m_t2, 1.0 - _variance(m_r, m_r2) / var_target, jnp.nan)


def explained_variance(predicted, target, axis_name=None, weights=None):
    """Standard 1 - Var(target - predicted) / Var(target); NaN when Var(target) is 0 (or below
    what float32 moments resolve: 1e-5 of the target's mean square). ``axis_name`` and
    ``weights``: as in :func:`normalize`."""
    moments = explained_variance_moments(predicted, target, weights)
    return explained_variance_with(moments if axis_name is None else jax.lax.pmean(moments, axis_name))
