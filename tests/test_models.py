import warnings

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from puffjax import value_head as dl
from puffjax import actions as D
from puffjax.config import Config, load_config, load_config_file, parse_overrides, validate
from puffjax.models import KINDS, STAGES, PolicyOutput, count_params, make_policy
from puffjax.models.encoders import CNNEncoder

BREAKOUT_OBS = gym.spaces.Box(0.0, 1.0, (118,), np.float32)
ACTION_SPACES = [
    gym.spaces.Discrete(3),
    gym.spaces.MultiDiscrete([2, 3]),
    gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
]


def _key():
    return jax.random.key(np.random.randint(1 << 30))


def _obs(space, shape_prefix, rng):
    if space.dtype == np.uint8:
        return rng.integers(0, 256, size=shape_prefix + space.shape).astype(np.uint8)
    return rng.uniform(0, 1, size=shape_prefix + space.shape).astype(np.float32)


def _check_action_params(policy, ap, lead):
    if isinstance(policy.dist, D.Categorical):
        assert ap.shape == lead + (policy.dist.n,)
    elif isinstance(policy.dist, D.MultiCategorical):
        assert tuple(x.shape for x in ap) == tuple(lead + (n,) for n in policy.dist.nvec)
    else:
        mean, log_std = ap
        assert mean.shape == log_std.shape == lead + (policy.dist.dim,)


def _sds(shape, dtype):
    return jax.ShapeDtypeStruct(shape, dtype)


@pytest.mark.parametrize("value_head", ["scalar", "hl_gauss"])
@pytest.mark.parametrize(
    "kind,obs_space",
    [
        ("default", gym.spaces.Box(-1, 1, (4, 3), np.float32)),
        ("lstm", BREAKOUT_OBS),
        ("cnn", gym.spaces.Box(0, 255, (11, 11), np.uint8)),
        ("cnn_lstm", gym.spaces.Box(0, 255, (8, 8, 2), np.uint8)),
    ],
)
def test_output_shapes(kind, obs_space, value_head):
    # shapes only (jax.eval_shape traces without compiling: keeps the suite fast)
    b, t = 3, 4
    for action_space in ACTION_SPACES:
        policy = make_policy(obs_space, action_space, kind=kind, hidden_size=16,
                             value_head=value_head, num_bins=11)
        params = jax.eval_shape(policy.init, jax.random.key(0))
        carry = policy.initial_carry(b)
        assert policy.is_recurrent == (kind in ("lstm", "cnn_lstm"))
        if policy.is_recurrent:
            assert [c.shape for c in jax.tree.leaves(carry)] == [(b, 16), (b, 16)]  # one layer: (c, h)
        else:
            assert carry == ()
        out, carry2 = jax.eval_shape(policy.step, params, _sds((b,) + obs_space.shape, obs_space.dtype),
                                     carry, _sds((b,), bool))
        assert isinstance(out, PolicyOutput)
        assert jax.tree.structure(carry2) == jax.tree.structure(carry)
        _check_action_params(policy, out.action_params, (b,))
        assert out.value.shape == (b,) and out.value.dtype == jnp.float32
        out_u = jax.eval_shape(policy.unroll, params, _sds((b, t) + obs_space.shape, obs_space.dtype),
                               _sds((b, t), bool))
        _check_action_params(policy, out_u.action_params, (b, t))
        assert out_u.value.shape == (b, t)
        if value_head == "hl_gauss":
            assert out.value_logits.shape == (b, 11) and out_u.value_logits.shape == (b, t, 11)
            assert policy.support == dl.make_support(-10.0, 10.0, 11)
        else:
            assert out.value_logits is None and policy.support is None


def test_large_image_uses_nature_cnn():
    policy = make_policy(gym.spaces.Box(0, 255, (84, 84, 4), np.uint8), gym.spaces.Discrete(6), kind="cnn")
    params = jax.eval_shape(policy.init, jax.random.key(0))
    assert params["conv_0"]["kernel"].shape == (8, 8, 4, 32)
    assert params["conv_2"]["kernel"].shape == (3, 3, 64, 64)
    assert params["encoder"]["kernel"].shape == (7 * 7 * 64, 128)


