"""Prioritized row sampling: priorities, draws without replacement, weights, beta schedule."""
import jax
import numpy as np
import pytest

from puffjax import prioritized


def test_row_probabilities_formula_and_nonfinite():
    rng = np.random.default_rng(0)
    adv = rng.normal(size=(16, 8)).astype(np.float32)
    adv[3, 2] = np.nan
    adv[5, 0] = np.inf
    p = np.asarray(prioritized.row_probabilities(adv, 0.8))
    w = np.abs(adv).sum(1) ** 0.8
    w[~np.isfinite(w)] = 0
    np.testing.assert_allclose(p, (w + 1e-6) / (w.sum() + 1e-6), rtol=1e-5)
    assert p[3] < 1e-6 and p[5] < 1e-6


def test_samples_have_no_duplicates():
    probs = jax.numpy.asarray(np.random.default_rng(1).dirichlet(np.ones(64)), np.float32)
    for i in range(20):
        idx = np.asarray(prioritized.sample_rows(jax.random.PRNGKey(i), probs, 32))
        assert len(set(idx.tolist())) == 32 and idx.min() >= 0 and idx.max() < 64


def test_first_draw_frequencies_follow_priorities():
    probs = np.array([0.5, 0.25, 0.15, 0.1], np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    draws = np.asarray(jax.vmap(lambda k: prioritized.sample_rows(k, probs, 1))(keys))[:, 0]
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.015)


def test_inclusion_matches_sequential_sampling_without_replacement():
    rng = np.random.default_rng(2)
    probs = np.array([0.4, 0.3, 0.2, 0.06, 0.04], np.float32)
    # Reference: draw 2 items sequentially, renormalising after each draw.
    ref = np.zeros(5)
    for _ in range(20000):
        p = probs.astype(np.float64).copy()
        for _ in range(2):
            i = rng.choice(5, p=p / p.sum())
            ref[i] += 1
            p[i] = 0
    keys = jax.random.split(jax.random.PRNGKey(3), 20000)
    draws = np.asarray(jax.vmap(lambda k: prioritized.sample_rows(k, probs, 2))(keys)).ravel()
    ours = np.bincount(draws, minlength=5)
    np.testing.assert_allclose(ours / 20000, ref / 20000, atol=0.02)


def test_importance_weights_and_beta():
    probs = np.array([0.5, 0.25, 0.25], np.float32)
    w = np.asarray(prioritized.importance_weights(probs, np.array([0, 2]), 0.5))
    np.testing.assert_allclose(w, [(3 * 0.5) ** -0.5, (3 * 0.25) ** -0.5], rtol=1e-6)
    assert prioritized.beta_schedule(0.2, 0.8, 0, 100) == pytest.approx(0.2)
    assert prioritized.beta_schedule(0.2, 0.8, 50, 100) == pytest.approx(0.2 + 0.8 * 0.8 * 0.5)
    assert prioritized.beta_schedule(0.2, 1.0, 100, 100) == pytest.approx(1.0)
