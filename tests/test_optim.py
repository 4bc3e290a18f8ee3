import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from puffjax import optim


def _config(**kw):
    base = dict(optimizer="muon", learning_rate=0.015, anneal_lr=True, max_grad_norm=1.5,
                adam_beta1=0.95, adam_beta2=0.999, adam_eps=1e-12)
    base.update(kw)
    return types.SimpleNamespace(**base)


def _params(rng):
    return {
        "dense": {"kernel": jnp.asarray(rng.normal(size=(24, 48)), jnp.float32),
                  "bias": jnp.asarray(rng.normal(size=(48,)), jnp.float32)},
        "head": {"kernel": jnp.asarray(rng.normal(size=(48, 5)), jnp.float32)},
        "conv": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 4, 8)), jnp.float32)},
        "log_std": jnp.zeros((3,), jnp.float32),
    }


def _polar(m):
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64), full_matrices=False)
    return u @ vt


def test_muon_matrix_update_is_orthogonal_with_pufferlib_scale():
    rng = np.random.default_rng()
    params = _params(rng)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    lr = 0.1
    tx = optim.make_optimizer(_config(learning_rate=lr, anneal_lr=False, max_grad_norm=None), 10)
    upd, _ = jax.jit(tx.update)(grads, tx.init(params), params)

    # (in, out) Flax kernels: scale sqrt(max(1, out / in))
    for name, (fan_in, fan_out), m in [
        ("dense", (24, 48), upd["dense"]["kernel"]),
        ("head", (48, 5), upd["head"]["kernel"]),
        ("conv", (36, 8), upd["conv"]["kernel"].reshape(36, 8)),  # HWIO -> (H*W*I, O)
    ]:
        scale = np.sqrt(max(1.0, fan_out / fan_in))
        u = -np.asarray(m, np.float64) / (lr * scale)
        g = np.asarray(grads[name]["kernel"], np.float64).reshape(fan_in, fan_out)
        s = np.linalg.svd(u, compute_uv=False)
        # 5 quintic Newton-Schulz steps: singular values pushed into ~[0.6, 1.25]
        assert s.min() > 0.5 and s.max() < 1.3, (name, s)
        # and it points along the polar factor U V^T of the (first-step) momentum = gradient
        cos = np.sum(u * _polar(g)) / (np.linalg.norm(u) * np.linalg.norm(_polar(g)))
        assert cos > 0.97, (name, cos)

    # the same as optax.contrib.muon on a matrix (same momentum, NS, scaling)
    ref = optax.contrib.muon(lr, beta=0.95, eps=1e-7)
    k = {"k": params["dense"]["kernel"]}
    ref_upd, _ = jax.jit(ref.update)({"k": grads["dense"]["kernel"]}, ref.init(k), k)
    np.testing.assert_allclose(np.asarray(upd["dense"]["kernel"]), np.asarray(ref_upd["k"]), atol=1e-6)


def _small_params(rng):
    return {"dense": {"kernel": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32),
                      "bias": jnp.asarray(rng.normal(size=(48,)), jnp.float32)},
            "log_std": jnp.zeros((3,), jnp.float32)}


def test_muon_non_matrix_nesterov_momentum_like_heavyball():
    rng = np.random.default_rng()
    params = _small_params(rng)
    beta, lr = 0.9, 0.05
    tx = optim.make_optimizer(_config(learning_rate=lr, adam_beta1=beta, anneal_lr=False, max_grad_norm=None), 10)
    state = tx.init(params)
    update = jax.jit(tx.update)
    v = np.zeros(48)
    for _ in range(3):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
        upd, state = update(g, state, params)
        gb = np.asarray(g["dense"]["bias"], np.float64)
        v = beta * v + gb  # heavyball nesterov_momentum: v = beta v + g; u = g + beta v
        np.testing.assert_allclose(np.asarray(upd["dense"]["bias"]), -lr * (gb + beta * v), rtol=1e-5, atol=1e-7)


def test_muon_non_matrix_adam_option():
    rng = np.random.default_rng()
    params = _small_params(rng)
    cfg = _config(learning_rate=0.01, anneal_lr=False, max_grad_norm=None, adam_eps=1e-8, muon_non_matrix="adam")
    tx = optim.make_optimizer(cfg, 10)
    g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    upd, _ = jax.jit(tx.update)(g, tx.init(params), params)
    # first Adam step: -lr * g / (|g| + eps) = -lr * sign(g)
    np.testing.assert_allclose(np.asarray(upd["log_std"]), -0.01 * np.sign(np.asarray(g["log_std"])), rtol=1e-4)
    with pytest.raises(ValueError, match="non_matrix"):
        optim.make_optimizer(_config(), 10, non_matrix="sgd")


def test_adam_config_matches_optax_adam_with_clipping():
    rng = np.random.default_rng()
    params = _params(rng)
    cfg = _config(optimizer="adam", learning_rate=3e-3, anneal_lr=False, max_grad_norm=0.5,
                  adam_beta1=0.9, adam_beta2=0.99, adam_eps=1e-6)
    tx = optim.make_optimizer(cfg, 100)
    ref = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(3e-3, b1=0.9, b2=0.99, eps=1e-6))
    s, rs = tx.init(params), ref.init(params)
    both = jax.jit(lambda g, s, rs: (tx.update(g, s, params), ref.update(g, rs, params)))
    for _ in range(3):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 10, jnp.float32), params)
        (u, s), (ru, rs) = both(g, s, rs)
        for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ru)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-8)


