"""Brax environments (``brax.envs``: ant, halfcheetah, hopper, inverted_pendulum, reacher...) as
:class:`JaxEnv` s.

    puffjax.envs.make("brax:inverted_pendulum", num_envs=64, backend="positional")

``brax.envs.get_environment(env_id, backend=...)`` wrapped in Brax's own ``EpisodeWrapper``
(the one its PPO trains with): ``action_repeat`` steps per action with their rewards summed, and
the episode cut after ``episode_length`` steps. ``truncated`` is the wrapper's ``truncation``
flag (the time limit reached by an episode that was not already done) and ``terminated`` the
environment's own end (a fallen hopper, a flipped ant); Brax's auto-reset is left out (
:func:`~puffjax.envs.jaxenv.vec_step` resets). Observations are a Box of the environment's
``observation_size``, actions a Box in [-1, 1] of its ``action_size``. Brax steps without
randomness, so ``step``'s key is unused. Options: ``backend`` (``"generalized"``,
``"positional"``, ``"spring"``, ``"mjx"``; default the environment's own), ``episode_length``
(default 1000), ``action_repeat`` (default 1); any other goes to the environment's constructor.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from gymnasium import spaces

from .protocol import JaxEnv

try:
    import brax.envs
    from brax.envs.wrappers.training import EpisodeWrapper
except ImportError as e:
    raise ImportError(f"Brax environments need brax: pip install 'puffjax[brax]' ({e})") from e


class BraxEnv(JaxEnv):
    """One Brax environment ``env`` (a ``brax.envs.Env``) cut into episodes of ``episode_length``
    steps, each action repeated ``action_repeat`` times."""

    def __init__(self, env, episode_length: int = 1000, action_repeat: int = 1):
        if episode_length < 1 or action_repeat < 1:
            raise ValueError(f"Brax: episode_length ({episode_length}) and action_repeat ({action_repeat}) "
                             "must be at least 1")
        self.brax_env = EpisodeWrapper(env, episode_length, action_repeat)
        self.observation_space = spaces.Box(-np.inf, np.inf, (int(env.observation_size),), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (int(env.action_size),), np.float32)

    def reset(self, key):
        state = self.brax_env.reset(key)
        return state, jnp.asarray(state.obs, jnp.float32)

    def step(self, key, state, action):
        state = self.brax_env.step(state, jnp.asarray(action, jnp.float32))
        truncated = state.info["truncation"] > 0
        terminated = (state.done > 0) & ~truncated
        return state, jnp.asarray(state.obs, jnp.float32), jnp.asarray(state.reward, jnp.float32), terminated, \
            truncated, {}


def make(env_id: str, episode_length: int = 1000, action_repeat: int = 1, **options) -> BraxEnv:
    """The Brax environment ``env_id`` (a name of ``brax.envs``), ``options`` (``backend=`` and the
    environment's own keywords) going to ``brax.envs.get_environment``."""
    names = sorted(brax.envs._envs)
    if env_id not in names:
        raise ValueError(f"unknown Brax environment {env_id!r}; Brax has {', '.join(names)}")
    try:
        env = brax.envs.get_environment(env_id, **options)
    except (TypeError, ValueError) as e:
        raise ValueError(f"brax:{env_id}: bad option ({e})") from None
    return BraxEnv(env, int(episode_length), int(action_repeat))