def test_breakout_param_count():
    policy = make_policy(BREAKOUT_OBS, gym.spaces.Discrete(3), kind="lstm", hidden_size=128)
    params = jax.eval_shape(policy.init, jax.random.key(0))
    # PufferLib: 147,844 = this + 512, torch's second LSTM bias vector (b_ih and b_hh),
    # which is redundant with the first; puffjax's LSTM has one.
    assert count_params(params) == 147_332 == 147_844 - 4 * 128
    ff = make_policy(BREAKOUT_OBS, gym.spaces.Discrete(3), kind="default")
    assert count_params(jax.eval_shape(ff.init, jax.random.key(0))) == (118 * 128 + 128) + (128 * 3 + 3) + (128 + 1)


@pytest.fixture(scope="module")
def breakout():
    policy = make_policy(BREAKOUT_OBS, gym.spaces.Discrete(3), kind="lstm", hidden_size=128)
    return policy, policy.init(_key())


def _random_params(policy, rng, scale=0.3):
    shapes = jax.eval_shape(policy.init, jax.random.key(0))
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, scale, s.shape), s.dtype), shapes)


def _assert_orthogonal(kernel, gain):
    k = np.asarray(kernel, np.float64)
    if k.ndim > 2:
        k = k.reshape(-1, k.shape[-1])
    gram = k.T @ k if k.shape[0] >= k.shape[1] else k @ k.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(gram.shape[0]), atol=1e-4 * max(gain**2, 1))


def test_orthogonal_init_gains_and_zero_biases(breakout):
    policy, params = breakout
    _assert_orthogonal(params["encoder"]["kernel"], np.sqrt(2))
    _assert_orthogonal(params["actor"]["kernel"], 0.01)
    _assert_orthogonal(params["value"]["kernel"], 1.0)
    assert params["lstm"]["kernel_x"].shape == params["lstm"]["kernel_h"].shape == (128, 512)
    _assert_orthogonal(params["lstm"]["kernel_x"], 1.0)
    _assert_orthogonal(params["lstm"]["kernel_h"], 1.0)
    biases = [x for path, x in jax.tree_util.tree_leaves_with_path(params) if "bias" in jax.tree_util.keystr(path)]
    assert len(biases) == 4
    for bias in biases:
        assert np.all(np.asarray(bias) == 0)


@pytest.mark.parametrize("v_min, v_max, symlog, start", [
    (-10.0, 220.0, False, 0.0), (-10.0, 220.0, True, 0.0), (-1.0, 1.0, False, 0.0), (5.0, 50.0, False, 5.0)])
def test_categorical_value_head_starts_near_zero(v_min, v_max, symlog, start):
    # a zero bias would start at the support's middle (105 for [-10, 220]); the bias is the log of
    # the HL-Gauss target of 0 (clipped into the support), so the first estimates sit there
    rng = np.random.default_rng()
    space = gym.spaces.Box(-1, 1, (7,), np.float32)
    policy = make_policy(space, gym.spaces.Discrete(3), hidden_size=64, value_head="hl_gauss",
                         v_min=v_min, v_max=v_max, symlog=symlog)
    params = policy.init(_key())
    support = dl.make_support(v_min, v_max, 101, symlog=symlog)
    target = np.maximum(np.asarray(dl.hl_gauss_target(np.float32(0.0), support), np.float64), 1e-6)
    np.testing.assert_allclose(np.exp(np.asarray(params["value"]["bias"], np.float64)), target, rtol=1e-4, atol=1e-7)
    obs = rng.uniform(-1, 1, (256, 1, 7)).astype(np.float32)
    value = np.asarray(policy.unroll(params, obs, np.zeros((256, 1), bool)).value)
    width = (v_max - v_min) / 100
    assert np.all(np.abs(value - start) < (0.5 if symlog else 2 * width)), (value.min(), value.max())


