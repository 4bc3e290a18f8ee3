"""One gymnasium environment over one buffer row (the driver :class:`puffjax.envs.PyVecEnv` steps).

A driver reads its action from its row of ``actions``, steps its env, and writes the
observation (flattened, :mod:`puffjax.envs.spaces`), reward, terminal, truncation and mask into
its rows; an episode that ends resets at once (the row then holds the new episode's first
observation, while reward and flags belong to the finished one). The observations of each
reset and of the first step after it are checked against the env's declared space (the key,
shape or dtype that does not fit is named); later ones are written without checks.
"""
from __future__ import annotations

import numpy as np


class GymnasiumDriver:
    """Drives one ``gymnasium.Env`` (one agent). ``rows``: this env's rows of the buffers
    (``observations``, ``actions``, ``rewards``, ``terminals``, ``truncations``, ``masks``, each
    ``[1, ...]``); ``log``: the block's :class:`puffjax.envs._common.EpisodeLog`.

    Log fields: ``episode_return``, ``episode_length`` (steps) and ``perf``, which is the
    episode return (a gymnasium env has no normalised score)."""

    LOG_NAMES = ("perf", "episode_return", "episode_length")

    @staticmethod
    def spaces(env):
        """(observation space, action space, agents per env) of a freshly made env."""
        return env.observation_space, env.action_space, 1

    def __init__(self, env, index: int, rows, obs_layout, act_layout, log, where: str):
        self.env, self.index, self.rows, self.log = env, index, rows, log
        self.obs_layout, self.act_layout = obs_layout, act_layout
        self.where = f"{where}: environment {index}: "  # for messages
        self.episode_return, self.episode_length = 0.0, 0
        self.checks_left = 0  # observations still to check: a reset's and the first step's after it

    def _write_obs(self, obs) -> None:
        if self.checks_left:
            self.obs_layout.check(obs, self.where)
            self.checks_left -= 1
        self.obs_layout.write(self.rows.observations[0], obs)

    def reset(self, seed: int | None) -> None:
        obs, _ = self.env.reset(seed=seed)
        self.checks_left = 2
        self._write_obs(obs)
        r = self.rows
        r.rewards[0], r.terminals[0], r.truncations[0], r.masks[0] = 0.0, False, False, True
        self.episode_return, self.episode_length = 0.0, 0

    def _action(self):
        a = self.rows.actions[0]
        layout = self.act_layout
        if layout.plain:
            return int(a) if layout.dtype == np.int32 else a
        return layout.unflatten(a)

    def step(self) -> None:
        obs, reward, terminated, truncated, _ = self.env.step(self._action())
        self.episode_return += float(reward)
        self.episode_length += 1
        if terminated or truncated:
            self.log.add(perf=self.episode_return, episode_return=self.episode_return,
                         episode_length=self.episode_length)
            self.episode_return, self.episode_length = 0.0, 0
            obs, _ = self.env.reset()
        self._write_obs(obs)
        r = self.rows
        r.rewards[0] = reward
        r.terminals[0] = bool(terminated)
        r.truncations[0] = bool(truncated) and not terminated

    def render(self):
        return self.env.render()

    # Snapshots: the env itself is pickled with the driver's counters.
    def get_state(self):
        return self.env, self.episode_return, self.episode_length

    def set_state(self, state) -> None:
        self.env, self.episode_return, self.episode_length = state
        self.checks_left = 0

    def close(self) -> None:
        self.env.close()