def test_global_norm_clipping_applies_before_muon_branch():
    params = {"b": jnp.zeros(4)}
    lr, beta = 1.0, 0.5
    tx = optim.make_optimizer(_config(learning_rate=lr, adam_beta1=beta, anneal_lr=False, max_grad_norm=1.0), 5)
    g = {"b": jnp.array([30.0, 40.0, 0.0, 0.0])}  # norm 50 -> clipped to 1
    u, _ = jax.jit(tx.update)(g, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(u["b"]), -(1 + beta) * np.array([0.6, 0.8, 0, 0]), rtol=1e-6)


def test_cosine_schedule_anneals_to_zero():
    cfg = _config(learning_rate=0.2, anneal_lr=True)
    sched = optim.make_lr_schedule(cfg, 10)
    lrs = np.asarray(jax.jit(jax.vmap(sched))(jnp.arange(12)))
    np.testing.assert_allclose(lrs[:11], 0.2 * 0.5 * (1 + np.cos(np.pi * np.arange(11) / 10)), atol=1e-7)
    assert lrs[0] == pytest.approx(0.2) and lrs[10] == pytest.approx(0.0, abs=1e-8) and lrs[11] == pytest.approx(0.0, abs=1e-8)
    assert np.all(np.diff(lrs) <= 1e-9)
    # stepped once per epoch of 4 updates
    per_epoch = optim.make_lr_schedule(cfg, 12, updates_per_epoch=4)
    vals = [float(v) for v in jax.jit(jax.vmap(per_epoch))(jnp.arange(13))]
    assert vals[0] == vals[3] == pytest.approx(0.2) and vals[4] == vals[7] == pytest.approx(0.15)
    assert vals[12] == pytest.approx(0.0, abs=1e-8)
    # constant without annealing
    assert float(optim.make_lr_schedule(_config(anneal_lr=False), 10)(7)) == pytest.approx(0.015)


def test_linear_schedule_decays_to_zero():
    cfg = _config(learning_rate=0.2, anneal_lr=True, lr_decay="linear")
    lrs = np.asarray(jax.jit(jax.vmap(optim.make_lr_schedule(cfg, 10)))(jnp.arange(12)))
    np.testing.assert_allclose(lrs, 0.2 * (1 - np.minimum(np.arange(12), 10) / 10), atol=1e-7)
    per_epoch = optim.make_lr_schedule(cfg, 12, updates_per_epoch=4)
    vals = [float(v) for v in jax.jit(jax.vmap(per_epoch))(jnp.arange(13))]
    assert vals[0] == vals[3] == pytest.approx(0.2) and vals[4] == pytest.approx(0.2 * 2 / 3)
    assert vals[12] == pytest.approx(0.0, abs=1e-8)


def test_optimizer_lr_reaches_zero_in_updates():
    # with annealing, the last update (count == total_updates) has zero size
    params = {"b": jnp.zeros(3)}
    tx = optim.make_optimizer(_config(learning_rate=0.5, anneal_lr=True, max_grad_norm=None), 2)
    s = tx.init(params)
    g = {"b": jnp.ones(3)}
    sizes = []
    update = jax.jit(tx.update)
    for _ in range(3):
        u, s = update(g, s, params)
        sizes.append(float(jnp.abs(u["b"]).max()))
    assert sizes[0] > sizes[1] > 0 and sizes[2] == 0.0


def test_muon_dimension_numbers_for_flax_layouts():
    params = _params(np.random.default_rng())
    dims = optim.muon_dimension_numbers(params)
    assert dims["dense"]["kernel"] == optax.contrib.MuonDimensionNumbers((0,), 1)
    assert dims["conv"]["kernel"] == optax.contrib.MuonDimensionNumbers((0, 1, 2), 3)
    assert dims["dense"]["bias"] is None and dims["log_std"] is None


def test_bad_config():
    with pytest.raises(ValueError, match="optimizer"):
        optim.make_optimizer(_config(optimizer="sgd"), 10)
    with pytest.raises(ValueError, match="total_updates"):
        optim.make_optimizer(_config(anneal_lr=True), 0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        optim.make_optimizer(_config(max_grad_norm=-1.0), 10)
    with pytest.raises(ValueError, match="learning_rate"):
        optim.make_optimizer(_config(learning_rate=0.0), 10)


def test_policy_trains_with_muon():
    # integration: a supervised "imitate argmax(obs[:3])" task on the default policy
    import gymnasium as gym

    from puffjax.models import make_policy

    rng = np.random.default_rng()
    policy = make_policy(gym.spaces.Box(0, 1, (6,), np.float32), gym.spaces.Discrete(3), hidden_size=16)
    params = policy.init(jax.random.key(int(rng.integers(1 << 30))))
    tx = optim.make_optimizer(_config(learning_rate=0.05), 60)
    obs = jnp.asarray(rng.uniform(size=(32, 4, 6)), jnp.float32)
    target = jnp.argmax(obs[..., :3], -1)
    reset = jnp.zeros((32, 4), bool)

    def loss_fn(p):
        out = policy.unroll(p, obs, reset)
        return -policy.dist.log_prob(out.action_params, target).mean()

    @jax.jit
    def train(params):
        def body(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (p, _), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=60)
        return p, losses

    _, losses = train(params)
    losses = np.asarray(losses)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses[[0, -1]]
