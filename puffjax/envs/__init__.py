"""puffjax.envs: fast C environments, Python environments (gymnasium, PettingZoo), one interface.

    env = puffjax.envs.make("breakout", num_envs=1024, threads=1, seed=0)
    obs = env.reset()
    obs, rewards, terminals, truncations = env.step(actions)   # int32 [num_agents]
    env.log()   # {'perf': ..., 'score': ..., 'episode_return': ..., 'episode_length': ..., 'n': ...}

Every vector env has ``num_envs`` (environments), ``num_agents`` (buffer rows: environments x
agents per environment, ``agents_per_env``), ``observation_space`` and ``action_space``
(gymnasium spaces for one agent, any standard space: :mod:`puffjax.envs.spaces` flattens them
into rows), the buffers ``observations``, ``actions``, ``rewards``, ``terminals``,
``truncations`` and ``masks`` (NumPy arrays updated in place, one row per agent; ``masks``:
whether the row's agent is live), ``reset(seed=None)``, ``step(actions=None)``, ``log()``,
``render(i)``, ``get_state()`` / ``set_state()`` and ``close()``. Episodes reset themselves
inside ``step``. :func:`make` takes every kind of environment by name.

C environments and options (see envs_c/envs/<name>.h for the rules):
    breakout  frameskip=4, continuous=0 (1: Box(-1, 1, (1,)) paddle velocity)
    pong      frameskip=4
    squared   size=11
    cartpole  max_steps=500 (truncation)
    memory    delay=4 (blank steps between the cue and the query)
    snake     width=16, height=16, agents=4 (snakes per grid, one row each), food=8, max_steps=1000
"""
from __future__ import annotations

import os

from . import atari, custom_c, jaxenv
from ._common import EnvError
from .gym_adapter import GymnasiumDriver
from .python_envs import PyVecEnv
from .spaces import Layout, SpaceError, action_layout, observation_layout
from .timeout import StepTimeoutError
from .vector import CVecEnv, _envs
from .workers import WorkerDiedError

__all__ = ["make", "from_gymnasium", "from_pettingzoo", "names", "available_cores", "CVecEnv", "PyVecEnv",
           "EnvError", "WorkerDiedError", "StepTimeoutError", "SpaceError", "Layout", "observation_layout",
           "action_layout"]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; the machine's count elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def names() -> list[str]:
    """Names of the registered C environments."""
    return list(_envs.names())


def runs_code(name: str) -> str | None:
    """What building the environment ``name`` loads as code from a file, or None where it only
    runs puffjax and what installed packages register: a C file (compiled and loaded), a
    ``module:factory`` (its module imported, from the current directory too), a ``gym:module:ID``
    (gymnasium imports the module). A registered C env, a plain ``gym:ID`` or a JAX env
    (``gymnax:ID``, its suite's installed package): None."""
    if jaxenv.is_jax_name(name):
        return None
    if custom_c.is_c_source(name):
        return "a C file, compiled and loaded"
    if name.startswith("gym:"):
        return "a gymnasium id whose module part is imported" if ":" in name[len("gym:"):] else None
    if ":" in name:
        return "a Python module:factory, imported"
    return None


