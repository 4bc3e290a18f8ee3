"""JAX environments: the functional protocol (:mod:`.protocol`) and adapters for JAX env suites.

    env = puffjax.envs.make("gymnax:CartPole-v1", num_envs=16, seed=0)   # a JaxVecEnv
    one = puffjax.envs.jaxenv.make_env("gymnax:Breakout-MinAtar")        # a JaxEnv

A :class:`JaxEnv` is one pure, jittable environment; :func:`vec_reset` / :func:`vec_step` run a
batch of them with auto-reset and episode statistics in a :class:`VecState`, ready for
``lax.scan`` on device. :class:`JaxVecEnv` puts the same batch behind the host interface every
puffjax vector env has (NumPy buffers, ``step``, ``log``, ``get_state``...), so everything that
takes an env takes a JAX env too.

Names: ``FAMILY:ID``, FAMILY one of :data:`FAMILIES` (each an optional dependency, installed
with the extra of the same name, e.g. ``pip install 'puffjax[gymnax]'``).
"""
from __future__ import annotations

import importlib

from .protocol import (EPISODE_FIELDS, JaxEnv, VecState, log_means, obs_row, read_log, vec_log_names, vec_reset,
                       vec_step)
from .vector import JaxVecEnv
from .wrappers import ReturnAsPerf

__all__ = ["JaxEnv", "VecState", "JaxVecEnv", "EPISODE_FIELDS", "FAMILIES", "obs_row", "vec_log_names",
           "vec_reset", "vec_step", "log_means", "read_log", "is_jax_name", "make_env", "make", "ReturnAsPerf"]

# name prefix -> its adapter module (each defines make(env_id, **options) -> JaxEnv)
FAMILIES = {"gymnax": ".gymnax", "craftax": ".craftax", "brax": ".brax", "jumanji": ".jumanji"}


def is_jax_name(name: str) -> bool:
    """Whether ``name`` is ``FAMILY:ID`` with a JAX env family of :data:`FAMILIES`."""
    family, sep, _ = name.partition(":")
    return bool(sep) and family in FAMILIES


def make_env(name: str, **options) -> JaxEnv:
    """One JAX environment by name (``"gymnax:CartPole-v1"``); ``options`` go to its suite.
    Its log fields include ``perf`` (the episode return where the suite has no score of its own)."""
    family, _, env_id = name.partition(":")
    if family not in FAMILIES:
        raise ValueError(f"environment {name!r}: not a JAX environment name; use one of "
                         f"{', '.join(f + ':ID' for f in FAMILIES)}")
    if not env_id:
        raise ValueError(f"environment {name!r}: give an id after {family + ':'!r}")
    adapter = importlib.import_module(FAMILIES[family], __name__)  # ImportError naming the extra
    env = adapter.make(env_id, **options)
    return env if "perf" in env.log_names else ReturnAsPerf(env)


def make(name: str, num_envs: int = 1, seed: int = 0, **options) -> JaxVecEnv:
    """``num_envs`` copies of the JAX environment ``name`` as a host vector env."""
    return JaxVecEnv(make_env(name, **options), num_envs, seed=seed, name=name)
