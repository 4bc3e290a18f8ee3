"""Tests of puffjax.advantage: the FFI custom call (CPU, CUDA) and the lax.scan reference.

The references here are written independently of the implementation: a plain
NumPy double loop in float64 over the recurrence, the textbook GAE sum, and the
IMPALA V-trace sum.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from puffjax import advantage as adv_mod
from puffjax import kernels
from puffjax.advantage import puff_advantage, puff_advantage_reference

REL_TOL = 1e-5
NAMES = ("values", "rewards", "terminals", "ratio")


# ----------------------------------------------------------------------------
# Independent references (float64)


def numpy_loop(values, rewards, terminals, ratio, gamma, gae_lambda, rho_clip, c_clip):
    """The recurrence, literally: double loop over rows and reversed time."""
    v, r, d, q = (np.asarray(x, np.float64) for x in (values, rewards, terminals, ratio))
    S, H = v.shape
    out = np.zeros((S, H), np.float64)
    for s in range(S):
        last = 0.0
        for t in range(H - 2, -1, -1):
            nnt = 1.0 - d[s, t + 1]
            rho = np.minimum(q[s, t], rho_clip)
            c = np.minimum(q[s, t], c_clip)
            delta = rho * (r[s, t + 1] + gamma * v[s, t + 1] * nnt - v[s, t])
            last = delta + gamma * gae_lambda * c * nnt * last
            out[s, t] = last
    return out


def textbook_gae(values, rewards, terminals, gamma, lam):
    """GAE as the discounted sum of TD errors, A_t = sum_k (gamma lam)^(k-t) prod(1-d) delta_k."""
    v, r, d = (np.asarray(x, np.float64) for x in (values, rewards, terminals))
    S, H = v.shape
    out = np.zeros((S, H))
    for s in range(S):
        delta = [r[s, k + 1] + gamma * v[s, k + 1] * (1 - d[s, k + 1]) - v[s, k]
                 for k in range(H - 1)]
        for t in range(H - 1):
            total, weight = 0.0, 1.0
            for k in range(t, H - 1):
                total += weight * delta[k]
                weight *= gamma * lam * (1 - d[s, k + 1])  # episode ends after k+1
            out[s, t] = total
    return out


def impala_vtrace(values, rewards, terminals, ratio, gamma, rho_bar, c_bar):
    """IMPALA (Espeholt et al. 2018) eq. 1, with per-step discount gamma_t = gamma (1 - d_{t+1}):

        v_s = V(x_s) + sum_{t=s}^{H-2} (prod_{i=s}^{t-1} gamma_i c_i) rho_t delta_t V,
        delta_t V = r_{t+1} + gamma_t V(x_{t+1}) - V(x_t),
        rho_t = min(rho_bar, pi/mu), c_i = min(c_bar, pi/mu),

    bootstrapped with v_{H-1} = V(x_{H-1}). Returns v_s - V(x_s).
    """
    v, r, d, q = (np.asarray(x, np.float64) for x in (values, rewards, terminals, ratio))
    S, H = v.shape
    out = np.zeros((S, H))
    for b in range(S):
        disc = gamma * (1 - d[b, 1:])
        rho = np.minimum(rho_bar, q[b, :-1])
        c = np.minimum(c_bar, q[b, :-1])
        td = r[b, 1:] + disc * v[b, 1:] - v[b, :-1]
        for s in range(H - 1):
            vs = v[b, s]
            trace = 1.0
            for t in range(s, H - 1):
                vs += trace * rho[t] * td[t]
                trace *= disc[t] * c[t]
            out[b, s] = vs - v[b, s]
    return out


def make_inputs(rng, S, H, ratio_range=(0.2, 3.0), p_term=0.1):
    values = rng.normal(0, 1, (S, H)).astype(np.float32)
    rewards = rng.normal(0, 1, (S, H)).astype(np.float32)
    terminals = (rng.random((S, H)) < p_term).astype(np.float32)
    # Terminals at the edges: t = 0 (never read: no t = -1 step) and t = H-1.
    terminals[0, 0] = 1.0
    terminals[-1, H - 1] = 1.0
    if S > 2:
        terminals[1, :] = 0.0
        terminals[1, 0] = terminals[1, H - 1] = 1.0
    ratio = rng.uniform(*ratio_range, (S, H)).astype(np.float32)
    return values, rewards, terminals, ratio


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


CLIPS = {
    "clips_active": dict(rho_clip=1.0, c_clip=1.0),
    "clips_mixed": dict(rho_clip=0.79, c_clip=2.88),  # breakout config
    "clips_inactive": dict(rho_clip=3.5, c_clip=3.5),  # above every ratio
}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(kernels, "_warned", set())


# ----------------------------------------------------------------------------
# Against the NumPy loop


@pytest.mark.parametrize("S", [1, 7, 64, 257])
@pytest.mark.parametrize("H", [2, 3, 64, 127])
@pytest.mark.parametrize("clips", list(CLIPS))
def test_ffi_matches_numpy_loop(S, H, clips):
    rng = np.random.default_rng(1000 * S + H + len(clips))
    x = make_inputs(rng, S, H)
    hp = dict(gamma=0.99, gae_lambda=0.95, **CLIPS[clips])
    fn = jax.jit(lambda *a: puff_advantage(*a, **hp))
    got = np.asarray(fn(*x))
    want = numpy_loop(*x, **hp)
    assert got.shape == (S, H) and got.dtype == np.float32
    assert np.all(got[:, H - 1] == 0)
    assert rel_err(got, want) < REL_TOL


@pytest.mark.parametrize("S,H", [(1, 2), (7, 3), (64, 64), (257, 127)])
@pytest.mark.parametrize("clips", list(CLIPS))
def test_reference_matches_numpy_loop(S, H, clips):
    rng = np.random.default_rng(7 * S + H)
    x = make_inputs(rng, S, H)
    hp = dict(gamma=0.97, gae_lambda=0.9, **CLIPS[clips])
    got = jax.jit(lambda *a: puff_advantage_reference(*a, **hp))(*x)
    assert rel_err(got, numpy_loop(*x, **hp)) < REL_TOL


def test_eager_call_without_jit():
    x = make_inputs(np.random.default_rng(3), 5, 9)
    hp = dict(gamma=0.9, gae_lambda=0.8, rho_clip=1.0, c_clip=1.0)
    assert rel_err(puff_advantage(*x, **hp), numpy_loop(*x, **hp)) < REL_TOL


def test_hyperparameters_accept_numpy_and_int():
    x = make_inputs(np.random.default_rng(4), 4, 6)
    got = puff_advantage(*x, gamma=np.float64(0.9), gae_lambda=1, rho_clip=np.float32(1.0),
                         c_clip=2)
    want = numpy_loop(*x, gamma=0.9, gae_lambda=1.0, rho_clip=1.0, c_clip=2.0)
    assert rel_err(got, want) < REL_TOL


def test_zero_rows():
    x = tuple(np.zeros((0, 8), np.float32) for _ in range(4))
    hp = dict(gamma=0.9, gae_lambda=0.8, rho_clip=1.0, c_clip=1.0)
    assert jax.jit(lambda *a: puff_advantage(*a, **hp))(*x).shape == (0, 8)


# ----------------------------------------------------------------------------
# Special cases


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("S,H", [(3, 2), (17, 33), (64, 64)])
def test_ratio_one_is_textbook_gae(impl, S, H):
    values, rewards, terminals, _ = make_inputs(np.random.default_rng(S * H), S, H)
    ones = np.ones((S, H), np.float32)
    gamma, lam = 0.995, 0.9
    got = impl(values, rewards, terminals, ones, gamma=gamma, gae_lambda=lam, rho_clip=1.0,
               c_clip=1.5)
    assert rel_err(got, textbook_gae(values, rewards, terminals, gamma, lam)) < REL_TOL


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("clips", list(CLIPS))
def test_lambda_one_is_impala_vtrace(impl, clips):
    S, H = 19, 40
    x = make_inputs(np.random.default_rng(99), S, H)
    gamma = 0.97
    got = impl(*x, gamma=gamma, gae_lambda=1.0, **CLIPS[clips])
    want = impala_vtrace(*x, gamma, CLIPS[clips]["rho_clip"], CLIPS[clips]["c_clip"])
    assert rel_err(got, want) < REL_TOL


# ----------------------------------------------------------------------------
# Transformations

HP = dict(gamma=0.99, gae_lambda=0.95, rho_clip=1.0, c_clip=1.0)


def _count_custom_calls(jitted, *args):
    return jitted.lower(*args).compile().as_text().count("custom-call(")


def test_vmap_mixed_batched_and_unbatched_is_one_call():
    rng = np.random.default_rng(5)
    B, S, H = 4, 6, 11
    values = rng.normal(size=(B, S, H)).astype(np.float32)
    rewards = rng.normal(size=(S, H)).astype(np.float32)
    terminals = (rng.random((B, S, H)) < 0.2).astype(np.float32)
    ratio = rng.uniform(0.2, 3, (S, H)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda v, r, d, q: puff_advantage(v, r, d, q, **HP),
                         in_axes=(0, None, 0, None)))
    got = np.asarray(f(values, rewards, terminals, ratio))
    assert got.shape == (B, S, H)
    for b in range(B):
        assert rel_err(got[b], numpy_loop(values[b], rewards, terminals[b], ratio, **HP)) < REL_TOL
    assert _count_custom_calls(f, values, rewards, terminals, ratio) == 1


def test_nested_vmap_and_non_leading_axis():
    rng = np.random.default_rng(6)
    B1, B2, S, H = 2, 3, 5, 8
    values = rng.normal(size=(B1, S, H)).astype(np.float32)
    rewards = rng.normal(size=(S, H, B2)).astype(np.float32)  # batched on the LAST axis
    terminals = (rng.random((S, H)) < 0.2).astype(np.float32)
    ratio = rng.uniform(0.2, 3, (B1, B2, S, H)).astype(np.float32)
    inner = jax.vmap(lambda v, r, d, q: puff_advantage(v, r, d, q, **HP),
                     in_axes=(None, 2, None, 0))
    f = jax.jit(jax.vmap(inner, in_axes=(0, None, None, 0)))
    got = np.asarray(f(values, rewards, terminals, ratio))
    assert got.shape == (B1, B2, S, H)
    for i in range(B1):
        for j in range(B2):
            want = numpy_loop(values[i], rewards[..., j], terminals, ratio[i, j], **HP)
            assert rel_err(got[i, j], want) < REL_TOL
    assert _count_custom_calls(f, values, rewards, terminals, ratio) == 1


def test_inside_scan_and_fori_loop():
    rng = np.random.default_rng(8)
    T, S, H = 3, 4, 10
    values = rng.normal(size=(T, S, H)).astype(np.float32)
    _, rewards, terminals, ratio = make_inputs(rng, S, H)

    def body(carry, v):
        a = puff_advantage(v, rewards, terminals, ratio, **HP)
        return carry + a.sum(), a

    total, got = jax.jit(lambda vs: jax.lax.scan(body, jnp.float32(0), vs))(values)
    want = np.stack([numpy_loop(values[t], rewards, terminals, ratio, **HP) for t in range(T)])
    assert rel_err(got, want) < REL_TOL
    np.testing.assert_allclose(total, want.sum(), rtol=1e-4)

    # fori_loop feeding the advantages back in as values.
    def fbody(i, v):
        return puff_advantage(v, rewards, terminals, ratio, **HP) + v

    got = jax.jit(lambda v: jax.lax.fori_loop(0, 3, fbody, v))(values[0])
    want = values[0].astype(np.float64)
    for _ in range(3):
        want = numpy_loop(want.astype(np.float32), rewards, terminals, ratio, **HP) + want
    assert rel_err(got, want) < 1e-4


def test_grad_treats_advantage_as_constant():
    x = make_inputs(np.random.default_rng(9), 6, 12)
    values = jnp.asarray(x[0])
    adv = np.asarray(puff_advantage(*x, **HP))

    # A loss that uses the advantages and also the values directly (like PPO).
    def loss(v, w):
        a = puff_advantage(v, *x[1:], **HP)
        return jnp.sum(a * w) + 0.5 * jnp.sum(v ** 2)

    w = jnp.ones_like(values) * 2.0
    gv, gw = jax.jit(jax.grad(loss, argnums=(0, 1)))(values, w)
    np.testing.assert_allclose(gv, values, rtol=1e-6)  # no gradient through the advantages
    np.testing.assert_allclose(gw, adv, rtol=1e-6)
    # grad of the advantage alone: zero; forward mode too.
    assert np.all(jax.grad(lambda v: puff_advantage(v, *x[1:], **HP).sum())(values) == 0)
    _, tangent = jax.jvp(lambda v: puff_advantage(v, *x[1:], **HP), (values,), (values,))
    assert np.all(np.asarray(tangent) == 0)


def test_traced_hyperparameter_is_type_error():
    x = make_inputs(np.random.default_rng(10), 3, 5)
    with pytest.raises(TypeError, match="gamma.*compile-time"):
        jax.jit(lambda g: puff_advantage(*x, gamma=g, gae_lambda=0.9, rho_clip=1.0,
                                         c_clip=1.0))(0.9)
    with pytest.raises(TypeError, match="c_clip"):
        jax.jit(lambda c: puff_advantage(*x, gamma=0.9, gae_lambda=0.9, rho_clip=1.0,
                                         c_clip=c))(1.0)
    # The reference accepts traced hyperparameters.
    got = jax.jit(lambda g: puff_advantage_reference(*x, gamma=g, gae_lambda=0.9, rho_clip=1.0,
                                                     c_clip=1.0))(0.9)
    assert rel_err(got, numpy_loop(*x, 0.9, 0.9, 1.0, 1.0)) < REL_TOL


# ----------------------------------------------------------------------------
# Fallback


def test_fallback_without_extension(monkeypatch):
    # As puffjax.kernels finds it when `from puffjax import _ffi` fails.
    monkeypatch.setattr(kernels, "_ext", None)
    monkeypatch.setattr(kernels, "IMPORT_ERROR", ImportError("No module named 'puffjax._ffi'"))
    monkeypatch.setattr(kernels, "_registered", {})
    x = make_inputs(np.random.default_rng(11), 7, 9)
    with pytest.warns(RuntimeWarning, match=r"puffjax\._ffi could not be imported.*pure-JAX"):
        got = jax.jit(lambda *a: puff_advantage(*a, **HP))(*x)
    assert rel_err(got, numpy_loop(*x, **HP)) < REL_TOL
    text = jax.jit(lambda *a: puff_advantage(*a, **HP)).lower(*x).as_text()
    assert "custom_call" not in text
    with warnings.catch_warnings():  # one-time warning
        warnings.simplefilter("error")
        puff_advantage(*x, **HP)


def test_fallback_when_platform_has_no_handler(monkeypatch):
    # Pretend handlers exist only for CUDA: on CPU the default branch of
    # lax.platform_dependent (the reference) must be lowered.
    if jax.default_backend() != "cpu":
        pytest.skip("needs the CPU backend")
    monkeypatch.setattr(kernels, "_registered", {kernels.ADVANTAGE: ("cuda",)})
    x = make_inputs(np.random.default_rng(12), 5, 7)
    with pytest.warns(RuntimeWarning, match="no FFI handler for platform 'cpu'"):
        f = jax.jit(lambda *a: puff_advantage(*a, **HP))
        got = f(*x)
    assert rel_err(got, numpy_loop(*x, **HP)) < REL_TOL
    assert "custom-call(" not in f.lower(*x).compile().as_text()


def test_cpu_handler_is_used():
    if jax.default_backend() != "cpu":
        pytest.skip("needs the CPU backend")
    if "cpu" not in kernels.platforms(kernels.ADVANTAGE):
        pytest.fail(f"puffjax._ffi not importable: {kernels.IMPORT_ERROR}")
    x = make_inputs(np.random.default_rng(13), 4, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = jax.jit(lambda *a: puff_advantage(*a, **HP))
        f(*x)
    assert "puffjax_puff_advantage" in f.lower(*x).compile().as_text()


# ----------------------------------------------------------------------------
# Bad input


def _good(S=4, H=6):
    return list(make_inputs(np.random.default_rng(14), S, H))


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, jnp.bfloat16])
def test_non_float32_is_value_error(impl, i, dtype):
    args = _good()
    args[i] = args[i].astype(dtype)
    with pytest.raises(ValueError, match=f"`{NAMES[i]}` must be a float32 array.*{np.dtype(dtype)}"):
        impl(*args, **HP)


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("shape", [(6,), (2, 4, 6), ()])
def test_wrong_rank_is_value_error(impl, shape):
    args = [np.zeros(shape, np.float32) for _ in range(4)]
    with pytest.raises(ValueError, match=r"`values` must have rank 2, shape \[S, H\]"):
        impl(*args, **HP)


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("i", [1, 2, 3])
@pytest.mark.parametrize("shape", [(4, 5), (3, 6), (4, 6, 1), (24,)])
def test_mismatched_shape_is_value_error(impl, i, shape):
    args = _good()
    args[i] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=rf"`{NAMES[i]}` must have the same shape as `values`, "
                                         rf"\[S, H\] = \(4, 6\); got shape"):
        impl(*args, **HP)


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("H", [0, 1])
def test_short_horizon_is_value_error(impl, H):
    args = [np.zeros((4, H), np.float32) for _ in range(4)]
    with pytest.raises(ValueError, match="horizon H .* must be >= 2"):
        impl(*args, **HP)


def test_errors_raise_at_trace_time_under_jit_and_vmap():
    args = _good()
    # (float64 would be canonicalised to float32 by jit when x64 is off; int32 is not.)
    args[2] = args[2].astype(np.int32)
    with pytest.raises(ValueError, match="`terminals` must be a float32 array.*int32"):
        jax.jit(lambda *a: puff_advantage(*a, **HP)).lower(*args)
    bad = np.zeros((3, 4, 1), np.float32)  # per-example shape (4, 1): H = 1
    with pytest.raises(ValueError, match="horizon"):
        jax.vmap(lambda v: puff_advantage(v, v, v, v, **HP))(bad)


# ----------------------------------------------------------------------------
# Non-finite inputs


@pytest.mark.parametrize("impl", [puff_advantage, puff_advantage_reference])
@pytest.mark.parametrize("where", ["values", "rewards", "terminals", "ratio", "inf_reward"])
def test_non_finite_inputs_propagate(impl, where):
    S, H = 9, 16
    x = list(make_inputs(np.random.default_rng(15), S, H))
    x[2][:] = 0.0  # no terminals: the NaN must reach t = 0 of its row
    k = {"values": 0, "rewards": 1, "terminals": 2, "ratio": 3, "inf_reward": 1}[where]
    x[k][3, 10] = np.inf if where == "inf_reward" else np.nan
    x[k][5, H - 1] = np.nan  # read only for t = H-2 (rewards, terminals, values)
    got = np.asarray(jax.jit(lambda *a: impl(*a, **HP))(*x))
    with np.errstate(invalid="ignore"):
        want = numpy_loop(*x, **HP)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    assert np.isnan(got[3, 0]) or np.isinf(got[3, 0])
    fin = np.isfinite(want)
    assert rel_err(got[fin], want[fin]) < REL_TOL
    assert np.all(np.isfinite(got[[0, 1, 2, 4, 6, 7, 8]]))  # other rows untouched


# ----------------------------------------------------------------------------
# CUDA


def _cuda_available():
    try:
        return len(jax.devices("cuda")) > 0
    except RuntimeError:
        return False


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")


def _need_cuda_handler():
    if "cuda" not in kernels.platforms(kernels.ADVANTAGE):
        pytest.fail("a CUDA device is present but puffjax._ffi was built without CUDA")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("S,H", [(1, 2), (7, 3), (64, 64), (257, 127), (1000, 33), (5, 300)])
@pytest.mark.parametrize("clips", list(CLIPS))
def test_cuda_matches_numpy_loop(S, H, clips):
    _need_cuda_handler()
    x = make_inputs(np.random.default_rng(S + H), S, H)
    hp = dict(gamma=0.99, gae_lambda=0.95, **CLIPS[clips])
    dev = jax.devices("cuda")[0]
    xs = [jax.device_put(a, dev) for a in x]
    f = jax.jit(lambda *a: puff_advantage(*a, **hp))
    assert "puffjax_puff_advantage" in f.lower(*xs).compile().as_text()
    got = f(*xs)
    assert rel_err(got, numpy_loop(*x, **hp)) < REL_TOL


def cuda_group_size(H):
    """Lanes per row the CUDA handler picks for horizon H (GroupSize in advantage_cuda.cu)."""
    g = 1
    while g < 32 and g < H:
        g *= 2
    return g


# Horizons selecting every group size of the CUDA handler, each with a full and (where there
# is one) a partial last segment of G steps. G = 1 only for H = 1, which puff_advantage
# rejects: test_handler_horizon_one calls the custom call directly for it.
GROUP_HORIZONS = {1: [1], 2: [2], 4: [3, 4], 8: [5, 8], 16: [9, 16], 32: [17, 32, 33, 64, 127, 300]}
assert all(cuda_group_size(H) == g for g, hs in GROUP_HORIZONS.items() for H in hs)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("H", [H for hs in GROUP_HORIZONS.values() for H in hs if H >= 2],
                         ids=lambda H: f"H{H}-G{cuda_group_size(H)}")
def test_cuda_every_group_size(H):
    _need_cuda_handler()
    S = 77  # 77 * G threads: the last block of 256 is partly idle for every G
    x = make_inputs(np.random.default_rng(cuda_group_size(H) * H), S, H)
    dev = jax.devices("cuda")[0]
    xs = [jax.device_put(a, dev) for a in x]
    f = jax.jit(lambda *a: puff_advantage(*a, **HP))
    assert "puffjax_puff_advantage" in f.lower(*xs).compile().as_text()
    assert rel_err(f(*xs), numpy_loop(*x, **HP)) < REL_TOL


@pytest.mark.parametrize("platform", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu,
                                                                         needs_cuda])])
def test_handler_horizon_one(platform):
    # The handlers accept H = 1 (all advantages 0): the CPU kernel's own branch, and the only
    # horizon for which the CUDA handler runs G = 1 (one thread per row).
    if platform not in kernels.platforms(kernels.ADVANTAGE):
        pytest.fail(f"puffjax._ffi has no {platform} handler for the advantage")
    x = make_inputs(np.random.default_rng(17), 77, 1)
    dev = jax.devices(platform)[0]
    xs = [jax.device_put(a, dev) for a in x]
    hp = {k: np.float32(v) for k, v in HP.items()}
    got = np.asarray(jax.jit(lambda *a: adv_mod._ffi_impl(*a, **hp))(*xs))
    assert got.shape == (77, 1) and np.all(got == 0)


@pytest.mark.gpu
@needs_cuda
def test_cuda_vmap_and_nan():
    _need_cuda_handler()
    rng = np.random.default_rng(16)
    B, S, H = 3, 50, 64
    values = rng.normal(size=(B, S, H)).astype(np.float32)
    _, rewards, terminals, ratio = make_inputs(rng, S, H)
    terminals[:] = 0
    rewards[4, 20] = np.nan
    dev = jax.devices("cuda")[0]
    f = jax.jit(jax.vmap(lambda v, r, d, q: puff_advantage(v, r, d, q, **HP),
                         in_axes=(0, None, None, None)))
    args = [jax.device_put(a, dev) for a in (values, rewards, terminals, ratio)]
    got = np.asarray(f(*args))
    for b in range(B):
        want = numpy_loop(values[b], rewards, terminals, ratio, **HP)
        np.testing.assert_array_equal(np.isnan(got[b]), np.isnan(want))
        fin = np.isfinite(want)
        assert rel_err(got[b][fin], want[fin]) < REL_TOL
    assert _count_custom_calls(f, *args) == 1
