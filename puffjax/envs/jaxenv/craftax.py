"""Craftax and Craftax-Classic (symbolic or pixel observations) as :class:`JaxEnv` s.

    puffjax.envs.make("craftax:Craftax-Classic-Symbolic-v1", num_envs=64)

The step is the suite's own ``step_env`` without auto-reset (the gymnax-style interface of
``make_craftax_env_from_name(id, auto_reset=False)``). Craftax folds its time limit into
``done``; ``truncated`` is the time limit (``timestep >= max_timesteps``) and ``terminated``
the suite's game-over test with the time limit lifted (death, lava, the boss beaten). Options
replace fields of its ``EnvParams`` (``max_timesteps=1000``). Logs ``score``: Craftax's
per-episode score (its geometric mean over achievements, in percent).
"""
from __future__ import annotations

import jax.numpy as jnp

from ..spaces import observation_layout
from .protocol import JaxEnv, obs_row

try:
    from craftax.craftax_env import make_craftax_env_from_name
except ImportError as e:
    raise ImportError(f"Craftax environments need craftax: pip install 'puffjax[craftax]' ({e})") from e

from gymnasium import spaces

IDS = ("Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1", "Craftax-Symbolic-v1", "Craftax-Pixels-v1")
_NO_LIMIT = jnp.iinfo(jnp.int32).max


def _gym_space(space):
    if hasattr(space, "n"):
        return spaces.Discrete(int(space.n))
    return spaces.Box(float(space.low), float(space.high), tuple(space.shape), jnp.dtype(space.dtype))


class CraftaxEnv(JaxEnv):
    """One Craftax environment ``env`` (no auto-reset) with parameters ``params``."""

    log_names = ("score",)

    def __init__(self, env, params):
        self.craftax_env, self.params = env, params
        self.observation_space = _gym_space(env.observation_space(params))
        self.action_space = _gym_space(env.action_space(params))
        self.obs_layout = observation_layout(self.observation_space)
        self._unlimited = params.replace(max_timesteps=_NO_LIMIT)

    def reset(self, key):
        obs, state = self.craftax_env.reset_env(key, self.params)
        return state, obs_row(self.obs_layout, obs)

    def step(self, key, state, action):
        obs, state, reward, _, info = self.craftax_env.step_env(key, state, action, self.params)
        terminated = self.craftax_env.is_terminal(state, self._unlimited)
        truncated = state.timestep >= self.params.max_timesteps
        return (state, obs_row(self.obs_layout, obs), jnp.asarray(reward, jnp.float32), terminated, truncated,
                {"score": info["score"]})


def make(env_id: str, **options) -> CraftaxEnv:
    """The Craftax environment ``env_id`` (one of :data:`IDS`), ``options`` replacing its parameters."""
    if env_id not in IDS:
        raise ValueError(f"unknown Craftax environment {env_id!r}; use one of {', '.join(IDS)}")
    env = make_craftax_env_from_name(env_id, auto_reset=False)
    params = env.default_params
    unknown = sorted(set(options) - set(params.__dataclass_fields__))
    if unknown:
        raise ValueError(f"craftax:{env_id}: unknown option {unknown[0]!r}; its parameters are "
                         f"{', '.join(params.__dataclass_fields__)}")
    return CraftaxEnv(env, params.replace(**options))
