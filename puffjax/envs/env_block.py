"""EnvBlock: consecutive Python environments, each driven over its rows of the shared buffers.

The one piece of code that steps Python environments, used both by the serial loop
(:class:`puffjax.envs.PyVecEnv` with ``workers=0``) and inside every worker process
(:mod:`puffjax.envs.workers`).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np

from ._common import EnvError, EpisodeLog
from .spaces import SpaceError, action_layout, observation_layout

BUFFERS = ("observations", "actions", "rewards", "terminals", "truncations", "masks")


def buffer_specs(num_agents: int, obs_layout, act_layout) -> dict:
    """name -> (shape, dtype) of every buffer of a vector env with ``num_agents`` rows."""
    return {"observations": ((num_agents, *obs_layout.row_shape), obs_layout.dtype),
            "actions": ((num_agents, *act_layout.row_shape), act_layout.dtype),
            "rewards": ((num_agents,), np.dtype(np.float32)),
            "terminals": ((num_agents,), np.dtype(np.bool_)),
            "truncations": ((num_agents,), np.dtype(np.bool_)),
            "masks": ((num_agents,), np.dtype(np.bool_))}


@dataclass
class Rows:
    """One environment's rows of every buffer (NumPy views, so writes land in the buffers)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    masks: np.ndarray


class EnvBlock:
    """Environments ``first .. last - 1`` of a vector env, made by ``env_fn`` and driven by
    ``driver`` over their rows of ``buffers`` (a dict of the arrays in :data:`BUFFERS`).
    ``envs``: already made environments to use first (the probe env of a serial vector env).
    Every method raises :class:`EnvError` naming the environment when one raises."""

    def __init__(self, driver, env_fn, first: int, last: int, buffers: dict, obs_space, act_space,
                 agents: int, name: str, envs=()):
        self.first, self.name = first, name
        self.log = EpisodeLog(driver.LOG_NAMES)
        obs_layout, act_layout = observation_layout(obs_space), action_layout(act_space)
        self.drivers = []
        made = list(envs)
        try:
            for i in range(first, last):
                env = made.pop(0) if made else self._call(i, env_fn)
                rows = Rows(*(buffers[k][i * agents:(i + 1) * agents] for k in BUFFERS))
                self.drivers.append(driver(env, i, rows, obs_layout, act_layout, self.log, name))
        except BaseException:
            self.close()
            raise

    def _call(self, i: int, fn, *args):
        try:
            return fn(*args)
        except (EnvError, SpaceError):  # already names the environment
            raise
        except Exception as e:
            raise EnvError(f"{self.name}: environment {i} raised {type(e).__name__}: {e}", i) from e

    def reset(self, seed: int | None) -> None:
        for d in self.drivers:
            self._call(d.index, d.reset, None if seed is None else seed + d.index)

    def step(self) -> None:
        for d in self.drivers:
            self._call(d.index, d.step)

    def take_log(self) -> tuple[dict, int]:
        """The sums of the log fields since the last call and their episode count (cleared)."""
        sums, n = self.log.sums, self.log.n
        self.log.sums, self.log.n = dict.fromkeys(self.log.names, 0.0), 0
        return sums, n

    def render(self, i: int):
        d = self.drivers[i - self.first]
        frame = self._call(i, d.render)
        if frame is None:
            raise RuntimeError(f"{self.name}: render() returned None; create the env with render_mode='rgb_array'")
        return np.asarray(frame, np.uint8)

    def get_state(self) -> tuple[list, tuple]:
        """(one pickled state per environment, the log's (sums, n))."""
        try:
            envs = [pickle.dumps(d.get_state()) for d in self.drivers]
        except Exception as e:
            raise RuntimeError(f"{self.name}: these environments cannot be pickled, so a checkpoint cannot hold "
                               f"their state ({type(e).__name__}: {e})") from None
        return envs, (dict(self.log.sums), self.log.n)

    def set_state(self, envs: list, log: tuple) -> None:
        for d, blob in zip(self.drivers, envs, strict=True):
            d.env.close()
            d.set_state(pickle.loads(blob))
        self.log.sums, self.log.n = dict(log[0]), log[1]

    def close(self) -> None:
        for d in self.drivers:
            try:
                d.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                pass
        self.drivers = []
