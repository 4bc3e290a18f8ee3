"""Vector environments: buffers, determinism, auto-reset, logs, rendering,
the gymnasium adapter and bad input. Breakout's rules are in
test_envs_breakout.py, the sanitizer run in test_envs_sanitize.py."""
import threading

import gymnasium
import numpy as np
import pytest

import puffjax.envs as envs

NAMES = ["breakout", "cartpole", "memory", "pong", "squared"]  # the registry is sorted by header name


def random_actions(env, rng, steps):
    if isinstance(env.action_space, gymnasium.spaces.Discrete):
        return rng.integers(0, env.action_space.n, (steps, *env.actions.shape), dtype=np.int32)
    return rng.uniform(-1.2, 1.2, (steps, *env.actions.shape)).astype(np.float32)


def test_names():
    assert envs.names() == sorted(NAMES + ["snake"])  # snake (multi-agent): tests/test_multiagent.py


@pytest.mark.parametrize("name", NAMES)
def test_buffers_spaces_and_step_returns_the_buffers(name):
    env = envs.make(name, num_envs=7, seed=3)
    space = env.observation_space
    assert env.num_envs == 7
    assert env.observations.shape == (7, *space.shape)
    assert env.observations.dtype == (np.uint8 if name == "squared" else np.float32)
    assert env.actions.shape == (7,) and env.actions.dtype == np.int32
    assert env.rewards.dtype == np.float32 and env.rewards.shape == (7,)
    assert env.terminals.dtype == np.bool_ and env.truncations.dtype == np.bool_
    assert env.reset() is env.observations
    rng = np.random.default_rng(0)
    for a in random_actions(env, rng, 300):
        out = env.step(a)
        assert out[0] is env.observations and out[1] is env.rewards
        assert out[2] is env.terminals and out[3] is env.truncations
        assert all(space.contains(row) for row in env.observations)
        assert np.all(np.isfinite(env.rewards))
    env.close()


def test_zero_copy_in_place_actions():
    env = envs.make("breakout", num_envs=4, frameskip=1, seed=1)
    obs_ref, act_ref = env.observations, env.actions
    env.reset()
    for _ in range(3):  # the launch frame ignores the paddle; get past it
        env.step()
    x0 = obs_ref[:, 0].copy()
    env.actions[:] = 2  # right, written in place
    env.step()  # no argument: C reads the array we just wrote
    assert np.all(obs_ref[:, 0] > x0)
    act_ref[:2] = 1
    x1 = obs_ref[:, 0].copy()
    env.step()
    assert np.all(obs_ref[:2, 0] < x1[:2]) and np.all(obs_ref[2:, 0] > x1[2:])
    # Passing an array copies it into the very same buffer.
    actions = np.zeros(4, np.int32)
    o, r, d, t = env.step(actions)
    assert env.actions is act_ref and np.array_equal(act_ref, actions)
    assert not np.shares_memory(actions, act_ref)
    assert np.shares_memory(o, obs_ref) and o is obs_ref


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectories_for_any_thread_count(name):
    n, steps = 37, 150
    acts = random_actions(envs.make(name, n), np.random.default_rng(5), steps)
    runs = []
    for threads in (1, 2, 3, 8):
        env = envs.make(name, num_envs=n, threads=threads, seed=11)
        env.reset()
        trace = []
        for a in acts:
            o, r, d, t = env.step(a)
            trace.append((o.copy(), r.copy(), d.copy(), t.copy()))
        runs.append((trace, env.log()))
        env.close()
    first, log0 = runs[0]
    for trace, log in runs[1:]:
        assert log == log0
        for a, b in zip(first, trace):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
    # A different seed gives something else (these envs all use their RNG).
    other = envs.make(name, num_envs=n, seed=12)
    other.reset()
    differs = False
    for a, ref in zip(acts, first):
        other.step(a)
        differs |= not np.array_equal(other.observations, ref[0])
    assert differs


