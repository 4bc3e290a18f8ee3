import jax
import jax.numpy as jnp
import numpy as np
import pytest

from puffjax import distributional as dl


def _rng(seed=None):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("symlog", [False, True])
@pytest.mark.parametrize("kind", ["hl_gauss", "two_hot"])
def test_targets_nonnegative_sum_to_one(kind, symlog):
    support = dl.make_support(-10.0, 10.0, 51, symlog=symlog)
    y = _rng().normal(0, 8, size=(3, 7)).astype(np.float32)
    y[0, 0], y[0, 1], y[0, 2], y[0, 3] = 1e30, -1e30, 1e-30, 0.0
    fn = dl.hl_gauss_target if kind == "hl_gauss" else dl.two_hot_target
    t = np.asarray(fn(jnp.asarray(y), support))
    assert t.shape == (3, 7, 51)
    assert np.all(np.isfinite(t))
    assert np.all(t >= 0)
    np.testing.assert_allclose(t.sum(-1), 1.0, atol=1e-5)


def test_support_layout():
    s = dl.make_support(-2.0, 3.0, 6)
    np.testing.assert_allclose(np.asarray(s.centers), [-2, -1, 0, 1, 2, 3], atol=1e-6)
    np.testing.assert_allclose(np.asarray(s.edges), np.arange(-2.5, 3.6, 1.0), atol=1e-6)
    assert s.width == 1.0
    np.testing.assert_allclose(np.asarray(s), np.asarray(s.centers))  # __array__
    sl = dl.make_support(-100.0, 100.0, 11, symlog=True)
    assert sl.symlog and np.isclose(sl.v_max, np.log1p(100.0))
    np.testing.assert_allclose(np.asarray(sl.values)[[0, -1]], [-100, 100], rtol=1e-4)
    assert hash(s) == hash(dl.make_support(-2.0, 3.0, 6))  # static, hashable


def test_two_hot_mean_recovers_y_inside_support():
    support = dl.make_support(-5.0, 7.0, 25)
    y = _rng().uniform(-5.0, 7.0, size=(1000,)).astype(np.float32)
    t = dl.two_hot_target(jnp.asarray(y), support)
    mean = np.asarray(t @ support.centers)
    np.testing.assert_allclose(mean, y, atol=1e-5)
    # at most two non-zero, neighbouring bins
    nz = np.asarray(t) > 0
    assert nz.sum(-1).max() <= 2
    # outside the support: clipped to the end bins
    t_out = np.asarray(dl.two_hot_target(jnp.array([-100.0, 100.0]), support))
    assert t_out[0, 0] == 1.0 and t_out[1, -1] == 1.0


def test_two_hot_symlog_mean_recovers_y():
    support = dl.make_support(-1000.0, 1000.0, 101, symlog=True)
    y = _rng().uniform(-900.0, 900.0, size=(200,)).astype(np.float32)
    t = dl.two_hot_target(jnp.asarray(y), support)
    back = np.asarray(dl.symexp(t @ support.centers))
    np.testing.assert_allclose(back, y, rtol=1e-4, atol=1e-3)


def test_hl_gauss_mean_close_to_y_away_from_edges():
    support = dl.make_support(-10.0, 10.0, 101)
    y = _rng().uniform(-8.0, 8.0, size=(500,)).astype(np.float32)
    t = dl.hl_gauss_target(jnp.asarray(y), support, sigma_ratio=0.75)
    mean = np.asarray(t @ support.centers)
    np.testing.assert_allclose(mean, y, atol=0.01 * support.width + 1e-4)
    # the logits of the target give back ~y through expected_value
    v = np.asarray(dl.expected_value(jnp.log(t + 1e-30), support))
    np.testing.assert_allclose(v, y, atol=0.02 * support.width + 1e-4)


def test_hl_gauss_matches_independent_cdf_formula():
    from math import erf, sqrt

    support = dl.make_support(-3.0, 3.0, 13)
    y, sigma = 0.37, 0.75 * support.width
    edges = np.asarray(support.edges, np.float64)
    cdf = np.array([0.5 * (1 + erf((e - y) / (sigma * sqrt(2)))) for e in edges])
    expected = np.diff(cdf) / (cdf[-1] - cdf[0])
    got = np.asarray(dl.hl_gauss_target(jnp.float32(y), support))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_expected_value_and_array_support():
    support = dl.make_support(-1.0, 1.0, 5)
    logits = jnp.asarray(_rng().normal(size=(4, 3, 5)), jnp.float32)
    p = np.asarray(jax.nn.softmax(logits, -1))
    expected = (p * np.linspace(-1, 1, 5)).sum(-1)
    np.testing.assert_allclose(np.asarray(dl.expected_value(logits, support)), expected, atol=1e-6)
    # a plain centre array works as a support too
    np.testing.assert_allclose(
        np.asarray(dl.expected_value(logits, support.centers)), expected, atol=1e-6
    )
    y = jnp.asarray(_rng().uniform(-1, 1, size=(6,)), jnp.float32)
    np.testing.assert_allclose(
        np.asarray(dl.hl_gauss_target(y, support.centers)),
        np.asarray(dl.hl_gauss_target(y, support)), atol=1e-6,
    )


