"""The rollout: stepping the agents in overlapped groups plays exactly what one group plays."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import puffjax
from puffjax import envs, parallel
from puffjax.rollout import Timer, collect, groups_for


@pytest.mark.parametrize("name", ["memory", "squared"])  # recurrent with float obs; feed-forward with uint8 obs
def test_groups_do_not_change_the_rollout(tiny_config, name):
    cfg = tiny_config(name, **{"env.num_envs": 32, "train.bptt_horizon": 8, "train.batch_size": 512,
                               "train.minibatch_size": 256, "train.total_timesteps": 512})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    assert trainer.groups == 2 and trainer.geom.rows_per_agent == 2
    results = []
    for groups in (1, 2, 4):
        env = envs.make(name, num_envs=32, seed=5)
        size = 32 // groups
        carries = [jax.device_put(trainer.policy.initial_carry(size), parallel.rows(trainer.mesh))
                   for _ in range(groups)]
        prev = [jnp.full(size, 0.5, jnp.float32) for _ in range(groups)]
        buf = jax.tree.map(jnp.zeros_like, trainer.buf)
        timer = Timer()
        returns = [jnp.zeros(size, jnp.float32) for _ in range(groups)]
        buf, key, prev, _, _ = collect(env, trainer.act, trainer.state.params, buf, carries, jax.random.PRNGKey(9),
                                       prev, returns, trainer.stats, trainer._empty_acc(), trainer.geom, timer,
                                       epoch=1, mesh=trainer.mesh)
        results.append((jax.tree.map(np.asarray, buf), np.asarray(key), np.concatenate([np.asarray(p) for p in prev]),
                        env.observations.copy(), env.log()))
        assert set(timer.pop()) == {"copy", "rollout", "env"}
        env.close()
    (buf1, key1, prev1, obs1, log1) = results[0]
    for buf2, key2, prev2, obs2, log2 in results[1:]:
        for a, b in zip(buf1, buf2):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(key1, key2)
        np.testing.assert_array_equal(prev1, prev2)
        np.testing.assert_array_equal(obs1, obs2)
        assert log1 == log2
    assert np.any(buf1.actions != 0) and np.any(buf1.episode_starts[:, 1:] > 0)  # a real rollout
    trainer.close()


def test_step_range_steps_only_its_environments():
    full, part = envs.make("breakout", num_envs=12, seed=3), envs.make("breakout", num_envs=12, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = rng.integers(0, 3, 12).astype(np.int32)
        full.step(actions)
        before = part.observations.copy()
        part.step_range(0, 5, actions[:5])
        np.testing.assert_array_equal(part.observations[5:], before[5:])  # untouched
        part.step_range(5, 12, actions[5:])
        np.testing.assert_array_equal(part.observations, full.observations)
        np.testing.assert_array_equal(part.rewards, full.rewards)
    with pytest.raises(IndexError, match="not within"):
        part.step_range(4, 13)
    with pytest.raises(ValueError, match=r"actions\[3\] = 7 is out of range"):
        part.step_range(2, 4, np.array([0, 7], np.int32))


def test_groups_for():
    class NoRange:  # a vector env that can only step all its environments at once
        num_envs = 4

    env = envs.make("cartpole", num_envs=4)
    assert groups_for(env, 4) == 2 and groups_for(env, 3) == 1 and groups_for(NoRange(), 4) == 1
    odd = envs.make("cartpole", num_envs=3)
    assert groups_for(odd, 4) == 1  # an environment's agents step together: its count must split too
    # A requested count (train.rollout_groups): kept when possible, else an error saying why.
    assert groups_for(env, 4, 1) == 1 and groups_for(env, 4, 4) == 4 and groups_for(env, 4, "auto") == 2
    for requested, match in ((2, "3 agents per device do not split into 2"), (0, "a positive integer"),
                             ("two", "'auto' or a positive integer")):
        with pytest.raises(ValueError, match=f"train.rollout_groups.*{match}"):
            groups_for(env, 3, requested)
    with pytest.raises(ValueError, match="3 environments do not split into 2 groups"):
        groups_for(odd, 4, 2)
    with pytest.raises(ValueError, match="can only step all its environments at once"):
        groups_for(NoRange(), 4, 2)
    assert groups_for(NoRange(), 4, 1) == 1


@pytest.mark.parametrize("requested, expected", [("auto", 2), ("1", 1), (4, 4)])
def test_rollout_groups_switch(tiny_config, train_run, requested, expected):
    trainer, history = train_run(tiny_config(**{"train.rollout_groups": requested}))
    assert trainer.groups == expected and len(history) == 1
