"""The PettingZoo Parallel API adapter on a small hand-written env: rows, masks of agents that
finish early, logs, workers, training (masked steps not counted), and refused input."""
import functools

import gymnasium as gym
import numpy as np
import pytest

from puffjax import envs

OBS = gym.spaces.Dict({"pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "me": gym.spaces.Discrete(3)})
ACT = gym.spaces.Discrete(2)


class Trio:
    """Three agents. Each step an agent earns 1 for the action (t % 2). Agent "b" terminates
    after its 3rd step, "c" is truncated after its 5th, "a" terminates after its 6th, which ends
    the episode. Checks that it is never sent an action for a finished agent."""

    metadata = {"render_modes": [], "name": "trio"}
    possible_agents = ["a", "b", "c"]
    ends = {"b": (3, "term"), "c": (5, "trunc"), "a": (6, "term")}

    def __init__(self, change_space_at=None):
        self.change_space_at = change_space_at
        self.agents = []
        self.t = 0

    @functools.lru_cache(maxsize=None)
    def _obs_space(self, agent):
        return OBS

    def observation_space(self, agent):
        if self.change_space_at is not None and self.t >= self.change_space_at and agent == "a":
            return gym.spaces.Dict({"pos": gym.spaces.Box(-1.0, 1.0, (3,), np.float32), "me": gym.spaces.Discrete(3)})
        return self._obs_space(agent)

    def action_space(self, agent):
        return ACT

    def _obs(self, agent):
        return {"pos": np.array([self.t / 10, self.rng.uniform(-1, 1)], np.float32), "me": self.possible_agents.index(agent)}

    def reset(self, seed=None, options=None):
        if seed is not None or not hasattr(self, "rng"):
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.t += 1
        obs = {a: self._obs(a) for a in self.agents}
        rewards = {a: float(actions[a] == self.t % 2) for a in self.agents}
        term = {a: self.ends[a] == (self.t, "term") for a in self.agents}
        trunc = {a: self.ends[a] == (self.t, "trunc") for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, infos

    @property
    def unwrapped(self):
        return self

    def render(self):
        return np.zeros((4, 4, 3), np.uint8)

    def close(self):
        pass


def test_the_hand_written_env_follows_the_parallel_api():
    test = pytest.importorskip("pettingzoo.test")
    test.parallel_api_test(Trio(), num_cycles=20)


def test_rows_masks_and_logs():
    env = envs.from_pettingzoo(Trio, num_envs=2, seed=0)
    assert env.num_envs == 2 and env.agents_per_env == 3 and env.num_agents == 6
    assert env.observation_space == OBS and env.observations.shape == (6, 3)
    assert env.masks.all()
    rng = np.random.default_rng(0)
    for t in range(1, 7):
        env.step(rng.integers(0, 2, 6))
        m = env.masks.reshape(2, 3)
        if t < 3:
            assert m.all()
        elif t == 3:  # b has just terminated: its reward and flag are real, its next obs masked
            assert env.terminals.reshape(2, 3)[:, 1].all() and (m == [True, False, True]).all()
        elif t == 4:  # b is masked: zeros, reward 0, terminal set, not live
            assert (m == [True, False, True]).all()
            assert np.all(env.observations.reshape(2, 3, 3)[:, 1] == 0)
            assert np.all(env.rewards.reshape(2, 3)[:, 1] == 0) and env.terminals.reshape(2, 3)[:, 1].all()
        elif t == 5:  # c truncated
            assert env.truncations.reshape(2, 3)[:, 2].all() and (m == [True, False, False]).all()
        else:  # a terminated: the episode is over, every agent live again in the new one
            assert env.terminals.reshape(2, 3)[:, 0].all() and m.all()
    log = env.log()
    assert log["n"] == 6 and log["episode_length"] == pytest.approx((3 + 5 + 6) / 3)


def test_make_detects_a_parallel_env_factory(monkeypatch):
    env = envs.make("test_pettingzoo:Trio", num_envs=2)
    assert env.agents_per_env == 3 and env.num_agents == 6


def test_workers_give_the_serial_trajectories():
    serial = envs.from_pettingzoo(Trio, num_envs=3, seed=4)
    parallel = envs.from_pettingzoo(Trio, num_envs=3, seed=4, workers=2)
    try:
        rng = np.random.default_rng(1)
        for _ in range(40):
            a = rng.integers(0, 2, 9)
            for x, y in zip(serial.step(a), parallel.step(a)):
                np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(serial.masks, parallel.masks)
        assert serial.log() == parallel.log()
    finally:
        serial.close()
        parallel.close()


def test_masked_steps_are_not_counted_and_training_runs(tiny_config, train_run):
    env = envs.from_pettingzoo(Trio, num_envs=4, seed=0)
    cfg = tiny_config(**{"env.num_envs": 4, "train.bptt_horizon": 12, "train.minibatch_size": 144,
                         "train.total_timesteps": 2 * 144})
    _, history = train_run(cfg, env=env)
    # 12 steps per env and epoch = 2 episodes of 6: 2 x (6 + 3 + 5) live agent steps of 2 x 18 rows
    assert [h["agent_steps"] for h in history] == [4 * 28, 2 * 4 * 28]
    assert all(np.isfinite(h["losses/policy_loss"]) for h in history)
    assert history[-1]["environment/n"] > 0


def test_agents_changing_spaces_mid_episode_are_refused():
    env = envs.from_pettingzoo(lambda: Trio(change_space_at=2), num_envs=1)
    env.step(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="agent 'a' changed its observation space mid-episode"):
        env.step(np.zeros(3, np.int64))


class Mixed(Trio):
    def action_space(self, agent):
        return gym.spaces.Discrete(3) if agent == "c" else ACT


class Stranger(Trio):
    def step(self, actions):
        obs, *rest = super().step(actions)
        obs["zed"] = obs.pop("a")
        return (obs, *rest)


def test_bad_parallel_envs_are_refused():
    with pytest.raises(ValueError, match="same action space"):
        envs.from_pettingzoo(Mixed, num_envs=1)
    env = envs.from_pettingzoo(Stranger, num_envs=1)
    with pytest.raises(ValueError, match="agent 'zed' is not in possible_agents"):
        env.step(np.zeros(3, np.int64))