def test_cnn_init_and_forward():
    rng = np.random.default_rng()
    space = gym.spaces.Box(0, 255, (11, 11, 3), np.uint8)
    policy = make_policy(space, gym.spaces.Box(-1, 1, (2,)), kind="cnn", hidden_size=16,
                         value_head="hl_gauss", num_bins=11)
    params = policy.init(_key())
    _assert_orthogonal(params["conv_0"]["kernel"], np.sqrt(2))
    _assert_orthogonal(params["conv_1"]["kernel"], np.sqrt(2))
    _assert_orthogonal(params["encoder"]["kernel"], np.sqrt(2))
    _assert_orthogonal(params["actor"]["kernel"], 0.01)
    assert np.all(np.asarray(params["log_std"]) == 0) and params["log_std"].shape == (2,)
    out = jax.jit(policy.unroll)(params, _obs(space, (2, 3), rng), np.zeros((2, 3), bool))
    for x in jax.tree.leaves(out):
        assert np.all(np.isfinite(np.asarray(x)))
    p = np.exp(np.asarray(out.value_logits, np.float64))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(out.value), p @ np.linspace(-10, 10, 11), atol=1e-5)


def test_exact_gelu_and_uint8_scaling():
    rng = np.random.default_rng()
    f32 = make_policy(gym.spaces.Box(0, 1, (6,), np.float32), gym.spaces.Discrete(2))
    u8 = make_policy(gym.spaces.Box(0, 255, (6,), np.uint8), gym.spaces.Discrete(2))
    params = _random_params(f32, rng)
    raw = rng.integers(0, 256, size=(5, 6)).astype(np.uint8)

    @jax.jit
    def f(params, x, raw):
        return f32.step(params, x, (), None)[0], u8.step(params, raw, (), None)[0]

    a, b = f(params, raw.astype(np.float32) / 255.0, raw)
    np.testing.assert_allclose(np.asarray(a.value), np.asarray(b.value), rtol=1e-5, atol=1e-6)
    # the forward pass by hand, with the exact (erf) GELU
    from math import erf, sqrt

    x = raw.astype(np.float64) / 255.0
    h = x @ np.asarray(params["encoder"]["kernel"], np.float64) + np.asarray(params["encoder"]["bias"])
    h = h * 0.5 * (1 + np.vectorize(erf)(h / sqrt(2)))
    v = h @ np.asarray(params["value"]["kernel"], np.float64)[:, 0] + np.asarray(params["value"]["bias"])[0]
    np.testing.assert_allclose(np.asarray(a.value), v, rtol=1e-4, atol=1e-5)
    logits = h @ np.asarray(params["actor"]["kernel"], np.float64) + np.asarray(params["actor"]["bias"])
    np.testing.assert_allclose(np.asarray(a.action_params), logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layers", [2, 3])
def test_deeper_feed_forward_policy_matches_numpy(layers):
    """policy.layers on a feed-forward kind: the encoder and layers - 1 more Dense + GELU layers."""
    from math import erf, sqrt

    rng = np.random.default_rng()
    policy = make_policy(gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(3), hidden_size=8, layers=layers)
    assert not policy.is_recurrent and policy.initial_carry(2) == ()
    params = _random_params(policy, rng)
    assert count_params(params) == (5 * 8 + 8) + (layers - 1) * (8 * 8 + 8) + (8 * 3 + 3) + (8 + 1)
    x = rng.uniform(-1, 1, (4, 5)).astype(np.float32)
    out, _ = jax.jit(policy.step)(params, x, (), None)
    gelu = np.vectorize(lambda v: v * 0.5 * (1 + erf(v / sqrt(2))))
    h = x.astype(np.float64)
    for name in ["encoder"] + [f"dense_{i}" for i in range(1, layers)]:
        h = gelu(h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"]))
    logits = h @ np.asarray(params["actor"]["kernel"], np.float64) + np.asarray(params["actor"]["bias"])
    np.testing.assert_allclose(np.asarray(out.action_params), logits, rtol=1e-4, atol=1e-5)
    v = h @ np.asarray(params["value"]["kernel"], np.float64)[:, 0] + np.asarray(params["value"]["bias"])[0]
    np.testing.assert_allclose(np.asarray(out.value), v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_separate_critic_matches_numpy(activation):
    """policy.critic = separate: the actor and the critic are two towers of the same shape that
    share no parameters (CleanRL's and PureJaxRL's actor-critic), with the chosen activation."""
    rng = np.random.default_rng()
    policy = make_policy(gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(3), hidden_size=8, layers=2,
                         critic="separate", activation=activation)
    params = _random_params(policy, rng)
    assert set(params) == {"encoder", "dense_1", "actor", "critic_encoder", "critic_dense_1", "value"}
    assert count_params(params) == 2 * ((5 * 8 + 8) + (8 * 8 + 8)) + (8 * 3 + 3) + (8 + 1)
    x = rng.uniform(-1, 1, (4, 5)).astype(np.float32)
    out, _ = jax.jit(policy.step)(params, x, (), None)
    act = {"relu": lambda v: np.maximum(v, 0.0), "tanh": np.tanh}[activation]

    def tower(prefix):
        h = x.astype(np.float64)
        for name in (f"{prefix}encoder", f"{prefix}dense_1"):
            h = act(h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"]))
        return h

    logits = tower("") @ np.asarray(params["actor"]["kernel"], np.float64) + np.asarray(params["actor"]["bias"])
    np.testing.assert_allclose(np.asarray(out.action_params), logits, rtol=1e-4, atol=1e-5)
    v = tower("critic_") @ np.asarray(params["value"]["kernel"], np.float64)[:, 0] + np.asarray(params["value"]["bias"])[0]
    np.testing.assert_allclose(np.asarray(out.value), v, rtol=1e-4, atol=1e-5)
    # the value's gradient reaches only the critic's tower, the logits' only the actor's
    g_v = jax.grad(lambda p: policy.step(p, x, (), None)[0].value.sum())(params)
    g_a = jax.grad(lambda p: policy.step(p, x, (), None)[0].action_params.sum())(params)
    for name in ("encoder", "dense_1", "actor"):
        assert not any(np.any(leaf) for leaf in jax.tree.leaves(g_v[name]))
    for name in ("critic_encoder", "critic_dense_1", "value"):
        assert not any(np.any(leaf) for leaf in jax.tree.leaves(g_a[name]))


def test_separate_critic_on_a_cnn():
    policy = make_policy(gym.spaces.Box(0, 255, (11, 11, 3), np.uint8), gym.spaces.Discrete(4), kind="cnn",
                         hidden_size=16, critic="separate")
    params = policy.init(jax.random.PRNGKey(0))
    assert {"conv_0", "critic_conv_0", "conv_1", "critic_conv_1", "encoder", "critic_encoder"} <= set(params)
    obs = np.random.default_rng().integers(0, 256, (2, 11, 11, 3), dtype=np.uint8)
    out, _ = policy.step(params, obs, ())
    assert out.action_params.shape == (2, 4) and out.value.shape == (2,)


def test_orthogonal_init_matches_jax_and_stays_unbatched_under_vmap():
    """puffjax's orthogonal initialiser gives jax's values, and under jax.vmap (seeds) every QR
    factorisation is of one matrix: XLA's CPU runtime blocks a pool thread for a batched one, and
    two of them at once on two threads never finish (a vmapped make_train hung so)."""
    import re

    from puffjax.models.layer_init import orthogonal

    rng = np.random.default_rng()
    for shape, gain in (((5, 8), 1.0), ((8, 5), 0.01), ((3, 3, 4, 8), 2 ** 0.5), ((64, 1), 1.0)):
        key = jax.random.PRNGKey(int(rng.integers(1 << 30)))
        ours, theirs = orthogonal(gain)(key, shape), jax.nn.initializers.orthogonal(gain)(key, shape, jnp.float32)
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
        keys = jax.random.split(key, 3)
        batched = jax.jit(jax.vmap(lambda k: orthogonal(gain)(k, shape)))(keys)
        for i in range(3):
            np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(orthogonal(gain)(keys[i], shape)))
    policy = make_policy(gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(3), hidden_size=8, layers=2,
                         critic="separate")
    hlo = jax.jit(jax.vmap(policy._init)).lower(jax.random.split(jax.random.PRNGKey(0), 4)).compile().as_text()
    qrs = [line for line in hlo.splitlines() if "geqrf" in line and "custom-call(" in line]
    assert qrs and all(re.search(r"custom-call\(.*operand_layout_constraints=\{f32\[\d+,\d+\]", q) for q in qrs)


def test_recurrent_unroll_equals_repeated_step_with_resets(breakout):
    rng = np.random.default_rng()
    policy, params = breakout
    b, t = 4, 9
    obs = _obs(BREAKOUT_OBS, (b, t), rng)
    reset = rng.random((b, t)) < 0.25
    reset[1, 5] = True
    no_reset = reset.copy()
    no_reset[1, 5] = False
    fresh_reset = reset[1:2, 5:].copy()
    fresh_reset[0, 0] = False  # irrelevant for a zero carry

    @jax.jit
    def f(params, obs, reset, no_reset, fresh_reset):
        out_u = policy.unroll(params, obs, reset)
        carry = policy.initial_carry(b)
        steps = []
        for i in range(t):
            out, carry = policy.step(params, obs[:, i], carry, reset[:, i])
            steps.append(out)
        steps = jax.tree.map(lambda *xs: jnp.stack(xs, 1), *steps)
        # a reset mid-sequence is the same as starting a fresh unroll there
        fresh = policy.unroll(params, obs[1:2, 5:], fresh_reset)
        return out_u, steps, fresh, policy.unroll(params, obs, no_reset)

    out_u, steps, fresh, out_n = jax.tree.map(np.asarray, f(params, obs, reset, no_reset, fresh_reset))
    np.testing.assert_allclose(out_u.value, steps.value, atol=1e-5)
    np.testing.assert_allclose(out_u.action_params, steps.action_params, atol=1e-5)
    np.testing.assert_allclose(out_u.value[1, 5:], fresh.value[0], atol=1e-5)
    np.testing.assert_allclose(out_u.action_params[1, 5:], fresh.action_params[0], atol=1e-5)
    # without the reset the outputs differ (the carry matters)
    assert not np.allclose(out_n.value[1, 5], out_u.value[1, 5], atol=1e-7)
    np.testing.assert_allclose(out_n.value[[0, 2, 3]], out_u.value[[0, 2, 3]], atol=1e-6)


def test_step_reset_zeroes_carry_rows(breakout):
    rng = np.random.default_rng()
    policy, params = breakout
    obs = _obs(BREAKOUT_OBS, (3,), rng)
    carry = (tuple(jnp.asarray(rng.normal(size=(3, 128)), jnp.float32) for _ in range(2)),)  # layer 0: (c, h)
    reset = np.array([True, False, True])

    @jax.jit
    def f(params, obs, carry):
        return (policy.step(params, obs, carry, reset),
                policy.step(params, obs, policy.initial_carry(3), np.zeros(3, bool)))

    (out, new), (out0, new0) = jax.tree.map(np.asarray, f(params, obs, carry))
    for r in (0, 2):
        np.testing.assert_allclose(out.value[r], out0.value[r], atol=1e-6)
        np.testing.assert_allclose(new[0][1][r], new0[0][1][r], atol=1e-6)  # layer 0's h
    assert not np.allclose(new[0][1][1], new0[0][1][1])


def test_closes_over_inside_jit_and_grads_flow():
    rng = np.random.default_rng()
    policy = make_policy(BREAKOUT_OBS, gym.spaces.Box(-1, 1, (2,), np.float32), kind="lstm",
                         hidden_size=16)
    params = _random_params(policy, rng)
    obs = jnp.asarray(_obs(BREAKOUT_OBS, (2, 3), rng))
    act = jnp.ones((2, 3, 2))

    def loss(p):
        out = policy.unroll(p, obs, jnp.zeros((2, 3), bool))
        return -policy.dist.log_prob(out.action_params, act).mean() + out.value.mean()

    grads = jax.jit(jax.grad(loss))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert np.abs(np.asarray(grads["log_std"])).sum() > 0
    assert np.abs(np.asarray(grads["lstm"]["kernel_h"])).sum() > 0
    # the policy can also be a static argument (it hashes by identity)
    g = jax.jit(lambda pol, p: p["log_std"] + pol.hidden_size, static_argnums=0)
    np.testing.assert_allclose(np.asarray(g(policy, params)), np.asarray(params["log_std"]) + 16)


@pytest.mark.parametrize(
    "obs_space,kind,exc",
    [
        (gym.spaces.Text(4), "default", TypeError),
        (gym.spaces.Dict({"x": gym.spaces.Graph(gym.spaces.Box(0, 1, (2,)), None)}), "default", TypeError),
        (gym.spaces.Dict({"x": gym.spaces.Box(0, 1, (2, 2))}), "cnn", ValueError),
        (gym.spaces.Box(0, 1, (5,)), "cnn", ValueError),
        (gym.spaces.Box(0, 1, (2, 2, 2, 2)), "cnn", ValueError),
    ],
)
def test_bad_observation_spaces(obs_space, kind, exc):
    with pytest.raises(exc, match="observation"):
        make_policy(obs_space, gym.spaces.Discrete(2), kind=kind)


def test_bad_arguments():
    obs = gym.spaces.Box(0, 1, (3,))
    with pytest.raises(TypeError, match="action space"):
        make_policy(obs, gym.spaces.Dict({"a": gym.spaces.Sequence(gym.spaces.Discrete(2))}))
    with pytest.raises(ValueError, match="kind"):
        make_policy(obs, gym.spaces.Discrete(2), kind="transformer")
    with pytest.raises(ValueError, match="value_head"):
        make_policy(obs, gym.spaces.Discrete(2), value_head="c51")
    with pytest.raises(ValueError, match="hidden_size"):
        make_policy(obs, gym.spaces.Discrete(2), hidden_size=0)
    with pytest.raises(ValueError, match="v_min"):
        make_policy(obs, gym.spaces.Discrete(2), value_head="hl_gauss", v_min=1.0, v_max=-1.0)
    with pytest.raises(ValueError, match="num_bins"):
        make_policy(obs, gym.spaces.Discrete(2), value_head="hl_gauss", num_bins=1)
    with pytest.raises(ValueError, match="critic"):
        make_policy(obs, gym.spaces.Discrete(2), critic="twin")
    with pytest.raises(ValueError, match="feed-forward"):
        make_policy(obs, gym.spaces.Discrete(2), kind="lstm", critic="separate")
    with pytest.raises(ValueError, match="activation"):
        make_policy(obs, gym.spaces.Discrete(2), activation="swish")
    cfg = Config()
    cfg.policy.kind, cfg.policy.critic = "mingru", "separate"
    with pytest.raises(ValueError, match="policy.critic = separate needs a feed-forward"):
        validate(cfg)
    cfg = Config()
    cfg.train.lr_decay = "step"
    with pytest.raises(ValueError, match="train.lr_decay"):
        validate(cfg)


def test_uint8_grid_scaled_by_space_bound():
    # A grid of cell codes 0/1/2 (Squared) is scaled by 1/2, not 1/255, so it reaches the net at O(1).
    policy = make_policy(gym.spaces.Box(0, 2, (3, 3), np.uint8), gym.spaces.Discrete(5))
    x = np.array([[[0, 1, 2]] * 3], np.uint8)
    np.testing.assert_allclose(np.asarray(policy.preprocess(x)), x.astype(np.float32) / 2.0)


_MIXED = gym.spaces.Dict({"d": gym.spaces.Discrete(3), "c": gym.spaces.Box(-1, 1, (2,), np.float32)})
_IMAGE = gym.spaces.Box(0, 255, (8, 8, 2), np.uint8)
_FLAT = gym.spaces.Box(-1, 1, (7,), np.float32)
_MLP = {"encoder": {"kernel": (7, 8), "bias": (8,)}}
_CNN = {"conv_0": {"kernel": (3, 3, 2, 32), "bias": (32,)}, "conv_1": {"kernel": (3, 3, 32, 64), "bias": (64,)},
        "encoder": {"kernel": (4 * 4 * 64, 8), "bias": (8,)}}
_HEADS = {"actor": {"kernel": (8, 3), "bias": (3,)}, "value": {"kernel": (8, 11), "bias": (11,)}}
_DENSE = {"dense_1": {"kernel": (8, 8), "bias": (8,)}}
_LSTM = {name: {"kernel_x": (8, 32), "kernel_h": (8, 32), "bias": (32,)} for name in ("lstm", "lstm_1")}
_MINGRU = {name: {"proj": {"kernel": (8, 16), "bias": (16,)}} for name in ("mingru", "mingru_1")}


@pytest.mark.parametrize("kind, obs_space, action_space, value_head, expected", [
    ("default", _FLAT, gym.spaces.Discrete(3), "hl_gauss", {**_MLP, **_DENSE, **_HEADS}),
    ("lstm", _FLAT, gym.spaces.Discrete(3), "hl_gauss", {**_MLP, **_LSTM, **_HEADS}),
    ("mingru", _FLAT, gym.spaces.Discrete(3), "hl_gauss", {**_MLP, **_MINGRU, **_HEADS}),
    ("cnn", _IMAGE, gym.spaces.Discrete(3), "hl_gauss", {**_CNN, **_DENSE, **_HEADS}),
    ("cnn_lstm", _IMAGE, gym.spaces.Discrete(3), "hl_gauss", {**_CNN, **_LSTM, **_HEADS}),
    ("cnn_mingru", _IMAGE, gym.spaces.Discrete(3), "hl_gauss", {**_CNN, **_MINGRU, **_HEADS}),
    ("default", _FLAT, _MIXED, "scalar",
     {**_MLP, **_DENSE, "actor": {"kernel": (8, 5), "bias": (5,)}, "log_std": (2,),
      "value": {"kernel": (8, 1), "bias": (1,)}}),
])
def test_parameter_tree_is_pinned(kind, obs_space, action_space, value_head, expected):
    """The parameter names and shapes of each kind (with 2 layers): checkpoints depend on them."""
    policy = make_policy(obs_space, action_space, kind=kind, hidden_size=8, layers=2, value_head=value_head,
                         num_bins=11)
    shapes = jax.tree.map(lambda x: x.shape, jax.eval_shape(policy.init, jax.random.key(0)))
    assert shapes == expected


def test_every_kind_has_its_stages():
    assert tuple(STAGES) == KINDS
    assert {kind for kind, (encoder, _) in STAGES.items() if encoder is CNNEncoder} == {"cnn", "cnn_lstm", "cnn_mingru"}


@pytest.mark.parametrize("old, new", [("recurrent", "lstm"), ("cnn_recurrent", "cnn_lstm")])
def test_renamed_kinds_build_the_new_kind_with_a_warning(old, new):
    space = BREAKOUT_OBS if new == "lstm" else _IMAGE
    with pytest.warns(FutureWarning, match=f"^make_policy: kind '{old}' is deprecated; use '{new}'$"):
        policy = make_policy(space, gym.spaces.Discrete(3), kind=old, hidden_size=16)
    assert policy.kind == new and policy.is_recurrent
    fresh = make_policy(space, gym.spaces.Discrete(3), kind=new, hidden_size=16)
    key = jax.random.key(0)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), policy.init(key), fresh.init(key)))


