"""Multi-agent C envs (Snake: K agents per env, one buffer row each), masks in the update, and
Snake learning by self-play."""
import jax
import numpy as np
import pytest

import puffjax
from puffjax import envs


def test_rows_belong_to_their_environment_and_agents_step_together():
    K = 3
    vec = envs.make("snake", num_envs=4, agents=K, seed=5)
    one = envs.make("snake", num_envs=1, agents=K, seed=5)  # environment 0 of the same seed
    assert vec.num_envs == 4 and vec.agents_per_env == K and vec.num_agents == 4 * K
    assert vec.observations.shape == (4 * K, 196) and vec.observations.dtype == np.uint8
    assert vec.actions.shape == (4 * K,) and vec.masks.all()
    np.testing.assert_array_equal(vec.observations[:K], one.observations)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(300):
        a = rng.integers(0, 3, 4 * K).astype(np.int32)
        vec.step(a)
        one.step(a[:K])
        for name in ("observations", "rewards", "terminals", "truncations"):
            np.testing.assert_array_equal(getattr(vec, name)[:K], getattr(one, name))
        ended += int(vec.terminals.sum())
    assert ended > 0
    log = vec.log()
    assert log["n"] >= ended and set(log) == {"perf", "score", "episode_return", "episode_length", "n"}


def test_snake_same_trajectories_for_any_thread_count():
    acts = np.random.default_rng(1).integers(0, 3, (100, 5 * 4)).astype(np.int32)
    runs = []
    for threads in (1, 3):
        env = envs.make("snake", num_envs=5, threads=threads, seed=2)
        runs.append([tuple(x.copy() for x in env.step(a)) for a in acts])
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_snake_rules():
    env = envs.make("snake", num_envs=1, agents=1, width=8, height=8, food=1, seed=0)
    c = env._c
    for cell in range(64):  # an empty grid, the snake at (3, 3) heading up, a pellet 2 cells ahead
        c.set_field(0, "grid", 0, cell)
    env.reset()
    grid = np.array([c.get_field(0, "grid", i) for i in range(64)]).reshape(8, 8)
    assert (grid >= 2).sum() == 1 and (grid == 1).sum() == 1  # one snake cell, one pellet
    # Drive straight into the top wall from wherever it is: -1 and a new episode.
    for _ in range(20):
        o, r, d, t = env.step(np.array([1], np.int32))
        if d[0]:
            assert r[0] == -1.0
            break
    else:
        pytest.fail("never hit a wall going straight")
    assert env.log()["n"] == 1


def test_masked_steps_do_not_change_the_update(tmp_path):
    """Steps whose mask is 0 (an agent that finished early: PettingZoo semantics, episode-start
    flags set) can hold anything: the update is the same."""
    cfg = puffjax.load_config("snake", **{"train.data_dir": str(tmp_path), "train.video_frames": 0,
                                          "env.num_envs": 8, "train.bptt_horizon": 16,
                                          "train.minibatch_size": 256, "train.total_timesteps": 8 * 4 * 16})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    buf = trainer.collect()
    b = jax.tree.map(np.array, buf)
    S, H = b.masks.shape
    rng = np.random.default_rng(0)
    masks = np.ones((S, H), np.float32)
    for row in rng.choice(S, S // 2, replace=False):  # half the rows: the agent finished at column k
        k = int(rng.integers(1, H - 1))
        masks[row, k:] = 0.0
        b.episode_starts[row, k:] = 1.0
    a = b._replace(masks=masks)
    noisy = a._replace(obs=np.where(masks[..., None] > 0, a.obs, rng.integers(0, 2, a.obs.shape).astype(np.uint8)),
                       actions=np.where(masks > 0, a.actions, rng.integers(0, 3, a.actions.shape)).astype(np.int32),
                       logprobs=np.where(masks > 0, a.logprobs, rng.normal(size=(S, H))).astype(np.float32),
                       values=np.where(masks > 0, a.values, rng.normal(size=(S, H))).astype(np.float32))
    # a masked step's reward is the previous step's outcome: only the first one after a live step counts
    first_masked = (masks == 0) & (np.roll(masks, 1, axis=1) > 0)
    noisy = noisy._replace(rewards=np.where((masks > 0) | first_masked, a.rewards,
                                            rng.normal(size=(S, H))).astype(np.float32))
    key = jax.random.PRNGKey(3)
    out = [trainer.train_epoch(trainer.state, jax.device_put(x), key, 0) for x in (a, noisy)]
    for p, q in zip(jax.tree.leaves(out[0][0].params), jax.tree.leaves(out[1][0].params)):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-6, atol=1e-7)
    for k in ("policy_loss", "value_loss", "entropy"):
        assert float(out[0][1][k]) == pytest.approx(float(out[1][1][k]), rel=1e-5, abs=1e-7)
    trainer.close()


def _run(tmp_path, **overrides):
    cfg = puffjax.load_config("snake", **{"train.data_dir": str(tmp_path), "train.video_frames": 0, **overrides})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    history = trainer.train()
    trainer.close()
    return trainer, history


def test_snake_learns_by_self_play(tmp_path):
    """Four snakes per grid, one shared policy. Random play: return about -0.6 (dies in ~19 steps,
    0.4 pellets). After 300k agent steps (~10 s here) the snakes eat pellets and live longer."""
    trainer, history = _run(tmp_path, **{"train.total_timesteps": 300_000})
    assert trainer.env.num_agents == 64 * 4
    assert history[-1]["agent_steps"] == trainer.geom.total_epochs * trainer.geom.batch_size
    returns = [h["environment/episode_return"] for h in history if "environment/episode_return" in h]
    assert returns[0] < 0.5
    assert np.mean(returns[-3:]) > 4.0, returns


@pytest.mark.slow
def test_snake_learns_longer(tmp_path):
    _, history = _run(tmp_path)
    returns = [h["environment/episode_return"] for h in history if "environment/episode_return" in h]
    assert np.mean(returns[-3:]) > 12.0, returns
