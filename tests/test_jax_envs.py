"""JAX environments: the functional protocol, the host vector env, and each adapter against its package."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from puffjax.envs.jaxenv import JaxEnv, VecState, log_means, read_log, vec_log_names, vec_reset, vec_step


class Walk(JaxEnv):
    """A test env: the position moves by the action minus 1 from a random start in 0..2; the
    episode terminates at +-3 and is truncated after ``limit`` steps; reports ``peak`` (the
    largest position reached)."""

    observation_space = spaces.Box(-3.0, 3.0, (2,), np.float32)
    action_space = spaces.Discrete(3)
    log_names = ("peak",)

    def __init__(self, limit=5):
        self.limit = limit

    def reset(self, key):
        pos = jax.random.randint(key, (), 0, 3)
        state = (pos, jnp.int32(0), pos)
        return state, self._obs(state)

    def _obs(self, state):
        return jnp.stack([state[0], state[1]]).astype(jnp.float32)

    def step(self, key, state, action):
        pos, t, peak = state
        pos = pos + action - 1
        t = t + 1
        peak = jnp.maximum(peak, pos)
        state = (pos, t, peak)
        terminated = jnp.abs(pos) >= 3
        truncated = t >= self.limit
        return state, self._obs(state), pos.astype(jnp.float32), terminated, truncated, {"peak": peak}


def test_vec_step_matches_a_hand_counted_loop():
    env, n, steps = Walk(), 4, 12
    key = jax.random.key(0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, (steps, n)).astype(np.int32)
    state = vec_reset(env, key, n)
    assert vec_log_names(env) == ("episode_return", "episode_length", "peak")
    assert state.obs.shape == (n, 2) and state.obs.dtype == jnp.float32
    # By hand: the same keys, one environment at a time, episodes counted in Python.
    env_states = [env.reset(k)[0] for k in jax.random.split(key, n)]
    ret, length, sums, count = [0.0] * n, [0] * n, np.zeros(3), 0
    step = jax.jit(lambda k, s, a: vec_step(env, k, s, a))
    for t in range(steps):
        k = jax.random.fold_in(key, t)
        state, reward, terminated, truncated = step(k, state, jnp.asarray(actions[t]))
        step_key, reset_key = jax.random.split(k)
        for i in range(n):
            s, obs, r, term, trunc, info = env.step(jax.random.split(step_key, n)[i], env_states[i], actions[t, i])
            ret[i] += float(r)
            length[i] += 1
            assert reward[i] == float(r) and terminated[i] == bool(term)
            assert truncated[i] == (bool(trunc) and not bool(term))
            if term or trunc:
                sums += [ret[i], length[i], float(info["peak"])]
                count += 1
                ret[i], length[i] = 0.0, 0
                s, obs = env.reset(jax.random.split(reset_key, n)[i])
            env_states[i] = s
            np.testing.assert_array_equal(state.obs[i], obs)
        np.testing.assert_allclose(state.episode_return, ret)
        np.testing.assert_array_equal(state.episode_length, length)
    assert count > 3 and float(state.log_count) == count
    means, c = log_means(state)
    np.testing.assert_allclose(means, sums / count, rtol=1e-6)
    log, cleared = read_log(env, state)
    assert log == pytest.approx({"episode_return": sums[0] / count, "episode_length": sums[1] / count,
                                 "peak": sums[2] / count, "n": count})
    assert float(cleared.log_count) == 0 and not np.any(cleared.log_sum)
    assert read_log(env, cleared)[0] == {}


def test_vec_functions_vmap_over_seeds():
    """Seeds batched with vmap give what separate calls give."""
    env, n = Walk(), 3
    actions = jnp.ones((n,), jnp.int32) * 2

    def run(key):
        state = vec_reset(env, key, n)
        for t in range(6):
            state, *_ = vec_step(env, jax.random.fold_in(key, t), state, actions)
        return state

    keys = jax.random.split(jax.random.key(1), 4)
    batched = jax.jit(jax.vmap(run))(keys)
    assert isinstance(batched, VecState)
    for i, k in enumerate(keys):
        one = run(k)
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda a: a[i], batched), one)
