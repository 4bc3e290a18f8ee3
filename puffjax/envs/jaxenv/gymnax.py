"""gymnax environments (classic control, bsuite, MinAtar, misc) as :class:`JaxEnv` s.

    puffjax.envs.make("gymnax:Breakout-MinAtar", num_envs=64)

``gymnax.make(env_id)`` gives the environment and its default parameters; an option that names
a parameter (``max_steps_in_episode=200``) replaces it, any other goes to ``gymnax.make``. The
step is gymnax's ``step_env`` (no auto-reset: :func:`~puffjax.envs.jaxenv.vec_step` resets),
``terminated`` is what it returns and ``truncated`` gymnax's ``is_truncated`` (the time limit),
so the two stay apart as gymnax 1.x keeps them.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ..spaces import observation_layout
from .protocol import JaxEnv, obs_row

try:
    import gymnax
    from gymnax.environments.spaces import gymnax_space_to_gym_space
except ImportError as e:
    raise ImportError(f"gymnax environments need gymnax: pip install 'puffjax[gymnax]' ({e})") from e


class GymnaxEnv(JaxEnv):
    """One gymnax environment ``env`` with parameters ``params`` (what ``gymnax.make`` returns)."""

    def __init__(self, env, params):
        self.gymnax_env, self.params = env, params
        self.observation_space = gymnax_space_to_gym_space(env.observation_space(params))
        self.action_space = gymnax_space_to_gym_space(env.action_space(params))
        self.obs_layout = observation_layout(self.observation_space)

    def reset(self, key):
        obs, state = self.gymnax_env.reset_env(key, self.params)
        return state, obs_row(self.obs_layout, obs)

    def step(self, key, state, action):
        obs, state, reward, terminated, info = self.gymnax_env.step_env(key, state, action, self.params)
        truncated = self.gymnax_env.is_truncated(state, self.params)
        return state, obs_row(self.obs_layout, obs), jnp.asarray(reward, jnp.float32), terminated, truncated, {}


def make(env_id: str, **options) -> GymnaxEnv:
    """The gymnax environment ``env_id`` with ``options`` (parameters or ``gymnax.make`` keywords)."""
    if env_id not in gymnax.registered_envs:
        raise ValueError(f"unknown gymnax environment {env_id!r}; gymnax has {', '.join(gymnax.registered_envs)}")
    env, params = gymnax.make(env_id)
    names = {f.name for f in dataclasses.fields(params)}
    make_kwargs = {k: v for k, v in options.items() if k not in names}
    if make_kwargs:
        try:
            env, params = gymnax.make(env_id, **make_kwargs)
        except TypeError as e:
            raise ValueError(f"gymnax:{env_id}: bad option ({e}); its parameters are {', '.join(sorted(names))}") from None
    fields = {k: v for k, v in options.items() if k in names}
    return GymnaxEnv(env, params.replace(**fields) if fields else params)