def test_cross_entropy_minimised_at_target():
    support = dl.make_support(-10.0, 10.0, 41)
    y = jnp.asarray(_rng().uniform(-9, 9, size=(8,)), jnp.float32)
    target = dl.hl_gauss_target(y, support)
    at_target = dl.cross_entropy(jnp.log(target + 1e-30), target)
    # equals the target's entropy, and every perturbation is worse
    ent = -np.sum(np.asarray(target) * np.log(np.asarray(target) + 1e-30), -1)
    np.testing.assert_allclose(np.asarray(at_target), ent, atol=1e-4)
    for seed in range(5):
        noise = jnp.asarray(np.random.default_rng(seed).normal(size=target.shape), jnp.float32)
        worse = dl.cross_entropy(jnp.log(target + 1e-30) + noise, target)
        assert np.all(np.asarray(worse) >= np.asarray(at_target) - 1e-5)
    # cross-entropy is convex in the logits and its gradient vanishes there
    g = jax.grad(lambda lg: dl.cross_entropy(lg, target).sum())(jnp.log(target + 1e-30))
    np.testing.assert_allclose(np.asarray(g), 0.0, atol=1e-5)


def test_symlog_round_trip():
    x = np.concatenate([_rng().normal(0, 1, 100), _rng().normal(0, 1e3, 100), [0.0, 1e-30, -1e-30]])
    x = jnp.asarray(x, jnp.float32)
    np.testing.assert_allclose(np.asarray(dl.symexp(dl.symlog(x))), np.asarray(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dl.symlog(dl.symexp(x / 1e3))), np.asarray(x / 1e3), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["hl_gauss", "two_hot"])
@pytest.mark.parametrize("symlog", [False, True])
def test_value_loss_finite_gradients_for_extreme_y(kind, symlog):
    support = dl.make_support(-10.0, 10.0, 21, symlog=symlog)
    y = jnp.array([1e30, -1e30, 1e-30, -1e-30, 0.0, 3e38, 5.0], jnp.float32)
    logits = jnp.asarray(_rng().normal(size=(7, 21)), jnp.float32)

    def f(lg, yy):
        return dl.value_loss(lg, yy, support, kind=kind).mean()

    loss, (g_logits, g_y) = jax.value_and_grad(f, argnums=(0, 1))(logits, y)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(np.asarray(g_logits)))
    assert np.all(np.isfinite(np.asarray(g_y)))
    # gradients through the target builders themselves (no stop_gradient)
    fn = dl.hl_gauss_target if kind == "hl_gauss" else dl.two_hot_target
    g = jax.grad(lambda yy: (fn(yy, support) * jnp.arange(21.0)).sum())(y)
    assert np.all(np.isfinite(np.asarray(g)))


def test_batched_jit_vmap():
    support = dl.make_support(-1.0, 1.0, 11)
    y = jnp.asarray(_rng().uniform(-1, 1, size=(2, 3, 4)), jnp.float32)
    a = jax.jit(dl.hl_gauss_target, static_argnums=1)(y, support)
    b = jax.vmap(lambda r: dl.hl_gauss_target(r, support))(y)
    assert a.shape == (2, 3, 4, 11)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # Support passes through jit as an ordinary (leafless) pytree argument
    v = jax.jit(dl.expected_value)(jnp.zeros((5, 11)), support)
    np.testing.assert_allclose(np.asarray(v), 0.0, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="v_min"):
        dl.make_support(1.0, 1.0, 11)
    with pytest.raises(ValueError, match="v_min"):
        dl.make_support(2.0, -1.0, 11)
    with pytest.raises(ValueError, match="num_bins"):
        dl.make_support(-1.0, 1.0, 1)
    with pytest.raises(ValueError, match="num_bins"):
        dl.make_support(-1.0, 1.0, 2.5)
    with pytest.raises(ValueError, match="finite"):
        dl.make_support(-np.inf, 1.0, 11)
    s = dl.make_support(-1.0, 1.0, 11)
    with pytest.raises(ValueError, match="sigma_ratio"):
        dl.hl_gauss_target(jnp.zeros(3), s, sigma_ratio=-0.5)
    with pytest.raises(ValueError, match="sigma_ratio"):
        dl.hl_gauss_target(jnp.zeros(3), s, sigma_ratio=0.0)
    with pytest.raises(ValueError, match="kind"):
        dl.value_loss(jnp.zeros((3, 11)), jnp.zeros(3), s, kind="mse")
    with pytest.raises(ValueError, match="support"):
        dl.two_hot_target(jnp.zeros(3), jnp.zeros((2, 2)))
