"""Tests of puffjax.lstm: the fused CPU kernel (forward and custom_vjp backward) and the scan.

The reference is independent of both: a NumPy loop in float64 over rows and time, and its
gradients by central finite differences on a small case. The kernel is also checked against
JAX's own derivative of the scan on fresh random inputs, resets included.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from puffjax import lstm as lstm_mod
from puffjax.lstm import has_kernel, lstm, lstm_reference

needs_kernel = pytest.mark.skipif(not has_kernel(), reason="puffjax._ffi is not built")


def numpy_lstm(gx, reset, w_h, c0, h0):
    """The recurrence, literally, in float64."""
    gx, w_h, c, h = (np.asarray(x, np.float64) for x in (gx, w_h, c0, h0))
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    B, T, G = gx.shape
    H = G // 4
    c, h = c.copy(), h.copy()
    hs = np.zeros((B, T, H))
    for b in range(B):
        for t in range(T):
            if reset[b, t]:
                c[b], h[b] = 0.0, 0.0
            z = gx[b, t] + h[b] @ w_h
            i, f, g, o = sig(z[:H]), sig(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sig(z[3 * H:])
            c[b] = f * c[b] + i * g
            h[b] = o * np.tanh(c[b])
            hs[b, t] = h[b]
    return hs, c, h


def random_case(seed, B, T, H, p_reset=0.2, scale=2.0):
    rng = np.random.default_rng(seed)
    f32 = lambda *s, k=1.0: (rng.normal(size=s) * k).astype(np.float32)
    gx = f32(B, T, 4 * H, k=scale)
    reset = rng.random((B, T)) < p_reset
    return gx, reset, f32(H, 4 * H, k=1 / np.sqrt(H)), f32(B, H), f32(B, H)


SHAPES = [(1, 1, 16), (7, 5, 16), (25, 64, 32), (50, 3, 128), (13, 1, 128), (49, 17, 48)]


@needs_kernel
@pytest.mark.parametrize("B,T,H", SHAPES)
def test_kernel_forward_matches_numpy(B, T, H):
    gx, reset, w, c0, h0 = random_case(B * 1000 + T, B, T, H)
    hs, (c, h) = jax.jit(lstm)(gx, reset, w, (c0, h0))
    want_hs, want_c, want_h = numpy_lstm(gx, reset, w, c0, h0)
    np.testing.assert_allclose(hs, want_hs, atol=2e-6)
    np.testing.assert_allclose(c, want_c, atol=5e-6)
    np.testing.assert_allclose(h, want_h, atol=2e-6)


@pytest.mark.parametrize("B,T,H", [(7, 5, 16), (3, 4, 8)])
def test_reference_matches_numpy(B, T, H):
    gx, reset, w, c0, h0 = random_case(7, B, T, H)
    hs, (c, h) = lstm_reference(jnp.asarray(gx), jnp.asarray(reset), jnp.asarray(w), (c0, h0))
    want_hs, want_c, want_h = numpy_lstm(gx, reset, w, c0, h0)
    np.testing.assert_allclose(hs, want_hs, atol=2e-6)
    np.testing.assert_allclose(c, want_c, atol=5e-6)


def _loss(fn, reset, weights):
    """A scalar of every output, with distinct weights so no gradient term can hide."""
    w_hs, w_c, w_h = weights

    def loss(gx, w, c0, h0):
        hs, (c, h) = fn(gx, reset, w, (c0, h0))
        return (hs * w_hs).sum() + (c * w_c).sum() + (h * w_h).sum()

    return loss


@needs_kernel
@pytest.mark.parametrize("B,T,H", SHAPES)
@pytest.mark.parametrize("p_reset", [0.0, 0.2, 1.0])
def test_kernel_gradients_match_scan(B, T, H, p_reset):
    gx, reset, w, c0, h0 = random_case(B + 7 * T, B, T, H, p_reset)
    rng = np.random.default_rng(1)
    weights = (rng.normal(size=(B, T, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    args = tuple(jnp.asarray(x) for x in (gx, w, c0, h0))
    got = jax.jit(jax.grad(_loss(lstm, reset, weights), argnums=(0, 1, 2, 3)))(*args)
    want = jax.grad(_loss(lstm_reference, jnp.asarray(reset), weights), argnums=(0, 1, 2, 3))(*args)
    for name, g, r in zip(("gates_x", "w_h", "c0", "h0"), got, want):
        scale = float(jnp.abs(r).max()) + 1e-6
        assert float(jnp.abs(g - r).max()) <= 2e-5 * scale, name
    if p_reset == 1.0:  # every step starts from zero: nothing reaches the initial carry
        assert not np.any(got[2]) and not np.any(got[3])


@needs_kernel
def test_kernel_gradient_matches_finite_differences():
    B, T, H = 3, 4, 16
    gx, reset, w, c0, h0 = random_case(3, B, T, H, p_reset=0.25, scale=1.0)
    reset[:, 0] = [True, False, False]
    rng = np.random.default_rng(2)
    weights = (rng.normal(size=(B, T, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    grads = jax.grad(_loss(lstm, reset, weights), argnums=(0, 1, 2, 3))(gx, w, c0, h0)

    def numpy_loss(gx, w, c0, h0):
        hs, c, h = numpy_lstm(gx, reset, w, c0, h0)
        return (hs * weights[0]).sum() + (c * weights[1]).sum() + (h * weights[2]).sum()

    inputs = [np.asarray(x, np.float64) for x in (gx, w, c0, h0)]
    for k, grad in enumerate(grads):
        for flat in rng.choice(inputs[k].size, 6, replace=False):
            idx = np.unravel_index(flat, inputs[k].shape)
            plus, minus = [x.copy() for x in inputs], [x.copy() for x in inputs]
            plus[k][idx] += 1e-5
            minus[k][idx] -= 1e-5
            numeric = (numpy_loss(*plus) - numpy_loss(*minus)) / 2e-5
            assert abs(float(grad[idx]) - numeric) <= 1e-4 + 1e-3 * abs(numeric), (k, idx)


@needs_kernel
def test_kernel_saturated_gates_and_nan():
    B, T, H = 6, 3, 16
    gx, reset, w, c0, h0 = random_case(5, B, T, H)
    gx = np.where(np.arange(4 * H) % 2 == 0, 200.0, -200.0).astype(np.float32) * np.ones_like(gx)
    hs, (c, h) = lstm(gx, reset, w, (c0, h0))
    want_hs, want_c, _ = numpy_lstm(gx, reset, w, c0, h0)
    np.testing.assert_allclose(hs, want_hs, atol=2e-6)
    np.testing.assert_allclose(c, want_c, atol=5e-6)
    gx[2, 1, 0] = np.nan  # a NaN poisons its own row from that step on, and no other row
    hs, _ = lstm(gx, reset, w, (c0, h0))
    hs = np.asarray(hs)
    assert np.isnan(hs[2, 1]).any() and np.isfinite(np.delete(hs, 2, axis=0)).all()
    assert np.isfinite(hs[2, 0]).all()


@needs_kernel
def test_kernel_is_the_cpu_path():
    gx, reset, w, c0, h0 = random_case(0, 4, 3, 16)
    text = jax.jit(lstm).lower(gx, reset, w, (c0, h0)).as_text()
    assert "puffjax_lstm_forward" in text
    grad_text = jax.jit(jax.grad(lambda g: lstm(g, reset, w, (c0, h0))[0].sum())).lower(gx).as_text()
    assert "puffjax_lstm_backward" in grad_text


def test_fallback_for_other_sizes_and_dtypes():
    # H = 8 is not a multiple of 16: the scan runs, with the same results.
    gx, reset, w, c0, h0 = random_case(9, 5, 4, 8)
    hs, _ = lstm(gx, reset, w, (c0, h0))
    np.testing.assert_allclose(hs, numpy_lstm(gx, reset, w, c0, h0)[0], atol=2e-6)
    assert "puffjax_lstm_forward" not in jax.jit(lstm).lower(gx, reset, w, (c0, h0)).as_text()


@needs_kernel
def test_kernel_under_vmap_and_scan():
    gx, reset, w, c0, h0 = random_case(11, 5, 6, 16)
    stacked = [np.stack([x, 0.5 * x]) for x in (gx, c0, h0)]
    out = jax.vmap(lambda g, c, h: lstm(g, reset, w, (c, h))[0])(*stacked)
    for k in range(2):
        want = numpy_lstm(stacked[0][k], reset, w, stacked[1][k], stacked[2][k])[0]
        np.testing.assert_allclose(out[k], want, atol=2e-6)

    # Step by step inside lax.scan (as a rollout does) equals one call over T steps.
    def step(carry, xs):
        g, r = xs
        h_t, carry = lstm(g[:, None], r[:, None], w, carry)
        return carry, h_t[:, 0]

    _, hs = jax.lax.scan(step, (c0, h0), (gx.swapaxes(0, 1), reset.swapaxes(0, 1)))
    np.testing.assert_allclose(hs.swapaxes(0, 1), lstm(gx, reset, w, (c0, h0))[0], atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (dict(gx=np.zeros((4, 3, 30), np.float32)), "gates_x"),
    (dict(gx=np.zeros((4, 64), np.float32)), "gates_x"),
    (dict(reset=np.zeros((4, 2), bool)), "reset"),
    (dict(w=np.zeros((16, 32), np.float32)), "w_h"),
    (dict(c0=np.zeros((3, 16), np.float32)), "c0"),
    (dict(h0=np.zeros((4, 17), np.float32)), "h0"),
    (dict(gx=np.zeros((4, 0, 64), np.float32), reset=np.zeros((4, 0), bool)), "T = 0"),
])
def test_bad_shapes_name_the_argument(bad, message):
    gx, reset, w, c0, h0 = random_case(0, 4, 3, 16)
    args = dict(gx=gx, reset=reset, w=w, c0=c0, h0=h0) | bad
    with pytest.raises(ValueError, match=message):
        lstm(args["gx"], args["reset"], args["w"], (args["c0"], args["h0"]))


@needs_kernel
def test_handler_rejects_bad_shapes_with_a_message():
    # The handler's own check, reached by calling the custom call directly.
    gx = jnp.zeros((4, 3, 64), jnp.float32)
    with pytest.raises(Exception, match="c0 has shape"):
        lstm_mod._forward_call(gx, jnp.zeros((4, 3), bool), jnp.zeros((16, 64)),
                               jnp.zeros((5, 16)), jnp.zeros((4, 16)), residuals=False)
