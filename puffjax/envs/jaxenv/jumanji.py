"""Jumanji environments (Snake, Game2048, Tetris, Sokoban, RubiksCube...) as :class:`JaxEnv` s.

    puffjax.envs.make("jumanji:Snake-v1", num_envs=64)

``jumanji.make(env_id, **options)`` stepped through its TimeStep API without auto-reset
(:func:`~puffjax.envs.jaxenv.vec_step` resets): an episode ends at a ``LAST`` step; with
``discount`` 0 it is ``terminated``, with a discount above 0 (the time limit) ``truncated``.
The observation (a structure of arrays) is converted from Jumanji's specs into a gymnasium space
(a ``Dict`` of its fields; ``DiscreteArray`` -> ``Discrete``, ``MultiDiscreteArray`` ->
``MultiDiscrete``, boolean arrays -> ``MultiBinary``, other arrays -> ``Box``) and flattened
into one buffer row with :func:`~puffjax.envs.jaxenv.obs_row`. Actions: ``DiscreteArray`` or
``MultiDiscreteArray`` specs. Jumanji keeps its randomness in the state, so ``step``'s key is
unused. Logs the scalar ``extras`` of its TimeStep (e.g. Game2048's ``highest_tile``) as they
stand at an episode's last step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces

from ..spaces import observation_layout
from .protocol import JaxEnv, obs_row

try:
    import jumanji
    from jumanji import specs
    from jumanji.types import StepType
except ImportError as e:
    raise ImportError(f"Jumanji environments need jumanji: pip install 'puffjax[jumanji]' ({e})") from e


def gym_space(spec, where: str = "observation"):
    """The gymnasium space of a Jumanji spec (nested specs become a ``Dict`` of their fields)."""
    if isinstance(spec, specs.DiscreteArray):
        return spaces.Discrete(int(spec.num_values))
    if isinstance(spec, specs.MultiDiscreteArray):
        return spaces.MultiDiscrete(np.asarray(spec.num_values, np.int64))
    if isinstance(spec, specs.Array):
        dtype, shape = np.dtype(spec.dtype), tuple(spec.shape)
        if dtype == np.bool_:
            return spaces.MultiBinary(shape[0] if len(shape) == 1 else list(shape)) if shape else spaces.Discrete(2)
        if isinstance(spec, specs.BoundedArray):
            low, high = np.broadcast_to(spec.minimum, shape), np.broadcast_to(spec.maximum, shape)
        else:
            info = np.finfo(dtype) if np.issubdtype(dtype, np.floating) else np.iinfo(dtype)
            low, high = np.full(shape, -np.inf if dtype.kind == "f" else info.min), \
                np.full(shape, np.inf if dtype.kind == "f" else info.max)
        return spaces.Box(np.asarray(low, dtype), np.asarray(high, dtype), shape, dtype)
    if hasattr(spec, "_specs"):
        return spaces.Dict({k: gym_space(v, f"{where}.{k}") for k, v in spec._specs.items()})
    raise ValueError(f"Jumanji {where} spec {type(spec).__name__} has no gymnasium space here")


def _fields(obs):
    """A Jumanji observation with its NamedTuples as dicts (obs_row reads tuples by index)."""
    return {k: _fields(v) for k, v in obs._asdict().items()} if hasattr(obs, "_asdict") else obs


class JumanjiEnv(JaxEnv):
    """One Jumanji environment ``env`` (a ``jumanji.Environment``) with discrete actions."""

    def __init__(self, env):
        self.jumanji_env = env
        self.observation_space = gym_space(env.observation_spec)
        self.obs_layout = observation_layout(self.observation_space)
        action = env.action_spec
        if not isinstance(action, (specs.DiscreteArray, specs.MultiDiscreteArray)):
            raise ValueError(f"Jumanji {type(env).__name__}: actions of spec {type(action).__name__} are not "
                             "supported; DiscreteArray or MultiDiscreteArray only")
        self.action_space = gym_space(action, "action")
        _, first = jax.eval_shape(env.reset, jax.random.key(0))
        self.log_names = tuple(k for k, v in first.extras.items() if np.shape(v) == ())

    def reset(self, key):
        state, timestep = self.jumanji_env.reset(key)
        return state, obs_row(self.obs_layout, _fields(timestep.observation))

    def step(self, key, state, action):
        state, timestep = self.jumanji_env.step(state, action)
        last = timestep.step_type == StepType.LAST
        terminated = last & (timestep.discount == 0)
        truncated = last & (timestep.discount > 0)
        info = {k: timestep.extras[k] for k in self.log_names}
        return (state, obs_row(self.obs_layout, _fields(timestep.observation)), jnp.asarray(timestep.reward, jnp.float32),
                terminated, truncated, info)


def make(env_id: str, **options) -> JumanjiEnv:
    """The Jumanji environment ``env_id`` (a registered id), ``options`` going to ``jumanji.make``."""
    ids = jumanji.registered_environments()
    if env_id not in ids:
        raise ValueError(f"unknown Jumanji environment {env_id!r}; Jumanji has {', '.join(sorted(ids))}")
    try:
        env = jumanji.make(env_id, **options)
    except TypeError as e:
        raise ValueError(f"jumanji:{env_id}: bad option ({e})") from None
    return JumanjiEnv(env)