def test_reset_with_seed_replays_and_without_continues():
    env = envs.make("pong", num_envs=5, seed=0)
    acts = random_actions(env, np.random.default_rng(0), 50)

    def rollout():
        return [env.step(a)[0].copy() for a in acts]

    env.reset(seed=42)
    a = rollout()
    env.reset(seed=42)
    b = rollout()
    env.reset()  # continues each env's RNG: new serves
    c = rollout()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    fresh = envs.make("pong", num_envs=5, seed=42)
    fresh.reset()
    assert all(np.array_equal(x, fresh.step(u)[0]) for x, u in zip(a, acts))


@pytest.mark.parametrize("delay", [0, 3])
def test_memory_auto_reset_and_logs(delay):
    n = 64
    env = envs.make("memory", num_envs=n, delay=delay, seed=7)
    obs = env.reset()
    bits = (obs[:, 0] > 0).astype(np.int32)  # the cue: +1 for bit 1, -1 for 0
    assert np.all(np.abs(obs[:, 0]) == 1) and np.all(obs[:, 1] == 0)
    assert env.log() == {}
    for t in range(delay):  # blank steps, actions ignored
        o, r, d, tr = env.step(np.ones(n, np.int32))
        assert np.all(o == 0) and np.all(r == 0) and not d.any()
    o, r, d, tr = env.step(np.zeros(n, np.int32))  # to the query
    assert np.all(o[:, 0] == 0) and np.all(o[:, 1] == 1) and not d.any()
    answer = bits.copy()
    answer[: n // 2] = 1 - answer[: n // 2]  # half answer wrong
    o, r, d, tr = env.step(answer)
    assert d.all() and not tr.any()
    np.testing.assert_array_equal(r, np.where(answer == bits, 1.0, -1.0))
    # The observation returned is already the next episode's cue.
    assert np.all(np.abs(o[:, 0]) == 1) and np.all(o[:, 1] == 0)
    log = env.log()
    assert log["n"] == n
    assert log["perf"] == pytest.approx(0.5) and log["episode_return"] == pytest.approx(0.0)
    assert log["episode_length"] == delay + 2
    assert env.log() == {}  # cleared by the previous call
    o, r, d, tr = env.step()
    assert not d.any() and np.all(r == 0)


def test_squared_rules():
    env = envs.make("squared", num_envs=3, size=5, seed=0)
    env.reset()
    c = env._c
    # env 0: target right next to the agent (centre is (2, 2))
    c.set_field(0, "target_row", 2)
    c.set_field(0, "target_col", 3)
    # env 1: agent at the top edge, walks into it
    c.set_field(1, "agent_row", 0)
    c.set_field(1, "target_row", 4)
    c.set_field(1, "target_col", 4)
    o, r, d, t = env.step(np.array([4, 1, 0], np.int32))
    # the target: +1 and a terminal; the edge: no move, no reward, the episode goes on
    assert r.tolist() == [1.0, 0.0, 0.0] and d.tolist() == [True, False, False] and not t.any()
    assert o[1, 0, 2] == 1 and (o[1] == 1).sum() == 1 and o[1, 4, 4] == 2
    assert c.get_field(1, "agent_row") == 0 and c.get_field(1, "steps") == 1
    # env 0's new episode: agent back in the centre, one target
    assert o[0, 2, 2] == 1 and (o[0] == 2).sum() == 1
    # standing still earns nothing; out of time after 3 * size = 15 steps: truncated, reward 0
    for k in range(13):
        o, r, d, t = env.step(np.zeros(3, np.int32))
        assert not d.any() and not t[1:].any() and np.all(r[1:] == 0)
    o, r, d, t = env.step(np.zeros(3, np.int32))
    assert t[1:].tolist() == [True, True] and not d[1:].any() and np.all(r[1:] == 0)
    assert np.all(o[1:, 2, 2] == 1)  # new episodes
    log = env.log()
    assert log["n"] == 3 and log["perf"] == pytest.approx(1 / 3) and log["score"] == pytest.approx(1 / 3)
    assert log["episode_return"] == pytest.approx(1 / 3) and log["episode_length"] == pytest.approx((1 + 15 + 15) / 3)
    assert set(log) == {"perf", "score", "episode_return", "episode_length", "n"}


def test_cartpole_matches_gymnasium_dynamics():
    env = envs.make("cartpole", num_envs=1, seed=0)
    env.reset()
    ref = gymnasium.make("CartPole-v1").unwrapped
    ref.reset(seed=0)
    state = np.array([0.03, -0.02, 0.04, 0.01])
    for k, name in enumerate(["x", "x_dot", "theta", "theta_dot"]):
        env._c.set_field(0, name, state[k])
    ref.state = state.copy()
    rng = np.random.default_rng(1)
    for _ in range(60):
        a = int(rng.integers(0, 2))
        o, r, d, t = env.step(np.array([a], np.int32))
        ro, rr, rd, _, _ = ref.step(a)
        assert bool(d[0]) == rd and r[0] == rr
        if rd:
            break
        np.testing.assert_allclose(o[0], ro, rtol=1e-5, atol=1e-6)


def test_cartpole_truncates_at_500():
    n = 8
    env = envs.make("cartpole", num_envs=n, seed=3)
    obs = env.reset()
    for step in range(1, 501):
        x, xd, th, thd = obs.T
        a = (th + 0.5 * thd + 0.05 * x + 0.1 * xd > 0).astype(np.int32)  # a balancing controller
        obs, r, d, t = env.step(a)
        assert not d.any(), "the controller should keep every pole up"
        assert np.all(r == 1.0)
        if step < 500:
            assert not t.any()
    assert t.all() and not d.any()  # truncation, not terminal
    log = env.log()
    assert log["n"] == n and log["episode_length"] == 500 and log["perf"] == 1.0
    assert np.all(np.abs(obs) <= 0.05)  # the new episodes' first observations


def test_cartpole_max_steps_option():
    env = envs.make("cartpole", num_envs=2, max_steps=3)
    env.reset()
    for _ in range(2):
        assert not env.step(np.ones(2, np.int32))[3].any()
    assert env.step(np.ones(2, np.int32))[3].all()


def test_pong_scoring_and_returns():
    env = envs.make("pong", num_envs=2, frameskip=1, seed=0)
    env.reset()
    c = env._c
    # env 0: ball about to leave on the opponent's (left) side: agent scores
    c.set_field(0, "ball_x", -7.0)
    c.set_field(0, "ball_vx", -300.0)
    c.set_field(0, "ball_y", 10.0)
    c.set_field(0, "ball_vy", 0.0)
    # env 1: ball just in front of the agent's paddle, moving at it: a return
    y = c.get_field(1, "agent_y")
    c.set_field(1, "ball_x", 478.0)
    c.set_field(1, "ball_y", y + 28)
    c.set_field(1, "ball_vx", 300.0)
    c.set_field(1, "ball_vy", 0.0)
    o, r, d, t = env.step(np.zeros(2, np.int32))
    assert r[0] == pytest.approx(1.0) and o[0, 6] == pytest.approx(1 / 21)
    assert r[1] == pytest.approx(0.1) and c.get_field(1, "ball_vx") < 0
    # 21 points end the episode; perf = won / played
    c.set_field(0, "agent_points", 20)
    c.set_field(0, "opponent_points", 5)
    c.set_field(0, "ball_x", -7.0)
    c.set_field(0, "ball_vx", -300.0)
    o, r, d, t = env.step(np.zeros(2, np.int32))
    assert d[0] and r[0] == pytest.approx(1.0) and o[0, 6] == 0 and o[0, 7] == 0
    log = env.log()
    assert log["n"] == 1 and log["perf"] == pytest.approx(21 / 26) and log["score"] == 21


@pytest.mark.parametrize("name", NAMES)
def test_render_shapes(name):
    env = envs.make(name, num_envs=2)
    env.reset()
    img = env.render(1)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape == (*env.render_size, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= 2  # something was drawn
    with pytest.raises(IndexError):
        env.render(2)


def _documented_observation_space(name, shape):
    """Each environment's observation space as its header's comment describes
    it, written out independently of the bounds the header declares."""
    if name == "squared":
        return gymnasium.spaces.Box(0, 2, shape, np.uint8)
    if name == "cartpole":  # same bounds as gymnasium's CartPole-v1
        f32_max = float(np.finfo(np.float32).max)
        high = np.array([4.8, f32_max, 12 * 2 * np.pi / 360 * 2, f32_max], np.float32)
        return gymnasium.spaces.Box(-high, high, dtype=np.float32)
    low = np.zeros(shape, np.float32)
    high = np.ones(shape, np.float32)
    if name in ("breakout", "pong"):
        low[4:6] = -1.0  # ball velocity
    elif name == "memory":
        low[0] = -1.0  # the cue
    return gymnasium.spaces.Box(low, high, dtype=np.float32)


@pytest.mark.parametrize("name, options", [
    *[(name, {}) for name in NAMES],
    ("breakout", {"continuous": 1}), ("breakout", {"frameskip": 1, "continuous": 1}),
    ("pong", {"frameskip": 2}), ("squared", {"size": 3}), ("squared", {"size": 8}),
    ("squared", {"size": 255}), ("cartpole", {"max_steps": 10}), ("memory", {"delay": 0}),
    ("memory", {"delay": 17}),
])
def test_observation_space_bounds_come_from_c_and_match_the_documented_ones(name, options):
    space = envs.make(name, num_envs=1, **options).observation_space
    expected = _documented_observation_space(name, space.shape)
    assert type(space) is gymnasium.spaces.Box and space == expected
    assert space.shape == expected.shape and space.dtype == expected.dtype
    for got, want in [(space.low, expected.low), (space.high, expected.high),
                      (space.bounded_below, expected.bounded_below), (space.bounded_above, expected.bounded_above)]:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert repr(space) == repr(expected)


# ---- gymnasium adapter ----

def test_gymnasium_adapter_cartpole():
    env = envs.from_gymnasium("CartPole-v1", num_envs=4, seed=0)
    assert isinstance(env.observation_space, gymnasium.spaces.Box)
    assert env.action_space == gymnasium.spaces.Discrete(2)
    assert env.observations.shape == (4, 4) and env.observations.dtype == np.float32
    assert env.actions.dtype == np.int32
    obs = env.reset(seed=0)
    assert obs is env.observations
    rng = np.random.default_rng(0)
    trace, dones = [], 0
    for _ in range(200):
        o, r, d, t = env.step(rng.integers(0, 2, 4))
        assert o is env.observations and np.all(r == 1.0)
        dones += int(d.sum() + t.sum())
        trace.append(o.copy())
    log = env.log()
    assert log["n"] == dones > 0
    assert set(log) == {"perf", "episode_return", "episode_length", "n"}
    assert log["episode_return"] == pytest.approx(log["episode_length"])
    assert env.log() == {}
    # same seed: same trajectories
    env2 = envs.from_gymnasium("CartPole-v1", num_envs=4, seed=0)
    rng = np.random.default_rng(0)
    for ref in trace:
        np.testing.assert_array_equal(env2.step(rng.integers(0, 2, 4))[0], ref)
    env.close()


def test_gymnasium_adapter_truncation_and_callable():
    env = envs.from_gymnasium(lambda: gymnasium.make("CartPole-v1", max_episode_steps=5), num_envs=2, seed=1)
    for k in range(4):
        o, r, d, t = env.step(np.array([0, 1]))
        assert not t.any()
    o, r, d, t = env.step(np.array([0, 1]))
    assert t.all() and not d.any()
    assert env.log()["episode_length"] == 5
    # the returned observation is the new episode's first
    assert np.all(np.abs(o) <= 0.05)


def test_gymnasium_adapter_continuous_and_errors():
    env = envs.from_gymnasium("Pendulum-v1", num_envs=2, seed=0)
    assert env.actions.shape == (2, 1) and env.actions.dtype == np.float32
    env.step(np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"actions\[1\]"):
        env.step(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(2))
    cp = envs.from_gymnasium("CartPole-v1", num_envs=2)
    with pytest.raises(ValueError, match=r"actions\[0\] = 2"):
        cp.step(np.array([2, 0]))
    cp.actions[1] = -1
    with pytest.raises(ValueError, match=r"actions\[1\] = -1"):
        cp.step()
    with pytest.raises(TypeError):
        envs.from_gymnasium(123, num_envs=2)
    with pytest.raises(ValueError, match="num_envs"):
        envs.from_gymnasium("CartPole-v1", num_envs=0)


# ---- bad input ----

def test_bad_names_and_options():
    with pytest.raises(ValueError, match="unknown environment 'breakot'.*breakout, cartpole, memory, pong, snake, squared"):
        envs.make("breakot")
    with pytest.raises(TypeError, match="unknown option 'frame_skip'.*frameskip, continuous"):
        envs.make("breakout", frame_skip=4)
    with pytest.raises(TypeError, match="frameskip.*integer"):
        envs.make("breakout", frameskip=2.5)
    with pytest.raises(ValueError, match=r"frameskip.*\[1, 1000\].*0"):
        envs.make("breakout", frameskip=0)
    with pytest.raises(ValueError, match="size"):
        envs.make("squared", size=2)
    with pytest.raises(TypeError, match="unknown option"):
        envs.make("cartpole", frameskip=2)
    with pytest.raises(TypeError):
        envs.make(3)


def test_a_registered_env_without_a_config_file_trains_from_the_defaults(tmp_path, monkeypatch, capsys):
    """`puffjax train NAME` for a registered C env with no configs/NAME.toml starts from the
    defaults, as gym:ID envs do; a name that is neither is refused in one line."""
    from puffjax import config
    from puffjax.cli import main

    monkeypatch.setattr(config, "CONFIG_DIR", str(tmp_path))  # no shipped config at all
    defaults = config.Config()
    defaults.env.name = "memory"
    assert config.load_config("memory").to_dict() == defaults.to_dict()
    code = main(["train", "memory", "--env.num-envs", "64", "--train.bptt-horizon", "16",
                 "--train.minibatch-size", "1024", "--train.total-timesteps", "2048", "--train.video-frames", "0",
                 "--run-dir", str(tmp_path / "run"), "--dashboard", "none"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert main(["train", "memroy", "--dashboard", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("puffjax: no config for environment 'memroy' and no C environment of that name")
    assert err.endswith("C environments: breakout, cartpole, memory, pong, snake, squared")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_counts(bad):
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        envs.make("breakout", num_envs=bad)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        envs.make("breakout", num_envs=4, threads=bad)


def test_bad_count_types():
    for v in (2.5, "4", True, None):
        with pytest.raises(TypeError, match="num_envs must be an integer"):
            envs.make("pong", num_envs=v)
    with pytest.raises(TypeError, match="threads must be an integer"):
        envs.make("pong", num_envs=2, threads=1.5)
    with pytest.raises(TypeError, match="seed"):
        envs.make("pong", num_envs=2).reset(seed="x")


def test_bad_discrete_actions_leave_state_untouched():
    env = envs.make("breakout", num_envs=6, seed=0)
    env.reset()
    env.step(np.ones(6, np.int32))
    before = env.observations.copy()
    with pytest.raises(ValueError, match=r"expected int32 actions for Discrete\(3\) of shape \(6,\), got shape \(5,\)"):
        env.step(np.zeros(5, np.int32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((6, 1), np.int32))
    with pytest.raises(TypeError, match="integer actions"):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(TypeError, match="integer actions"):
        env.step(np.zeros(6, bool))
    with pytest.raises(ValueError, match=r"actions\[2\] = 3 is out of range.*\[0, 3\)"):
        env.step(np.array([0, 1, 3, 0, 0, 0], np.int32))
    with pytest.raises(ValueError, match=r"actions\[4\] = -1 is out of range"):
        env.step(np.array([0, 1, 2, 0, -1, 0]))  # int64: checked in Python
    with pytest.raises(ValueError, match=r"actions\[0\] = 4294967296 is out of range"):
        env.step(np.array([2**32, 0, 0, 0, 0, 0]))  # would wrap to 0 as int32
    env.actions[:] = 0
    env.actions[5] = 7  # written in place: caught by the C check
    with pytest.raises(ValueError, match=r"breakout: actions\[5\] = 7 is out of range"):
        env.step()
    env.actions[5] = -2147483648
    with pytest.raises(ValueError, match=r"actions\[5\] = -2147483648"):
        env.step()
    np.testing.assert_array_equal(env.observations, before)  # nothing stepped
    env.step(np.zeros(6, np.int32))  # still usable
    assert not np.array_equal(env.observations, before)


def test_bad_continuous_actions():
    env = envs.make("breakout", num_envs=3, continuous=True, frameskip=1, seed=0)
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert env.actions.shape == (3, 1) and env.actions.dtype == np.float32
    env.reset()
    for _ in range(2):
        env.step(np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="float actions"):
        env.step(np.zeros((3, 1), np.int32))
    with pytest.raises(ValueError, match=r"actions\[1\] = nan is not finite"):
        env.step(np.array([[0.0], [np.nan], [0.0]], np.float32))
    env.actions[:] = 0
    env.actions[2, 0] = -np.inf
    with pytest.raises(ValueError, match=r"actions\[2\] = -inf"):
        env.step()
    # Values outside [-1, 1] are clipped: 5 moves as far as 1.
    x = env.observations[:, 0].copy()
    env.step(np.array([[1.0], [5.0], [-5.0]], np.float32))
    d = env.observations[:, 0] - x
    assert d[0] == pytest.approx(d[1]) and d[0] == pytest.approx(620 / 60 / 576, rel=1e-4)
    assert d[2] == pytest.approx(-d[0], rel=1e-4)


def test_closed_env_raises_and_close_twice_is_fine():
    env = envs.make("squared", num_envs=2)
    env.close()
    env.close()
    assert env.closed
    with pytest.raises(RuntimeError, match="closed"):
        env.step()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    with pytest.raises(RuntimeError, match="closed"):
        env.log()


def test_raw_module_rejects_bad_buffers():
    from puffjax import _envs

    n = 4
    good = dict(observations=np.zeros((n, 8), np.float32), actions=np.zeros(n, np.int32),
                rewards=np.zeros(n, np.float32), terminals=np.zeros(n, bool), truncations=np.zeros(n, bool))
    _envs.VecEnv("pong", {}, **good)
    for key, bad in [("observations", np.zeros((n, 9), np.float32)), ("observations", np.zeros((n, 8))),
                     ("actions", np.zeros(n, np.int64)), ("terminals", np.zeros(n, np.uint16)),
                     ("observations", np.zeros((8, n), np.float32).T), ("rewards", np.zeros((n, 1), np.float32))]:
        with pytest.raises((ValueError, TypeError)):
            _envs.VecEnv("pong", {}, **{**good, key: bad})
    with pytest.raises(ValueError, match="threads"):
        _envs.VecEnv("pong", {}, **good, threads=0)


def test_concurrent_use_is_refused_not_corrupting():
    env = envs.make("breakout", num_envs=2048, threads=1)
    errors, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                env.step()
            except RuntimeError as e:
                errors.append(str(e))

    ts = [threading.Thread(target=hammer) for _ in range(3)]
    for t in ts:
        t.start()
    for _ in range(50):
        try:
            env.step()
        except RuntimeError as e:
            errors.append(str(e))
    stop.set()
    for t in ts:
        t.join()
    assert all("in use by another thread" in e for e in errors)
    env.step()
