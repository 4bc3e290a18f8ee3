"""The first-step check of Python envs (shape, dtype, and the bounds of every finite Box) runs
however often the envs were reset, as under the Trainer, in this process and in workers;
channels-first images are taken channels-last."""
import warnings

import gymnasium as gym
import numpy as np
import pytest

from puffjax import envs
from puffjax.envs import SpaceError, observation_layout
from puffjax.envs.spaces import channels_first, find_bad_observation

S = gym.spaces


class Vector(gym.Env):
    """A (4,) Box in [-1, 1]; its first step returns ``bad`` (a callable of the env index)
    instead of a valid observation when given."""

    observation_space = S.Box(-1.0, 1.0, (4,), np.float32)
    action_space = S.Discrete(2)

    def __init__(self, bad=None):
        self.bad, self.index = bad, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.index = seed
        return np.zeros(4, np.float32), {}

    def step(self, action):
        obs = np.zeros(4, np.float32) if self.bad is None else self.bad(self.index)
        return obs, 0.0, False, False, {}


def _huge_at_3(index):
    obs = np.zeros(4, np.float32)
    if index == 3:
        obs[2] = 1e6
    return obs


@pytest.mark.parametrize("workers", [0, 2])
def test_a_scalar_for_a_vector_box_is_refused_after_a_second_reset(workers):
    env = envs.from_gymnasium(lambda: Vector(lambda i: np.float32(0.5)), num_envs=4, workers=workers)
    try:
        env.reset(seed=0)  # the Trainer resets the env it is given once more
        with pytest.raises(SpaceError, match=r"environment 0: observation has shape \(\), expected \(4,\)"):
            env.step(np.zeros(4, np.int32))
    finally:
        env.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_an_observation_out_of_bounds_names_env_position_and_value(workers):
    env = envs.from_gymnasium(lambda: Vector(_huge_at_3), num_envs=4, workers=workers)
    try:
        env.reset(seed=0)
        with pytest.raises(SpaceError, match=r"environment 3: observation\[2\] = 1000000.0 is outside \[-1, 1\]"
                                             r".*env.check_bounds = false"):
            env.step(np.zeros(4, np.int32))
    finally:
        env.close()


def test_the_bounds_check_can_be_turned_off_and_runs_only_after_a_reset():
    env = envs.from_gymnasium(lambda: Vector(_huge_at_3), num_envs=4, check_bounds=False)
    env.step(np.zeros(4, np.int32))
    assert env.observations[3, 2] == 1e6
    env.close()
    env = envs.from_gymnasium(lambda: Vector(_huge_at_3), num_envs=4)
    env._check_step = False  # as after the first step: later steps are not checked
    env.step(np.zeros(4, np.int32))
    env.reset()  # checks its own observations, and the next step's
    with pytest.raises(SpaceError, match="environment 3"):
        env.step(np.zeros(4, np.int32))
    env.close()


def test_the_first_step_is_checked_under_the_trainer(tiny_config, train_run):
    env = envs.from_gymnasium(lambda: Vector(_huge_at_3), num_envs=4)
    with pytest.raises(SpaceError, match=r"environment 3: observation\[2\] = 1000000.0"):
        train_run(tiny_config(**{"env.num_envs": 4, "train.bptt_horizon": 4, "train.minibatch_size": 16,
                                 "train.total_timesteps": 16}), env=env)


class Pair:
    """A PettingZoo Parallel API env of two agents whose second agent's first step is out of bounds."""

    possible_agents = ["a", "b"]

    def __init__(self):
        self.agents = []

    def observation_space(self, agent):
        return S.Box(0.0, 1.0, (2,), np.float32)

    def action_space(self, agent):
        return S.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        return {a: np.zeros(2, np.float32) for a in self.agents}, {}

    def step(self, actions):
        obs = {"a": np.zeros(2, np.float32), "b": np.array([0.0, -3.0], np.float32)}
        zeros = dict.fromkeys(self.agents, 0.0)
        false = dict.fromkeys(self.agents, False)
        return obs, zeros, false, false, {}

    def close(self):
        pass


def test_pettingzoo_bounds_name_the_agent_and_skip_masked_rows():
    env = envs.from_pettingzoo(Pair, num_envs=3)
    env.reset(seed=1)
    with pytest.raises(SpaceError, match=r"environment 0, agent 1: observation\[1\] = -3.0 is outside \[0, 1\]"):
        env.step(np.zeros(6, np.int32))
    env.close()
    layout = observation_layout(S.Box(1.0, 2.0, (2,), np.float32))
    rows = np.array([[1.5, 1.5], [0.0, 0.0]], np.float32)  # the second row: a masked agent's zeros
    assert find_bad_observation(layout, rows, np.array([True, False])) is None
    assert find_bad_observation(layout, rows)[0] == 1


class Frames(gym.Env):
    """Four stacked 6x5 frames, channels-first, as gymnasium's FrameStackObservation gives them;
    pixel (c, y, x) holds 100 c + 10 y + x."""

    observation_space = S.Box(0, 255, (4, 6, 5), np.uint8)
    action_space = S.Discrete(2)
    frame = (np.arange(4)[:, None, None] * 100 + np.arange(6)[None, :, None] * 10
             + np.arange(5)[None, None, :]).astype(np.uint8)

    def reset(self, seed=None, options=None):
        return self.frame.copy(), {}

    def step(self, action):
        return self.frame.copy(), 0.0, False, False, {}


@pytest.mark.parametrize("shape,expected", [((4, 84, 84), True), ((1, 64, 48), True), ((84, 84, 4), False),
                                            ((3, 3, 64), False), ((5, 84, 84), False), ((4, 84), False)])
def test_channels_first_detection(shape, expected):
    assert channels_first(S.Box(0, 255, shape, np.uint8)) is expected


@pytest.mark.parametrize("workers", [0, 1])
def test_channels_first_images_are_taken_channels_last(workers):
    with pytest.warns(UserWarning, match=r"\(4, 6, 5\) look channels-first; .* as \(6, 5, 4\)"):
        env = envs.from_gymnasium(Frames, num_envs=2, workers=workers)
    try:
        assert env.observation_space.shape == (6, 5, 4) and env.observations.shape == (2, 6, 5, 4)
        env.step(np.zeros(2, np.int32))
        np.testing.assert_array_equal(env.observations[1], np.transpose(Frames.frame, (1, 2, 0)))
    finally:
        env.close()


def test_a_bad_pixel_of_a_channels_first_image_is_named_where_the_env_put_it():
    layout = observation_layout(S.Box(0.0, 1.0, (2, 3, 4), np.float32))
    assert layout.row_shape == (3, 4, 2) and layout.row_space.shape == (3, 4, 2)
    value = np.zeros((2, 3, 4), np.float32)
    value[1, 2, 0] = 7.0
    rows = layout.flatten(value)[None]
    assert find_bad_observation(layout, rows)[0] == 0
    assert "observation[1, 2, 0] = 7.0" in find_bad_observation(layout, rows)[1]


def test_an_env_whose_images_are_channels_last_gets_no_note():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = envs.from_gymnasium(lambda: gym.make("CartPole-v1"), num_envs=1)
    env.close()
