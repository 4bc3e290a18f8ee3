"""Prioritized minibatch replay over rollout rows (segments), PufferLib 3.0 semantics.

A row's priority is the alpha-th power of its summed absolute advantage; rows are drawn
without replacement in proportion to it and corrected with importance weights
(S * p_i)^-beta, beta annealed towards 1 over training. All functions are pure JAX. With the
buffer sharded over devices, each device calls :func:`draw` on its own rows (S = its rows).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def row_probabilities(advantages, alpha: float):
    """p_i = (w_i + 1e-6) / (sum w + 1e-6) with w_i = (sum_t |A_it|)^alpha; non-finite w -> 0."""
    w = jnp.abs(advantages).sum(axis=-1) ** alpha
    w = jnp.where(jnp.isfinite(w), w, 0.0)
    return (w + 1e-6) / (w.sum() + 1e-6)


def sample_rows(key, probs, num_rows: int):
    """Draw ``num_rows`` distinct row indices, each draw proportional to ``probs``.

    Gumbel-top-k: the ``num_rows`` largest of log p_i + Gumbel noise are distributed exactly as
    successive draws without replacement.
    """
    scores = jnp.log(probs) + jax.random.gumbel(key, probs.shape, probs.dtype)
    return jax.lax.top_k(scores, num_rows)[1]


def importance_weights(probs, idx, beta):
    """(S * p_i)^-beta for the drawn rows (not max-normalised, as in PufferLib)."""
    return (probs.shape[0] * probs[idx]) ** (-beta)


def draw(key, advantages, num_rows: int, alpha: float, beta):
    """One minibatch: ``num_rows`` distinct rows of ``advantages [S, H]`` drawn by priority, and
    their importance weights. Returns ``(rows, weights)``."""
    probs = row_probabilities(advantages, alpha)
    idx = sample_rows(key, probs, num_rows)
    return idx, importance_weights(probs, idx, beta)


def beta_schedule(beta0: float, alpha: float, epoch, total_epochs: int):
    """PufferLib 3.0's annealing: beta0 + (1 - beta0) * alpha * epoch / total_epochs."""
    return beta0 + (1.0 - beta0) * alpha * epoch / total_epochs
