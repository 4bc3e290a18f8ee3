"""Loss pieces against hand-computed values and independent NumPy formulas."""
import numpy as np
import pytest

from puffjax import losses


def test_clipped_policy_loss_hand_values():
    adv = np.array([1.0, -1.0, 2.0, -0.5], np.float32)
    ratio = np.array([1.5, 1.5, 0.5, 0.9], np.float32)
    # per element max(-A r, -A clip(r, 0.8, 1.2)):
    #  A=1,  r=1.5: max(-1.5, -1.2) = -1.2
    #  A=-1, r=1.5: max(1.5, 1.2)   =  1.5
    #  A=2,  r=0.5: max(-1.0, -1.6) = -1.0
    #  A=-.5,r=0.9: max(0.45, 0.45) =  0.45
    expected = (-1.2 + 1.5 - 1.0 + 0.45) / 4
    assert float(losses.clipped_policy_loss(adv, ratio, 0.2)) == pytest.approx(expected, rel=1e-6)


def test_clipped_value_loss_hand_values():
    new = np.array([2.0, 0.0], np.float32)
    old = np.array([1.0, 0.5], np.float32)
    ret = np.array([3.0, 0.0], np.float32)
    # elem 0: unclipped (2-3)^2 = 1; clipped V = 1 + clip(1, +-0.2) = 1.2 -> (1.2-3)^2 = 3.24 -> 3.24
    # elem 1: unclipped 0; clipped V = 0.5 + clip(-0.5) = 0.3 -> 0.09 -> 0.09
    assert float(losses.clipped_value_loss(new, old, ret, 0.2)) == pytest.approx(0.5 * (3.24 + 0.09) / 2, rel=1e-6)


def test_kl_stats_and_normalize():
    rng = np.random.default_rng(0)
    logratio = rng.normal(0, 0.3, 1000).astype(np.float32)
    ratio = np.exp(logratio)
    old_kl, kl, clipfrac = losses.kl_stats(logratio, ratio, 0.2)
    assert float(old_kl) == pytest.approx(np.mean(-logratio), rel=1e-4)
    assert float(kl) == pytest.approx(np.mean(ratio - 1 - logratio), rel=1e-4)
    assert float(clipfrac) == pytest.approx(np.mean(np.abs(ratio - 1) > 0.2))
    x = rng.normal(3, 2, 512).astype(np.float32)
    n = np.asarray(losses.normalize(x))
    np.testing.assert_allclose(n, (x - x.mean()) / (x.std() + 1e-8), rtol=1e-4, atol=1e-5)


def test_explained_variance_standard_definition():
    rng = np.random.default_rng(1)
    target = rng.normal(size=256).astype(np.float32)
    pred = target + rng.normal(scale=0.5, size=256).astype(np.float32)
    ev = float(losses.explained_variance(pred, target))
    assert ev == pytest.approx(1 - np.var(target - pred) / np.var(target), rel=1e-4)
    assert float(losses.explained_variance(target, target)) == pytest.approx(1.0)
    assert np.isnan(float(losses.explained_variance(pred[:4], np.ones(4, np.float32))))
    assert np.isnan(float(losses.explained_variance(pred[:4], np.full(4, 0.1, np.float32))))
