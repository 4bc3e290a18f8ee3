"""The minGRU recurrence and policy: against a NumPy loop, resets, gradients, step vs segment form;
the CPU kernel (H a multiple of 8, float32), the sequential and the parallel scan alike."""
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from puffjax import kernels, make_policy
from puffjax.mingru import g, has_kernel, mingru, mingru_parallel, mingru_sequential


def numpy_loop(z, c, reset, h0):
    z, c, h0 = (np.asarray(x, np.float64) for x in (z, c, h0))
    h = h0.copy()
    hs = np.zeros_like(z)
    for t in range(z.shape[1]):
        h = np.where(reset[:, t, None], 0.0, h)
        gate = 1 / (1 + np.exp(-z[:, t]))
        cand = np.where(c[:, t] >= 0, c[:, t] + 0.5, 1 / (1 + np.exp(-c[:, t])))
        h = (1 - gate) * h + gate * cand
        hs[:, t] = h
    return hs, h


@pytest.mark.parametrize("b, t, h, rate", [(5, 64, 16, 0.1), (3, 1, 8, 0.5), (37, 64, 64, 0.05), (7, 13, 4, 0.0),
                                           (2, 9, 3, 1.0), (4, 11, 24, 1.0)])
def test_matches_a_numpy_loop(b, t, h, rate):
    rng = np.random.default_rng()
    z, c = (rng.normal(scale=2.0, size=(b, t, h)).astype(np.float32) for _ in range(2))
    reset = rng.random((b, t)) < rate
    h0 = rng.normal(size=(b, h)).astype(np.float32)
    want_hs, want_last = numpy_loop(z, c, reset, h0)
    for fn in (mingru, mingru_parallel, mingru_sequential):  # the dispatcher and both forms
        hs, last = jax.jit(fn)(z, c, reset, h0)
        np.testing.assert_allclose(hs, want_hs, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(last, want_last, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("h", [4, 8])  # the sequential scan; the kernel
def test_a_reset_cuts_the_past_at_every_position(h):
    rng = np.random.default_rng()
    b, t = 2, 10
    z, c = (rng.normal(size=(b, t, h)).astype(np.float32) for _ in range(2))
    h0 = rng.normal(size=(b, h)).astype(np.float32)
    for pos in range(t):
        reset = np.zeros((b, t), bool)
        reset[:, pos] = True
        hs, _ = mingru(z, c, reset, h0)
        z2, c2 = z.copy(), c.copy()
        z2[:, :pos] += 5.0  # change everything before the reset
        c2[:, :pos] -= 3.0
        hs2, _ = mingru(z2, c2, reset, rng.normal(size=(b, h)).astype(np.float32))
        np.testing.assert_allclose(hs[:, pos:], hs2[:, pos:], rtol=1e-6, atol=1e-6)
        if pos > 0:
            assert not np.allclose(hs[:, pos - 1], hs2[:, pos - 1])


def test_gradients_against_finite_differences_and_the_sequential_scan():
    rng = np.random.default_rng()
    b, t, h = 3, 7, 5
    reset = rng.random((b, t)) < 0.3
    def loss(fn):  # jitted: one program per transformation, not one dispatch per operation
        return jax.jit(lambda z, c, h0: fn(z, c, reset, h0)[0].sum() + fn(z, c, reset, h0)[1].sum())

    with jax.enable_x64(True):  # central differences in float64, steps far smaller than g's kink
        args = [jnp.asarray(rng.normal(size=s), jnp.float64) for s in ((b, t, h), (b, t, h), (b, h))]
        for fn in (mingru_parallel, mingru_sequential):
            check_grads(loss(fn), args, order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5, eps=1e-6)
    z, c, h0 = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((b, t, h), (b, t, h), (b, h)))
    grads = [jax.grad(loss(fn), argnums=(0, 1, 2))(z, c, h0) for fn in (mingru, mingru_parallel, mingru_sequential)]
    for other in grads[1:]:
        for got, want in zip(grads[0], other):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_candidate_activation_is_continuous_and_positive():
    x = jnp.linspace(-20, 20, 4001)
    y = g(x)
    assert bool(jnp.all(y > 0)) and float(g(0.0)) == 0.5 and float(g(-1e-6)) == pytest.approx(0.5, abs=1e-6)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="z and candidate"):
        mingru(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)), np.zeros((2, 3), bool), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="reset must be"):
        mingru(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros((2, 4), bool), np.zeros((2, 4)))


needs_kernel = pytest.mark.skipif(not has_kernel() or kernels.default_platform() != "cpu",
                                  reason="the minGRU kernel runs on CPU builds with the extension")


