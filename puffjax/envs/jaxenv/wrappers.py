"""Wrappers that add to a :class:`~puffjax.envs.jaxenv.protocol.JaxEnv` what the rest of puffjax reads."""
from __future__ import annotations

import jax.numpy as jnp

from .protocol import JaxEnv


class ReturnAsPerf(JaxEnv):
    """``env`` with a ``perf`` log field: the episode's return. Suites without a normalised score
    report it so, as the gymnasium envs do (``environment/perf`` is what sweeps maximise by
    default). The state is ``(env's state, return so far)``."""

    def __init__(self, env: JaxEnv):
        self.env = env
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.agents_per_env = env.agents_per_env
        self.log_names = ("perf", *(k for k in env.log_names if k != "perf"))

    def reset(self, key):
        state, obs = self.env.reset(key)
        return (state, jnp.zeros((), jnp.float32)), obs

    def step(self, key, state, action):
        inner, episode_return = state
        inner, obs, reward, terminated, truncated, info = self.env.step(key, inner, action)
        episode_return = episode_return + reward
        return (inner, episode_return), obs, reward, terminated, truncated, {**info, "perf": episode_return}
