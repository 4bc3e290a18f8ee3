"""Brax and Jumanji adapters against their packages (the protocol checks of test_jax_envs)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces
from test_jax_envs import _against_reference, _suite_reference

from puffjax.envs.jaxenv import make_env, vec_log_names, vec_reset, vec_step

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ---------------------------------------------------------------- Jumanji
def test_jumanji_snake_matches_the_package():
    """Snake on a 5x5 board cut at 3 steps: obs rows are the fields flattened in key order
    (action_mask, grid, step_count); a wall hit and Snake's time limit both end with discount 0
    (terminated), as Jumanji's Snake defines them."""
    jumanji = pytest.importorskip("jumanji")
    env = make_env("jumanji:Snake-v1", num_rows=5, num_cols=5, time_limit=3)
    assert env.observation_space == spaces.Dict({"action_mask": spaces.MultiBinary(4),
                                                 "grid": spaces.Box(0.0, 1.0, (5, 5, 5), np.float32),
                                                 "step_count": spaces.Discrete(3)})
    assert env.action_space == spaces.Discrete(4)
    assert vec_log_names(env) == ("episode_return", "episode_length", "perf")
    jenv = jumanji.make("Snake-v1", num_rows=5, num_cols=5, time_limit=3)

    def row(o):
        return jnp.concatenate([o.action_mask.astype(jnp.float32), o.grid.ravel(), o.step_count[None].astype(jnp.float32)])

    def reset_env(k):
        s, ts = jenv.reset(k)
        return row(ts.observation), s

    def step_env(k, s, a):
        s, ts = jenv.step(s, a)
        last = ts.last()
        return row(ts.observation), s, ts.reward, last & (ts.discount == 0), last & (ts.discount > 0), []

    reset, step = _suite_reference(reset_env, step_env)
    actions = np.random.default_rng(0).integers(0, 4, (14, 4)).astype(np.int32)
    actions[:, 0] = 0  # straight up into the wall
    terminated, truncated = _against_reference(env, reset, step, actions)
    assert terminated > 0 and truncated == 0, (terminated, truncated)


def test_jumanji_game2048_logs_and_vmaps_over_seeds():
    pytest.importorskip("jumanji")
    env = make_env("jumanji:Game2048-v1")
    assert vec_log_names(env) == ("episode_return", "episode_length", "perf", "highest_tile")
    assert env.observation_space["board"].shape == (4, 4)

    def run(key):
        state = vec_reset(env, key, 2)
        for t in range(3):
            state, *_ = vec_step(env, jax.random.fold_in(key, t), state, jnp.full((2,), t, jnp.int32))
        return state

    keys = jax.random.split(jax.random.key(3), 3)
    batched = jax.jit(jax.vmap(run))(keys)
    single = jax.jit(run)
    for i, k in enumerate(keys):
        one = single(k)
        for field in ("obs", "episode_return", "episode_length", "log_sum", "log_count"):
            np.testing.assert_array_equal(getattr(batched, field)[i], getattr(one, field), err_msg=field)


def test_jumanji_names_and_options():
    pytest.importorskip("jumanji")
    with pytest.raises(ValueError, match="unknown Jumanji environment 'Nope-v0'"):
        make_env("jumanji:Nope-v0")
    with pytest.raises(ValueError, match="bad option"):
        make_env("jumanji:Snake-v1", not_an_option=1)


# ---------------------------------------------------------------- Brax
def test_brax_spaces_and_options():
    pytest.importorskip("brax")
    env = make_env("brax:inverted_pendulum", backend="spring", episode_length=7, action_repeat=2)
    assert env.observation_space == spaces.Box(-np.inf, np.inf, (4,), np.float32)
    assert env.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert vec_log_names(env) == ("episode_return", "episode_length", "perf")
    assert (env.env.brax_env.episode_length, env.env.brax_env.action_repeat) == (7, 2)
    with pytest.raises(ValueError, match="unknown Brax environment 'nope'"):
        make_env("brax:nope")
    with pytest.raises(ValueError, match="bad option"):
        make_env("brax:inverted_pendulum", backend="nope")
    with pytest.raises(ValueError, match="must be at least 1"):
        make_env("brax:inverted_pendulum", episode_length=0)


@pytest.mark.slow  # a minute or more of compiling on a CPU
def test_brax_matches_the_package():
    """inverted_pendulum (spring) cut at 8 steps: two pendulums pushed hard one way fall
    (terminated), two held still reach the limit (truncated); reward, obs and the flags as
    Brax's own step gives them, the time limit counted here."""
    envs = pytest.importorskip("brax.envs")
    env = make_env("brax:inverted_pendulum", backend="spring", episode_length=8)
    benv = envs.get_environment("inverted_pendulum", backend="spring")

    def reset_env(k):
        s = benv.reset(k)
        return s.obs, (s, 0)

    def step_env(k, state, a):
        s, t = state
        s = benv.step(s, a)
        t = t + 1
        terminated = s.done > 0
        return s.obs, (s, t), s.reward, terminated, (t >= 8) & ~terminated, []

    reset, step = _suite_reference(reset_env, step_env)
    steps, n = 20, 4
    actions = np.zeros((steps, n, 1), np.float32)
    actions[:, :2] = 1.0
    terminated, truncated = _against_reference(env, reset, step, actions)
    assert terminated > 0 and truncated > 0, (terminated, truncated)
