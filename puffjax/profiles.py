"""Defaults that fit the environment brought: shipped profiles and the no-episode warning.

The dataclass defaults (:mod:`puffjax.config`) suit the fast C environments: thousands of
environments, short horizons, Muon. A Python environment (``gym:ID``, ``module:factory``) that
has no ``configs/<name>.toml`` of its own starts from a shipped profile instead,
``configs/profiles/<profile>.toml``: ``continuous`` when its action space is a float ``Box``
(MuJoCo, Pendulum), ``gym`` otherwise. :func:`profile_for` says which and why.

:func:`no_episode_warning` is the trainer's check that episodes end at all within the batches
it plays.
"""
from __future__ import annotations

import math
import os

import numpy as np
from gymnasium import spaces

PROFILE_DIR = os.path.join(os.path.dirname(__file__), "configs", "profiles")
PROFILES = ("gym", "continuous")
WARN_AFTER_EPOCHS = 3  # the no-episode warning comes after at least this many epochs
WARN_AFTER_FRACTION = 0.1  # and at least this fraction of the run's epochs (or at its end)


def profile_path(profile: str) -> str:
    return os.path.join(PROFILE_DIR, f"{profile}.toml")


def is_python_env(name: str) -> bool:
    """Whether ``name`` is a Python environment form (``gym:ID`` or ``module:factory``), not a C
    file or a JAX environment (``gymnax:ID``...)."""
    from .envs.jaxenv import is_jax_name

    return ":" in name and not name.endswith((".h", ".c")) and not is_jax_name(name)


def profile_of_space(action_space) -> str:
    """``continuous`` for an action space with a float ``Box`` in it, else ``gym``."""
    if isinstance(action_space, spaces.Box):
        return "continuous" if np.dtype(action_space.dtype).kind == "f" else "gym"
    if isinstance(action_space, (spaces.Dict, spaces.Tuple)):
        leaves = action_space.spaces.values() if isinstance(action_space, spaces.Dict) else action_space.spaces
        return "continuous" if any(profile_of_space(s) == "continuous" for s in leaves) else "gym"
    return "gym"


def profile_for(name: str, options: dict | None = None) -> tuple[str, str]:
    """The profile for Python environment ``name`` (built once, with ``options``, to read its
    action space) and a one-line note saying which and why."""
    from .preflight import make_env  # an env refusing its options: one ValueError naming it

    with make_env(name, num_envs=1, **(options or {})) as env:
        space = env.action_space
    profile = profile_of_space(space)
    kind = "continuous (Box) actions" if profile == "continuous" else f"{type(space).__name__} actions"
    return profile, (f"{name} has no config of its own: using the shipped {profile!r} profile for {kind} "
                     f"({os.path.relpath(profile_path(profile), os.path.dirname(os.path.dirname(__file__)))})")


def warning_epoch(total_epochs: int) -> int:
    """The epoch after which a run that has ended no episode is warned: the first that is both
    :data:`WARN_AFTER_EPOCHS` or later and :data:`WARN_AFTER_FRACTION` of the run, or the last."""
    return min(total_epochs, max(WARN_AFTER_EPOCHS, math.ceil(WARN_AFTER_FRACTION * total_epochs)))


def no_episode_warning(epoch: int, total_epochs: int, episodes_logged: bool, geom, num_envs: int) -> str | None:
    """The warning for a run in which no episode has ended by epoch ``epoch`` (1-based), at
    :func:`warning_epoch`; None otherwise. It says how many steps each environment played and
    what to change."""
    if episodes_logged or epoch != warning_epoch(total_epochs):
        return None
    per_epoch = geom.rows_per_agent * geom.horizon  # steps each agent plays per epoch
    return (f"no episode has ended in {epoch} epoch(s), so no return is logged: each epoch's batch of "
            f"{geom.batch_size:,} steps is {per_epoch:,} steps per agent ({geom.total_agents:,} agents in "
            f"{num_envs:,} environments), and this environment's episodes are longer than the "
            f"{epoch * per_epoch:,} steps each has played; the run has {total_epochs * per_epoch:,} steps per agent "
            f"in all. Use fewer environments (env.num_envs), a longer train.bptt_horizon or train.batch_size, "
            f"or more train.total_timesteps")
