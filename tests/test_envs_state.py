"""Environment snapshots (used by checkpoints for exact resume)."""
import re

import numpy as np
import pytest

from puffjax import envs


def _play(env, actions):
    out = []
    for a in actions:
        obs, rew, term, trunc = env.step(a)
        out.append((obs.copy(), rew.copy(), term.copy(), trunc.copy()))
    return out


@pytest.mark.parametrize("name", envs.names())
def test_snapshot_restores_exactly(name):
    rng = np.random.default_rng(0)
    a = envs.make(name, num_envs=16, seed=3)
    n, rows = a.action_space.n, a.num_agents  # rows: 16 x the agents of one env
    for _ in range(50):
        a.step(rng.integers(0, n, rows).astype(np.int32))
    state = a.get_state()
    future = [rng.integers(0, n, rows).astype(np.int32) for _ in range(200)]
    expected = _play(a, future)
    log_a = a.log()
    b = envs.make(name, num_envs=16, seed=99)  # a different history
    b.set_state(state)
    got = _play(b, future)
    for (o1, r1, t1, u1), (o2, r2, t2, u2) in zip(expected, got):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(u1, u2)
    assert b.log() == log_a


def test_snapshot_mismatch_errors():
    a = envs.make("breakout", num_envs=4)
    with pytest.raises(ValueError, match="observations has shape"):
        envs.make("breakout", num_envs=8).set_state(a.get_state())
    with pytest.raises(ValueError, match="is for 'breakout'"):
        envs.make("pong", num_envs=4).set_state(a.get_state())
    with pytest.raises(ValueError, match="is for 'breakout'"):
        envs.make("breakout", num_envs=4, frameskip=2).set_state(a.get_state())


def test_gymnasium_snapshot():
    a = envs.from_gymnasium("CartPole-v1", num_envs=3, seed=0)
    for _ in range(10):
        a.step(np.zeros(3, np.int32))
    state = a.get_state()
    future = [np.ones(3, np.int32)] * 30
    expected = _play(a, future)
    b = envs.from_gymnasium("CartPole-v1", num_envs=3, seed=5)
    b.set_state(state, trusted=True)
    for x, y in zip(expected, _play(b, future)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


# Four-byte words that break most bounds: NaN, infinities, extreme and off-by-one integers.
AWKWARD = np.concatenate([np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e10, -33.0, 600.5], np.float32).view(np.int32),
                          np.array([-(2 ** 31), 2 ** 31 - 1, -1, 0, 1, 2, 3, 4, 5, 21, 64, 1000], np.int32)])


def _state_bytes(env) -> np.ndarray:
    return env.get_state()["envs"].copy()


@pytest.mark.parametrize("name", envs.names())
def test_crafted_snapshots_are_refused_whole_or_step_safely(name):
    """Random bytes, and good snapshots with a few words overwritten (any member, the EnvIO
    pointers and the log included): either ValueError naming the environment, its index and
    a member, with nothing changed, or a state that steps with finite rewards."""
    rng = np.random.default_rng(1)
    a = envs.make(name, num_envs=4, seed=1)
    n, rows = a.action_space.n, a.num_agents
    for _ in range(30):
        a.step(rng.integers(0, n, rows).astype(np.int32))
    good = a.get_state()
    raw = good["envs"]
    words = raw.size // 4
    b = envs.make(name, num_envs=4, seed=2)
    refused = 0
    for trial in range(300):
        crafted = rng.integers(0, 256, raw.size, dtype=np.uint8) if trial % 10 == 0 else raw.copy()
        if trial % 10:
            view = crafted.view(np.int32)
            view[rng.integers(0, words, rng.integers(1, 4))] = rng.choice(AWKWARD)
        before = b.get_state()
        try:
            b.set_state({**good, "envs": crafted})
        except ValueError as e:
            assert re.fullmatch(rf"environment state: {name} environment [0-3] has \S+ out of its bounds "
                                r"\(a damaged or foreign snapshot\); nothing was restored", str(e)), str(e)
            after = b.get_state()
            for k in before:
                np.testing.assert_array_equal(np.asarray(after[k]), np.asarray(before[k]))
            refused += 1
            continue
        for _ in range(3):
            _, rew, _, _ = b.step(rng.integers(0, n, rows).astype(np.int32))
            assert np.isfinite(rew).all()
        b.set_state(good)
    assert refused > 0


@pytest.mark.parametrize("name, field, value", [("breakout", "ball_x", 1e30), ("breakout", "spare_balls", -3),
                                                ("pong", "agent_points", 21), ("cartpole", "x", 2.5)])
def test_a_bad_member_is_named(name, field, value):
    a = envs.make(name, num_envs=3, seed=0)
    good = a.get_state()
    a._c.set_field(2, field, value)
    bad = a.get_state()
    b = envs.make(name, num_envs=3, seed=5)
    before = _state_bytes(b)
    with pytest.raises(ValueError, match=rf"^environment state: {name} environment 2 has {field} out of its bounds"):
        b.set_state(bad)
    np.testing.assert_array_equal(_state_bytes(b), before)
    b.set_state(good)


def test_a_malformed_snapshot_changes_nothing():
    a = envs.make("breakout", num_envs=2, seed=0)
    good = a.get_state()
    b = envs.make("breakout", num_envs=2, seed=1)
    before = b.get_state()
    bad = [
        ([1, 2], "must be a dict"),
        ({k: v for k, v in good.items() if k != "rewards"}, "lacks rewards"),
        ({**good, "options": "frameskip=4"}, "is for 'breakout'"),
        ({**good, "envs": good["envs"][:-1]}, "bytes, expected"),
        ({**good, "envs": good["envs"].astype(np.float32)}, "envs has shape .* and dtype float32"),
        ({**good, "rewards": good["rewards"].astype(np.float64)}, "rewards has shape .* and dtype float64"),
        ({**good, "terminals": good["terminals"][:1]}, r"terminals has shape \(1,\)"),
    ]
    for state, message in bad:
        with pytest.raises(ValueError, match=message):
            b.set_state(state)
        after = b.get_state()
        for k in before:
            np.testing.assert_array_equal(np.asarray(after[k]), np.asarray(before[k]))
