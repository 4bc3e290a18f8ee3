"""Environment snapshots (used by checkpoints for exact resume)."""
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
    b.set_state(state)
    for x, y in zip(expected, _play(b, future)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
