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


def _against_reference(env, reset, step, actions, key=jax.random.key(0)):
    """Run ``vec_step`` over ``actions [T, N]`` and check every step against ``reset(key) -> (state,
    obs)`` / ``step(key, state, action) -> (state, obs, reward, terminated, truncated, log values)``
    called one environment at a time with the keys vec_step hands out, episodes counted by hand.
    Returns the counts of (terminated, truncated) episodes."""
    steps, n = actions.shape[:2]
    state = vec_reset(env, key, n)
    env_states = []
    for i, k in enumerate(jax.random.split(key, n)):
        s, obs = reset(k)
        np.testing.assert_array_equal(state.obs[i], obs)
        env_states.append(s)
    ret, length, sums = [0.0] * n, [0] * n, np.zeros(len(vec_log_names(env)))
    ends = np.zeros(2, int)
    vstep = jax.jit(lambda k, s, a: vec_step(env, k, s, a))
    for t in range(steps):
        k = jax.random.fold_in(key, t)
        state, reward, terminated, truncated = vstep(k, state, jnp.asarray(actions[t]))
        step_key, reset_key = jax.random.split(k)
        step_keys, reset_keys = jax.random.split(step_key, n), jax.random.split(reset_key, n)
        for i in range(n):
            s, obs, r, term, trunc, logged = step(step_keys[i], env_states[i], actions[t, i])
            ret[i] += float(r)
            length[i] += 1
            # vmapped and single calls may round float math differently (last bits)
            np.testing.assert_allclose(reward[i], r, rtol=1e-5, atol=1e-6)
            assert terminated[i] == bool(term)
            assert truncated[i] == (bool(trunc) and not bool(term))
            if term or trunc:
                sums += [ret[i], length[i], *logged]
                ends += [bool(term), not bool(term)]
                ret[i], length[i] = 0.0, 0
                s, obs = reset(reset_keys[i])
            env_states[i] = s
            np.testing.assert_allclose(state.obs[i], obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.episode_return, ret, rtol=1e-5)
        np.testing.assert_array_equal(state.episode_length, length)
    count = int(ends.sum())
    assert float(state.log_count) == count
    if count:
        np.testing.assert_allclose(log_means(state)[0], sums / count, rtol=1e-5)
        log, cleared = read_log(env, state)
        assert log == pytest.approx({**dict(zip(vec_log_names(env), sums / count)), "n": count})
        assert float(cleared.log_count) == 0 and not np.any(cleared.log_sum)
        assert read_log(env, cleared)[0] == {}
    return tuple(ends)


def test_vec_step_matches_a_hand_counted_loop():
    env = Walk()
    assert vec_log_names(env) == ("episode_return", "episode_length", "peak")

    one_step = jax.jit(env.step)

    def step(k, s, a):
        s, obs, r, term, trunc, info = one_step(k, s, a)
        return s, obs, r, term, trunc, [float(info["peak"])]

    actions = np.random.default_rng(0).integers(0, 3, (12, 4)).astype(np.int32)
    terminated, truncated = _against_reference(env, jax.jit(env.reset), step, actions)
    assert terminated > 0 and truncated > 0


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
    single = jax.jit(run)
    for i, k in enumerate(keys):
        one = single(k)
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda a: a[i], batched), one)


# ---------------------------------------------------------------- gymnax
def _suite_reference(reset_env, step_env):
    """reset / step for :func:`_against_reference` from a suite's own functions, jitted:
    ``reset_env(key) -> (obs, state)`` and ``step_env(key, state, action) -> (obs, state, reward,
    terminated, truncated, [log values beyond perf])``; perf (the return) is counted here."""
    @jax.jit
    def reset(k):
        obs, s = reset_env(k)
        return (s, 0.0), obs

    @jax.jit
    def step(k, state, a):
        s, ret = state
        obs, s, r, term, trunc, logged = step_env(k, s, a)
        return (s, ret + r), obs, r, term, trunc, jnp.stack([ret + r, *logged])

    def step_host(k, state, a):
        s, obs, r, term, trunc, logged = step(k, state, a)
        return s, np.asarray(obs, np.float32), r, term, trunc, [float(v) for v in logged]

    return reset, step_host


def _gymnax_reference(env_id, **params):
    """reset / step straight from gymnax (``reset_env``, ``step_env``, ``is_truncated``)."""
    gymnax = pytest.importorskip("gymnax")
    genv, p = gymnax.make(env_id)
    p = p.replace(**params)

    def step_env(k, s, a):
        obs, s, r, term, info = genv.step_env(k, s, a, p)
        return obs, s, r, term, genv.is_truncated(s, p), []

    return _suite_reference(lambda k: genv.reset_env(k, p), step_env)