def test_renamed_kinds_in_configs(tmp_path):
    """TOML files, command-line overrides and Python dicts take the old names, as the new ones."""
    path = tmp_path / "old.toml"
    path.write_text('[env]\nname = "memory"\n\n[policy]\nkind = "cnn_recurrent"\n')
    with pytest.warns(FutureWarning, match="^policy.kind 'cnn_recurrent' is deprecated; use 'cnn_lstm'$"):
        assert load_config_file(str(path)).policy.kind == "cnn_lstm"
    with pytest.warns(FutureWarning, match="'recurrent' is deprecated; use 'lstm'"):
        assert load_config("memory", **parse_overrides(["--policy.kind", "recurrent"])).policy.kind == "lstm"
    with pytest.warns(FutureWarning, match="'recurrent' is deprecated; use 'lstm'"):
        assert load_config("cartpole", policy={"kind": "recurrent"}).policy.kind == "lstm"
    cfg = Config()
    cfg.policy.kind = "recurrent"
    with pytest.warns(FutureWarning):
        validate(cfg)
    assert cfg.policy.kind == "lstm"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(cfg)  # once renamed, no more warnings
    with pytest.raises(ValueError, match="policy.kind must be one of default, lstm, mingru"):
        load_config("memory", **{"policy.kind": "gru"})
