import jax
import jax.numpy as jnp
import numpy as np
import pytest

from puffjax import value_head as dl


def _rng(seed=None):
    return np.random.default_rng(seed)


def test_targets_nonnegative_sum_to_one():
    y = _rng().normal(0, 8, size=(3, 7)).astype(np.float32)
    y[0, :6] = [1e30, -1e30, 1e-30, -1e-30, 0.0, 3e38]

    @jax.jit
    def f(y):
        out = []
        for symlog in (False, True):
            support = dl.make_support(-10.0, 10.0, 51, symlog=symlog)
            out += [dl.hl_gauss_target(y, support), dl.two_hot_target(y, support)]
        return out

    for t in map(np.asarray, f(jnp.asarray(y))):
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


def test_target_means_recover_y():
    support = dl.make_support(-5.0, 7.0, 25)
    log_support = dl.make_support(-1000.0, 1000.0, 101, symlog=True)
    hl_support = dl.make_support(-10.0, 10.0, 101)
    y = _rng().uniform(-5.0, 7.0, size=(1000,)).astype(np.float32)
    y_big = _rng().uniform(-900.0, 900.0, size=(200,)).astype(np.float32)
    y_hl = _rng().uniform(-8.0, 8.0, size=(500,)).astype(np.float32)

    @jax.jit
    def f(y, y_big, y_hl):
        hl = dl.hl_gauss_target(y_hl, hl_support, sigma_ratio=0.75)
        return (dl.two_hot_target(y, support), dl.two_hot_target(jnp.array([-100.0, 100.0]), support),
                dl.two_hot_target(y_big, log_support), hl, dl.expected_value(jnp.log(hl + 1e-30), hl_support))

    t, t_out, t_log, hl, hl_back = map(np.asarray, f(y, y_big, y_hl))
    np.testing.assert_allclose(t @ np.asarray(support.centers), y, atol=1e-5)
    for row in t[:50]:  # mass on at most two neighbouring bins
        nz = np.flatnonzero(row)
        assert len(nz) <= 2 and nz.max() - nz.min() <= 1
    # outside the support: clipped to the end bins
    assert t_out[0, 0] == 1.0 and t_out[1, -1] == 1.0
    # symlog support: the mean is symlog(y), mapped back by symexp
    m = t_log @ np.asarray(log_support.centers, np.float64)
    np.testing.assert_allclose(np.sign(m) * np.expm1(np.abs(m)), y_big, rtol=1e-4, atol=1e-3)
    # HL-Gauss: the mean is close to y away from the edges (only truncation error)
    np.testing.assert_allclose(hl @ np.asarray(hl_support.centers), y_hl, atol=0.01 * hl_support.width + 1e-4)
    # the logits of the target give back ~y through expected_value
    np.testing.assert_allclose(hl_back, y_hl, atol=0.02 * hl_support.width + 1e-4)


def test_hl_gauss_matches_independent_cdf_formula():
    from math import erf, sqrt

    support = dl.make_support(-3.0, 3.0, 13)
    y, sigma = 0.37, 0.75 * support.width
    edges = np.asarray(support.edges, np.float64)
    cdf = np.array([0.5 * (1 + erf((e - y) / (sigma * sqrt(2)))) for e in edges])
    expected = np.diff(cdf) / (cdf[-1] - cdf[0])
    got = np.asarray(jax.jit(dl.hl_gauss_target)(jnp.float32(y), support))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_expected_value_and_array_support():
    support = dl.make_support(-1.0, 1.0, 5)
    logits = jnp.asarray(_rng().normal(size=(4, 3, 5)), jnp.float32)
    y = jnp.asarray(_rng().uniform(-1, 1, size=(6,)), jnp.float32)

    @jax.jit
    def f(logits, y):
        # a plain centre array works as a support too
        return (dl.expected_value(logits, support), dl.expected_value(logits, support.centers),
                dl.hl_gauss_target(y, support), dl.hl_gauss_target(y, support.centers))

    ev, ev_arr, t, t_arr = map(np.asarray, f(logits, y))
    p = np.asarray(jax.nn.softmax(logits, -1))
    expected = (p * np.linspace(-1, 1, 5)).sum(-1)
    np.testing.assert_allclose(ev, expected, atol=1e-6)
    np.testing.assert_allclose(ev_arr, expected, atol=1e-6)
    np.testing.assert_allclose(t_arr, t, atol=1e-6)


def test_cross_entropy_minimised_at_target():
    support = dl.make_support(-10.0, 10.0, 41)
    y = jnp.asarray(_rng().uniform(-9, 9, size=(8,)), jnp.float32)
    noise = jnp.asarray(_rng().normal(size=(5, 8, 41)), jnp.float32)

    @jax.jit
    def f(y, noise):
        target = dl.hl_gauss_target(y, support)
        logits = jnp.log(target + 1e-30)
        at_target = dl.cross_entropy(logits, target)
        worse = dl.cross_entropy(logits + noise, target)  # broadcast over 5 perturbations
        # cross-entropy is convex in the logits and its gradient vanishes there
        g = jax.grad(lambda lg: dl.cross_entropy(lg, target).sum())(logits)
        return target, at_target, worse, g

    target, at_target, worse, g = map(np.asarray, f(y, noise))
    ent = -np.sum(target * np.log(target + 1e-30), -1)  # equals the target's entropy
    np.testing.assert_allclose(at_target, ent, atol=1e-4)
    assert np.all(worse >= at_target - 1e-5)
    np.testing.assert_allclose(g, 0.0, atol=1e-5)


def test_symlog_round_trip():
    x = np.concatenate([_rng().normal(0, 1, 100), _rng().normal(0, 1e3, 100), [0.0, 1e-30, -1e-30]])
    x = jnp.asarray(x, jnp.float32)
    f = jax.jit(lambda x: (dl.symexp(dl.symlog(x)), dl.symlog(dl.symexp(x / 1e3)), dl.symlog(x)))
    a, b, c = map(np.asarray, f(x))
    np.testing.assert_allclose(a, np.asarray(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, np.asarray(x) / 1e3, rtol=1e-5, atol=1e-6)
    xs = np.asarray(x, np.float64)
    np.testing.assert_allclose(c, np.sign(xs) * np.log1p(np.abs(xs)), rtol=1e-5, atol=1e-7)


def test_value_loss_finite_gradients_for_extreme_y():
    y = jnp.array([1e30, -1e30, 1e-30, -1e-30, 0.0, 3e38, 5.0], jnp.float32)
    logits = jnp.asarray(_rng().normal(size=(7, 21)), jnp.float32)

    @jax.jit
    def f(lg, yy):
        outs = []
        for symlog in (False, True):
            support = dl.make_support(-10.0, 10.0, 21, symlog=symlog)
            for kind, fn in (("hl_gauss", dl.hl_gauss_target), ("two_hot", dl.two_hot_target)):
                loss_fn = lambda a, b: dl.value_loss(a, b, support, kind=kind).mean()
                loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(lg, yy)
                # gradients through the target builders themselves (no stop_gradient)
                g_t = jax.grad(lambda b: (fn(b, support) * jnp.arange(21.0)).sum())(yy)
                outs.append((loss, grads, g_t))
        return outs

    for x in jax.tree.leaves(f(logits, y)):
        assert np.all(np.isfinite(np.asarray(x)))


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