def make(name: str, num_envs: int = 1, threads: int = 1, seed: int = 0, workers: int = 0,
         step_timeout: float = 60.0, check_bounds: bool = True, **options):
    """Any environment by name, as a vector env of `num_envs` environments:

    * ``"breakout"``: a registered C env (:func:`names`); ``options`` are its options;
    * ``"path/to/foo.h"`` (or ``.c``): your own C env, compiled and loaded
      (:mod:`puffjax.envs.custom_c`), then exactly like a registered one;
    * ``"gym:CartPole-v1"``: a registered gymnasium id; ``options`` go to ``gymnasium.make``;
    * ``"atari:Breakout"`` (or ``"atari:ALE/Pong-v5"``): an Atari game with the standard
      preprocessing (:mod:`puffjax.envs.atari`, which lists its options);
    * ``"gymnax:CartPole-v1"``: a JAX environment (:mod:`puffjax.envs.jaxenv`), a
      :class:`~puffjax.envs.jaxenv.JaxVecEnv`; ``options`` go to its suite;
    * ``"mymodule:make_env"``: a Python factory, called as ``make_env(**options)``, returning a
      gymnasium env or a PettingZoo Parallel API env.

    ``threads``: C stepping threads; ``workers``: processes for Python envs (0: in this
    process). Neither changes the results. ``step_timeout`` and ``check_bounds``: see
    :class:`PyVecEnv` (Python envs only)."""
    if not isinstance(name, str):
        raise TypeError(f"environment name must be a string, got {name!r}")
    if name.startswith(atari.PREFIX):
        return atari.make(name, num_envs, seed=seed, workers=workers, **options)
    if name.startswith("gym:"):
        import gymnasium

        env_fn, _ = _env_fn(name[len("gym:"):], options)
        try:
            return PyVecEnv(env_fn, num_envs, seed=seed, name=name, driver=GymnasiumDriver, workers=workers,
                            step_timeout=step_timeout, check_bounds=check_bounds)
        except gymnasium.error.Error as e:  # an unknown id, a missing dependency...
            raise ValueError(f"environment {name!r}: {e}") from e
    if jaxenv.is_jax_name(name):
        if workers:
            raise ValueError(f"{name}: workers are for Python envs; a JAX env steps as one jitted batch")
        return jaxenv.make(name, num_envs, seed=seed, **options)
    if ":" in name and not custom_c.is_c_source(name):
        return PyVecEnv(_factory(name, options), num_envs, seed=seed, name=name, workers=workers,
                        step_timeout=step_timeout, check_bounds=check_bounds)
    if workers:
        raise ValueError(f"{name}: workers are for Python envs; a C env steps on threads (threads={threads})")
    return CVecEnv(name, num_envs=num_envs, threads=threads, seed=seed, **options)


def _factory(spec: str, options: dict):
    """``module:function`` -> a function making one env with ``options`` as keyword arguments."""
    import functools
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"environment {spec!r}: cannot import module {module_name!r} ({e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"environment {spec!r}: module {module_name!r} has no callable {attr!r}")
    return functools.partial(fn, **options)


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


def from_gymnasium(env_id_or_fn, num_envs: int, seed: int = 0, workers: int = 0, step_timeout: float = 60.0,
                   check_bounds: bool = True, **make_kwargs) -> PyVecEnv:
    """Wrap gymnasium environments (an id such as "CartPole-v1", or a callable returning an env)
    behind the same interface as `make`. Any standard space works (:mod:`puffjax.envs.spaces`).
    ``workers``: 0 steps them here in a loop; W > 0 in W processes over shared memory.
    ``step_timeout``, ``check_bounds``: see :class:`PyVecEnv`."""
    env_fn, name = _env_fn(env_id_or_fn, make_kwargs)
    return PyVecEnv(env_fn, num_envs, seed=seed, name=name, driver=GymnasiumDriver, workers=workers,
                    step_timeout=step_timeout, check_bounds=check_bounds)


def from_pettingzoo(env_fn, num_envs: int, seed: int = 0, workers: int = 0, step_timeout: float = 60.0,
                    check_bounds: bool = True) -> PyVecEnv:
    """Wrap PettingZoo Parallel API environments (``env_fn()`` returns one): one buffer row per
    agent of ``possible_agents``, agents that finished early masked (see
    :mod:`puffjax.envs.pettingzoo`). ``workers``, ``step_timeout`` and ``check_bounds`` as in
    :func:`from_gymnasium`."""
    from .pettingzoo import ParallelDriver

    if not callable(env_fn):
        raise TypeError(f"from_pettingzoo expects a callable returning a Parallel API env, got {env_fn!r}")
    return PyVecEnv(env_fn, num_envs, seed=seed, name=getattr(env_fn, "__name__", "pettingzoo"),
                    driver=ParallelDriver, workers=workers, step_timeout=step_timeout, check_bounds=check_bounds)
