import math

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from puffjax import actions as D


def _np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def test_for_space_selection():
    assert D.for_space(gym.spaces.Discrete(5)) == D.Categorical(5)
    assert D.for_space(gym.spaces.Discrete(5, start=2)).start == 2
    md = D.for_space(gym.spaces.MultiDiscrete([3, 4]))
    assert isinstance(md, D.MultiCategorical) and md.nvec == (3, 4) and md.num_params == 7
    mb = D.for_space(gym.spaces.MultiBinary(3))
    assert mb.nvec == (2, 2, 2)
    g = D.for_space(gym.spaces.Box(-2.0, 2.0, (2, 3), np.float32))
    assert isinstance(g, D.DiagGaussian) and g.dim == 6 and g.shape == (2, 3)
    hash(g), hash(md)  # static, hashable


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Dict({"a": gym.spaces.Text(5)}),
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Sequence(gym.spaces.Discrete(2)))),
        gym.spaces.Box(0, 5, (2,), np.int32),
        gym.spaces.Dict({}),
        "not a space",
    ],
)
def test_unsupported_action_spaces(space):
    with pytest.raises((TypeError, ValueError), match="action space"):
        D.for_space(space)


def _key():
    return jax.random.key(np.random.randint(1 << 30))


def _all(d, params, action):
    return jax.jit(lambda p, a: (d.log_prob(p, a), d.entropy(p), d.mode(p)))(params, action)


def test_categorical_log_prob_entropy_closed_form():
    rng = np.random.default_rng()
    logits = rng.normal(0, 2, size=(6, 5)).astype(np.float32)
    actions = rng.integers(0, 5, size=(6,))
    d = D.Categorical(5)
    got_lp, got_ent, mode = map(np.asarray, _all(d, jnp.asarray(logits), jnp.asarray(actions)))
    lp = _np_log_softmax(logits)
    np.testing.assert_allclose(got_lp, lp[np.arange(6), actions], atol=1e-5)
    np.testing.assert_allclose(got_ent, -(np.exp(lp) * lp).sum(-1), atol=1e-5)
    np.testing.assert_array_equal(mode, logits.argmax(-1))


def test_categorical_sampling_frequencies():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    d = D.Categorical(4)
    logits = np.broadcast_to(np.log(probs).astype(np.float32), (40000, 4))
    a = np.asarray(jax.jit(d.sample)(_key(), logits))
    assert a.dtype == np.int32 and a.shape == (40000,)
    freq = np.bincount(a, minlength=4) / a.size
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert np.all(d.to_env_action(a) == a)
    assert np.all(D.Categorical(4, start=3).to_env_action(a) == a + 3)


def test_multidiscrete_sum_of_components():
    rng = np.random.default_rng()
    d = D.for_space(gym.spaces.MultiDiscrete([3, 2, 4]))
    flat = rng.normal(size=(5, 9)).astype(np.float32)
    actions = np.stack([rng.integers(0, n, 5) for n in (3, 2, 4)], -1)
    logits = d.split(jnp.asarray(flat))
    assert [lg.shape for lg in logits] == [(5, 3), (5, 2), (5, 4)]
    got_lp, got_ent, m = map(np.asarray, _all(d, logits, jnp.asarray(actions)))
    lps = [_np_log_softmax(flat[:, a:b]) for a, b in ((0, 3), (3, 5), (5, 9))]
    want_lp = sum(lp[np.arange(5), actions[:, i]] for i, lp in enumerate(lps))
    want_ent = sum(-(np.exp(lp) * lp).sum(-1) for lp in lps)
    np.testing.assert_allclose(got_lp, want_lp, atol=1e-5)
    np.testing.assert_allclose(got_ent, want_ent, atol=1e-5)
    assert m.shape == (5, 3) and m.dtype == np.int32
    np.testing.assert_array_equal(m[:, 1], flat[:, 3:5].argmax(-1))


def test_multidiscrete_sampling_frequencies():
    d = D.MultiCategorical((2, 3))
    p0, p1 = np.array([0.25, 0.75]), np.array([0.5, 0.3, 0.2])
    n = 40000
    logits = (
        np.broadcast_to(np.log(p0).astype(np.float32), (n, 2)),
        np.broadcast_to(np.log(p1).astype(np.float32), (n, 3)),
    )
    a = np.asarray(jax.jit(d.sample)(_key(), logits))
    assert a.shape == (n, 2) and a.dtype == np.int32
    np.testing.assert_allclose(np.bincount(a[:, 0], minlength=2) / n, p0, atol=0.015)
    np.testing.assert_allclose(np.bincount(a[:, 1], minlength=3) / n, p1, atol=0.015)


def test_gaussian_closed_forms_and_sampling():
    rng = np.random.default_rng()
    d = D.for_space(gym.spaces.Box(-1.0, 1.0, (3,), np.float32))
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    log_std = np.broadcast_to(rng.normal(0, 0.5, size=(3,)), (4, 3)).astype(np.float32)
    act = rng.normal(size=(4, 3)).astype(np.float32) * 2
    std = np.exp(log_std.astype(np.float64))
    want_lp = (-0.5 * ((act - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    want_ent = (0.5 * np.log(2 * np.pi * np.e * std**2)).sum(-1)
    got_lp, got_ent, mode = map(np.asarray, _all(d, (mean, log_std), act))
    np.testing.assert_allclose(got_lp, want_lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_ent, want_ent, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mode, mean)
    # sampling: moments and unclipped storage
    n = 20000
    big = (np.broadcast_to(mean[0], (n, 3)), np.broadcast_to(log_std[0], (n, 3)))
    s = np.asarray(jax.jit(d.sample)(_key(), big))
    np.testing.assert_allclose(s.mean(0), mean[0], atol=4 * std[0].max() / math.sqrt(n) + 1e-3)
    np.testing.assert_allclose(s.std(0), std[0], rtol=0.03)
    assert np.any(np.abs(s) > 1.0) or np.all(std[0] < 0.2)  # stored action is not clipped
    env_a = d.to_env_action(s)
    assert env_a.min() >= -1.0 and env_a.max() <= 1.0
    inside = np.all(np.abs(s) <= 1.0, axis=-1)
    np.testing.assert_array_equal(env_a[inside], s[inside])


def test_gaussian_to_env_action_reshapes_and_clips_per_dim():
    d = D.for_space(gym.spaces.Box(np.array([[-1, 0], [0, -2]], np.float32), np.array([[1, 1], [2, 0]], np.float32)))
    a = np.array([[5.0, 5.0, -5.0, -5.0]], np.float32)
    np.testing.assert_array_equal(d.to_env_action(a), [[[1, 1], [0, -2]]])


def test_jit_friendly():
    d = D.for_space(gym.spaces.MultiDiscrete([3, 4]))

    @jax.jit
    def f(key, logits):
        a = d.sample(key, logits)
        return a, d.log_prob(logits, a), d.entropy(logits)

    logits = (jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    a, lp, ent = f(jax.random.key(0), logits)
    np.testing.assert_allclose(np.asarray(lp), -np.log(12.0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ent), np.log(12.0), rtol=1e-6)