@needs_kernel
def test_the_kernel_runs_on_cpu_for_float32_only():
    z = np.zeros((2, 5, 16), np.float32)
    reset = np.zeros((2, 5), bool)
    h0 = np.zeros((2, 16), np.float32)
    assert "puffjax_mingru_forward" in jax.jit(mingru).lower(z, z, reset, h0).as_text()
    grad = jax.jit(jax.grad(lambda z: mingru(z, z, reset, h0)[0].sum()))
    assert "puffjax_mingru_backward" in grad.lower(z).as_text()
    for odd in (np.zeros((2, 5, 12), np.float32), np.zeros((2, 5, 16), np.float64)):  # no kernel: the scan
        with jax.enable_x64(odd.dtype == np.float64):
            h = np.zeros((2, odd.shape[-1]), odd.dtype)
            assert "custom_call" not in jax.jit(mingru).lower(odd, odd, reset, h).as_text()


@needs_kernel
@pytest.mark.parametrize("b, t, h, rate", [(6, 64, 64, 0.05), (3, 1, 8, 0.5), (5, 17, 16, 1.0), (4, 9, 32, 0.0)])
def test_kernel_gradients_equal_the_sequential_scan(b, t, h, rate):
    """The kernel's custom_vjp (z, candidate, h0; cotangents on every h_t and on h_T) against
    JAX's derivative of the sequential scan (itself checked against finite differences above)."""
    rng = np.random.default_rng()
    z, c = (jnp.asarray(rng.normal(scale=2.0, size=(b, t, h)), jnp.float32) for _ in range(2))
    h0 = jnp.asarray(rng.normal(size=(b, h)), jnp.float32)
    reset = rng.random((b, t)) < rate
    w_hs = jnp.asarray(rng.normal(size=(b, t, h)), jnp.float32)
    w_last = jnp.asarray(rng.normal(size=(b, h)), jnp.float32)

    def loss(fn):
        def f(z, c, h0):
            hs, last = fn(z, c, reset, h0)
            return (hs * w_hs).sum() + (last * w_last).sum() + (hs ** 2).mean()
        return f

    got = jax.jit(jax.grad(loss(mingru), argnums=(0, 1, 2)))(z, c, h0)
    want = jax.grad(loss(mingru_sequential), argnums=(0, 1, 2))(z, c, h0)
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-5)
    if rate == 1.0:  # every step starts from zero: nothing flows back to h0
        assert not np.any(got[2])


@needs_kernel
def test_kernel_under_vmap():
    rng = np.random.default_rng()
    z, c = (rng.normal(size=(3, 4, 5, 8)).astype(np.float32) for _ in range(2))
    reset = rng.random((4, 5)) < 0.3
    h0 = rng.normal(size=(3, 4, 8)).astype(np.float32)
    hs = jax.vmap(lambda z, c, h0: mingru(z, c, reset, h0)[0])(z, c, h0)
    for k in range(3):
        np.testing.assert_allclose(hs[k], numpy_loop(z[k], c[k], reset, h0[k])[0], rtol=2e-5, atol=2e-5)


OBS = gym.spaces.Box(-1, 1, (6,), np.float32)


@pytest.mark.parametrize("action_space, value_head, layers", [
    (gym.spaces.Discrete(3), "scalar", 1), (gym.spaces.MultiDiscrete([2, 3]), "hl_gauss", 2),
    (gym.spaces.Box(-1, 1, (2,), np.float32), "two_hot", 2)])
def test_policy_step_form_equals_segment_form(action_space, value_head, layers):
    """Stepping a minGRU policy one observation at a time (the rollout) gives what the segment
    form (training) gives, resets included."""
    rng = np.random.default_rng()
    policy = make_policy(OBS, action_space, kind="mingru", hidden_size=16, layers=layers, value_head=value_head,
                         num_bins=11)
    assert policy.is_recurrent and len(policy.initial_carry(2)) == layers
    params = policy.init(jax.random.PRNGKey(1))
    b, t = 4, 9
    obs = rng.uniform(-1, 1, (b, t, 6)).astype(np.float32)
    reset = rng.random((b, t)) < 0.25
    reset[:, 0] = True
    whole = policy.unroll(params, obs, reset)
    carry, step = policy.initial_carry(b), jax.jit(policy.step)
    for i in range(t):
        out, carry = step(params, obs[:, i], carry, reset[:, i])
        np.testing.assert_allclose(out.value, whole.value[:, i], rtol=1e-5, atol=1e-5)
        for a, w in zip(jax.tree.leaves(out.action_params), jax.tree.leaves(whole.action_params)):
            np.testing.assert_allclose(a, w[:, i], rtol=1e-5, atol=1e-5)
    # the state matters: without the resets the outputs differ
    assert not np.allclose(policy.unroll(params, obs, np.zeros((b, t), bool)).value, whole.value)