@pytest.mark.parametrize("env_id, params, act, ends", [
    ("CartPole-v1", {"max_steps_in_episode": 20}, "mixed", "both"),
    ("Pendulum-v1", {"max_steps_in_episode": 5}, "box", "truncated"),
    ("Breakout-MinAtar", {}, "random", "terminated"),
])
def test_gymnax_matches_the_package(env_id, params, act, ends):
    from puffjax.envs.jaxenv import make_env

    env = make_env(f"gymnax:{env_id}", **params)
    assert vec_log_names(env) == ("episode_return", "episode_length", "perf")
    rng = np.random.default_rng(1)
    steps, n = (30, 4) if act != "box" else (12, 3)
    if act == "box":
        assert isinstance(env.action_space, spaces.Box) and env.action_space.shape == (1,)
        actions = rng.uniform(-2, 2, (steps, n, 1)).astype(np.float32)
    else:
        assert isinstance(env.action_space, spaces.Discrete)
        actions = rng.integers(0, env.action_space.n, (steps, n)).astype(np.int32)
    if act == "mixed":  # two carts pushed one way (they fall), two balanced (they reach the limit)
        actions[:, :2], actions[:, 2:] = 1, (np.arange(steps) % 2)[:, None]
    reset, step = _gymnax_reference(env_id, **params)
    terminated, truncated = _against_reference(env, reset, step, actions)
    assert {"both": terminated > 0 and truncated > 0, "truncated": terminated == 0 and truncated == n * 2,
            "terminated": terminated > 0 and truncated == 0}[ends], (terminated, truncated)


def test_gymnax_spaces_and_options():
    from puffjax.envs import make
    from puffjax.envs.spaces import observation_layout

    env = make("gymnax:Breakout-MinAtar", num_envs=3, seed=0)
    assert env.observation_space == spaces.Box(0.0, 1.0, (10, 10, 4), np.float32)
    assert env.action_space == spaces.Discrete(3)
    assert observation_layout(env.observation_space).row_shape == (10, 10, 4)
    with pytest.raises(ValueError, match="unknown gymnax environment 'Nope-v0'"):
        make("gymnax:Nope-v0")
    with pytest.raises(ValueError, match="bad option"):
        make("gymnax:CartPole-v1", not_an_option=1)
    with pytest.raises(ValueError, match="give an id"):
        make("gymnax:")


def test_missing_suite_names_the_extra(monkeypatch):
    import sys

    from puffjax.envs import make

    monkeypatch.delitem(sys.modules, "puffjax.envs.jaxenv.gymnax", raising=False)
    monkeypatch.setitem(sys.modules, "gymnax", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'puffjax\[gymnax\]'"):
        make("gymnax:CartPole-v1")


# ---------------------------------------------------------------- the host vector env
def test_jax_vec_env_host_interface():
    from puffjax.envs import make

    env = make("gymnax:CartPole-v1", num_envs=5, seed=7)
    assert (env.num_envs, env.num_agents, env.agents_per_env) == (5, 5, 1)
    assert env.log_names == ["episode_return", "episode_length", "perf"]
    expected = {"observations": ((5, 4), np.float32), "actions": ((5,), np.int32), "rewards": ((5,), np.float32),
                "terminals": ((5,), np.bool_), "truncations": ((5,), np.bool_), "masks": ((5,), np.bool_)}
    for k, (shape, dtype) in expected.items():
        assert getattr(env, k).shape == shape and getattr(env, k).dtype == dtype, k
    assert env.masks.all()
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, rewards, terminals, truncations = env.step(rng.integers(0, 2, 5))
        assert obs is env.observations and rewards is env.rewards
    log = env.log()
    assert log["n"] > 0 and log["perf"] == log["episode_return"] and env.log() == {}
    snapshot = env.get_state()
    assert all(isinstance(v, (np.ndarray, str)) for v in snapshot.values() if not isinstance(v, dict))
    actions = rng.integers(0, 2, (30, 5))
    first = [np.array(env.step(a)[0]) for a in actions]
    env.set_state(snapshot)
    again = [np.array(env.step(a)[0]) for a in actions]
    np.testing.assert_array_equal(first, again)
    bad = dict(snapshot, observations=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="observations has shape"):
        env.set_state(bad)
    with pytest.raises(ValueError, match=r"actions\[2\] = 2 is out of range"):
        env.step(np.array([0, 1, 2, 0, 1], np.int32))
    # reset with a seed restarts the same episodes
    first = np.array(env.reset(3))
    np.testing.assert_array_equal(first, make("gymnax:CartPole-v1", num_envs=5, seed=3).observations)
    with pytest.raises(ValueError, match="workers are for Python envs"):
        make("gymnax:CartPole-v1", workers=2)
    with pytest.raises(RuntimeError, match="does not render"):
        env.render(0)


# ---------------------------------------------------------------- Craftax (minutes of compiling on a CPU)
@pytest.mark.slow
def test_craftax_matches_the_package():
    craftax_env = pytest.importorskip("craftax.craftax_env")
    from puffjax.envs.jaxenv import make_env

    env = make_env("craftax:Craftax-Classic-Symbolic-v1", max_timesteps=4)
    assert vec_log_names(env) == ("episode_return", "episode_length", "perf", "score")
    assert env.observation_space == spaces.Box(0.0, 1.0, (1345,), np.float32)
    assert env.action_space == spaces.Discrete(17)
    cenv = craftax_env.make_craftax_env_from_name("Craftax-Classic-Symbolic-v1", auto_reset=False)
    p = cenv.default_params.replace(max_timesteps=4)

    def step_env(k, s, a):
        obs, s, r, done, info = cenv.step_env(k, s, a, p)
        truncated = s.timestep >= p.max_timesteps
        return obs, s, r, done & ~truncated, truncated, [info["score"]]

    reset, step = _suite_reference(lambda k: cenv.reset_env(k, p), step_env)
    actions = np.random.default_rng(0).integers(0, 17, (9, 2)).astype(np.int32)
    terminated, truncated = _against_reference(env, reset, step, actions)
    assert truncated == 4 and terminated == 0
