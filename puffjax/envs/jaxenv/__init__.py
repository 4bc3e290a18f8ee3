"""JAX environments: the functional protocol (:mod:`.protocol`) and adapters for JAX env suites.

    env = puffjax.envs.make("gymnax:CartPole-v1", num_envs=16, seed=0)   # a JaxVecEnv

A :class:`JaxEnv` is one pure, jittable environment; :func:`vec_reset` / :func:`vec_step` run a
batch of them with auto-reset and episode statistics in a :class:`VecState`, ready for
``lax.scan`` on device. :class:`JaxVecEnv` puts the same batch behind the host interface every
puffjax vector env has (NumPy buffers, ``step``, ``log``, ``get_state``...), so everything that
takes an env takes a JAX env too.
"""
from .protocol import EPISODE_FIELDS, JaxEnv, VecState, log_means, read_log, vec_log_names, vec_reset, vec_step

__all__ = ["JaxEnv", "VecState", "EPISODE_FIELDS", "vec_log_names", "vec_reset", "vec_step", "log_means",
           "read_log"]
