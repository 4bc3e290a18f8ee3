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

from ._common import EnvError
from .python_envs import PyVecEnv
from .spaces import Layout, action_layout, observation_layout
from .vector import CVecEnv, _envs
from .workers import WorkerDiedError

__all__ = ["make", "from_gymnasium", "from_pettingzoo", "names", "CVecEnv", "PyVecEnv", "EnvError",
           "WorkerDiedError", "Layout", "observation_layout", "action_layout"]


def names() -> list[str]:
    """Names of the registered C environments."""
    return list(_envs.names())


def make(name: str, num_envs: int = 1, threads: int = 1, seed: int = 0, **options) -> CVecEnv:
    """A vector of `num_envs` C environments `name`, stepped on `threads`
    threads (results do not depend on it). Unknown names or options raise."""
    return CVecEnv(name, num_envs=num_envs, threads=threads, seed=seed, **options)


def _env_fn(env_id_or_fn, make_kwargs):
    """(a function making one env, a name) from a gymnasium id or a callable."""
    if isinstance(env_id_or_fn, str):
        import gymnasium

        env_id = env_id_or_fn

        def env_fn():
            try:
                return gymnasium.make(env_id, render_mode="rgb_array", **make_kwargs)
            except TypeError:  # an env without render modes
                return gymnasium.make(env_id, **make_kwargs)

        return env_fn, env_id
    if callable(env_id_or_fn):
        if make_kwargs:
            raise TypeError("extra keyword arguments are only used with an environment id string")
        return env_id_or_fn, getattr(env_id_or_fn, "__name__", "gymnasium")
    raise TypeError(f"expected a gymnasium id string or a callable, got {env_id_or_fn!r}")


def from_gymnasium(env_id_or_fn, num_envs: int, seed: int = 0, workers: int = 0, **make_kwargs) -> PyVecEnv:
    """Wrap gymnasium environments (an id such as "CartPole-v1", or a callable returning an env)
    behind the same interface as `make`. Any standard space works (:mod:`puffjax.envs.spaces`).
    ``workers``: 0 steps them here in a loop; W > 0 in W processes over shared memory."""
    env_fn, name = _env_fn(env_id_or_fn, make_kwargs)
    return PyVecEnv(env_fn, num_envs, seed=seed, name=name, workers=workers)


def from_pettingzoo(env_fn, num_envs: int, seed: int = 0, workers: int = 0) -> PyVecEnv:
    """Wrap PettingZoo Parallel API environments (``env_fn()`` returns one): one buffer row per
    agent of ``possible_agents``, agents that finished early masked (see
    :mod:`puffjax.envs.pettingzoo`). ``workers`` as in :func:`from_gymnasium`."""
    from .pettingzoo import ParallelDriver

    if not callable(env_fn):
        raise TypeError(f"from_pettingzoo expects a callable returning a Parallel API env, got {env_fn!r}")
    return PyVecEnv(env_fn, num_envs, seed=seed, name=getattr(env_fn, "__name__", "pettingzoo"),
                    driver=ParallelDriver, workers=workers)
