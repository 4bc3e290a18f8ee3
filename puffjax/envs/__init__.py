"""puffjax.envs: fast C environments and a gymnasium adapter, one interface.

    env = puffjax.envs.make("breakout", num_envs=1024, threads=1, seed=0)
    obs = env.reset()
    obs, rewards, terminals, truncations = env.step(actions)   # int32 [N]
    env.log()   # {'perf': ..., 'score': ..., 'episode_return': ..., 'episode_length': ..., 'n': ...}

Every vector env has ``num_envs``, ``observation_space`` and ``action_space``
(gymnasium spaces for one agent), the buffers ``observations``, ``actions``,
``rewards``, ``terminals``, ``truncations`` (NumPy arrays updated in place),
``reset(seed=None)``, ``step(actions=None)``, ``log()``, ``render(i)`` and
``close()``. Episodes reset themselves inside ``step``.

Environments and options (see envs_c/envs/<name>.h for the rules):
    breakout  frameskip=4, continuous=0 (1: Box(-1, 1, (1,)) paddle velocity)
    pong      frameskip=4
    squared   size=11
    cartpole  max_steps=500 (truncation)
    memory    delay=4 (blank steps between the cue and the query)
"""
from __future__ import annotations

import os

from .gym_adapter import GymVecEnv
from .vector import CVecEnv, _envs

__all__ = ["make", "from_gymnasium", "names", "available_cores", "CVecEnv", "GymVecEnv"]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; the machine's count elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def names() -> list[str]:
    """Names of the registered C environments."""
    return list(_envs.names())


def make(name: str, num_envs: int = 1, threads: int = 1, seed: int = 0, **options) -> CVecEnv:
    """A vector of `num_envs` C environments `name`, stepped on `threads`
    threads (results do not depend on it). Unknown names or options raise."""
    return CVecEnv(name, num_envs=num_envs, threads=threads, seed=seed, **options)


def from_gymnasium(env_id_or_fn, num_envs: int, seed: int = 0, **make_kwargs) -> GymVecEnv:
    """Wrap gymnasium environments (an id such as "CartPole-v1", or a callable
    returning an env) behind the same interface as `make`."""
    if isinstance(env_id_or_fn, str):
        import gymnasium

        env_id = env_id_or_fn

        def env_fn():
            try:
                return gymnasium.make(env_id, render_mode="rgb_array", **make_kwargs)
            except TypeError:  # an env without render modes
                return gymnasium.make(env_id, **make_kwargs)

        name = env_id
    elif callable(env_id_or_fn):
        if make_kwargs:
            raise TypeError("extra keyword arguments are only used with an environment id string")
        env_fn = env_id_or_fn
        name = getattr(env_id_or_fn, "__name__", "gymnasium")
    else:
        raise TypeError(f"from_gymnasium expects a gymnasium id string or a callable, got {env_id_or_fn!r}")
    return GymVecEnv(env_fn, num_envs, seed=seed, name=name)
