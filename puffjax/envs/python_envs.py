"""PyVecEnv: Python environments (gymnasium, PettingZoo) behind the same interface as the C envs.

``num_envs`` environments, each a driver (:class:`puffjax.envs.gym_adapter.GymnasiumDriver`, or
:class:`puffjax.envs.pettingzoo.ParallelDriver` for K agents) over its K consecutive rows of the
buffers. The environments step either in this process, one after the other (``workers=0``),
or in ``workers`` processes over shared memory (:mod:`puffjax.envs.workers`); both run the same
:class:`puffjax.envs.env_block.EnvBlock` code on the same buffers, so they give the same
trajectories.

Checks: the observations of every reset and of the first step after it are checked against
the declared space, per env (shape, dtype, discrete values: the drivers) and per buffer row
(the bounds of every finite Box: :func:`puffjax.envs.spaces.find_bad_observation`), so the
first step is checked however often the envs were reset before it. One reset or step taking
longer than ``step_timeout`` seconds raises :class:`puffjax.envs.StepTimeoutError`
(:mod:`puffjax.envs.timeout`).
"""
from __future__ import annotations

import pickle
import warnings
import weakref

import numpy as np

from ._common import Closable, check_int, find_bad_action, write_actions
from .env_block import BUFFERS, EnvBlock, buffer_specs
from .gym_adapter import GymnasiumDriver
from .pettingzoo import ParallelDriver, is_parallel_env
from .spaces import SpaceError, action_layout, find_bad_observation, observation_layout
from .timeout import Watchdog, timeout_message


class _Inline:
    """The serial runner: one EnvBlock of every env, in this process; resets and steps run
    under a :class:`Watchdog` when ``step_timeout`` > 0."""

    def __init__(self, make_block, num_envs: int, buffers: dict, probe, name: str, step_timeout: float):
        self.buffers = buffers
        self.block = make_block(0, num_envs, buffers, (probe,))
        self.watchdog = Watchdog(step_timeout) if step_timeout > 0 else None
        if self.watchdog is not None:
            weakref.finalize(self, self.watchdog.close)  # its thread ends with this runner
        self._where = f"environments 0..{num_envs - 1} (stepping in this process)"
        self._name = name

    def _timed(self, command: str, fn, *args):
        if self.watchdog is None:
            return fn(*args)
        return self.watchdog.call(lambda: fn(*args), lambda: timeout_message(
            self._name, self._where, command, self.watchdog.seconds, "their state is undefined now"))

    def reset(self, seed):
        self._timed("reset", self.block.reset, seed)

    def step(self):
        self._timed("step", self.block.step)

    def take_logs(self):
        return [self.block.take_log()]

    def render(self, i):
        return self.block.render(i)

    def get_state(self):
        return [self.block.get_state()]

    def set_state(self, envs, log):
        self.block.set_state(envs, log)

    def close(self):
        if self.watchdog is not None:
            self.watchdog.close()
        self.block.close()


def _check_env(env, name: str) -> None:
    """A ValueError unless ``env`` is a gymnasium env or a PettingZoo Parallel API env."""
    if hasattr(env, "agent_iter") and hasattr(env, "last"):
        raise ValueError(f"{name}: a PettingZoo AEC environment (one agent acts at a time) is not supported; use the "
                         "Parallel API or wrap it with pettingzoo.utils.conversions.aec_to_parallel")
    if not (callable(getattr(env, "reset", None)) and callable(getattr(env, "step", None))):
        raise ValueError(f"{name}: the factory returned {type(env).__name__}, not an environment (a gymnasium "
                         "env or a PettingZoo Parallel env, with reset() and step())")


class PyVecEnv(Closable):
    """``num_envs`` Python environments made by ``env_fn`` with the same buffers, auto-reset and
    logs as the C vector envs (see :mod:`puffjax.envs`).

    ``driver``: how one env maps onto its rows (gymnasium or PettingZoo Parallel, see above);
    None: decided by what ``env_fn()`` returns.
    ``workers``: 0 steps the envs here, one after the other; W > 0 steps them in W worker
    processes over shared memory (the buffers ARE the shared memory: nothing is copied). Same
    seeds give the same trajectories either way: environment i is reset with ``seed + i``.
    ``observation_space`` / ``action_space``: one agent's spaces as the env declares them
    (a channels-first image observation as the channels-last Box its rows hold); the buffers
    hold them flattened (:mod:`puffjax.envs.spaces`).
    ``step_timeout``: the seconds one reset or step of all the envs (of one worker) may take
    before :class:`puffjax.envs.StepTimeoutError` (0: no limit). ``check_bounds``: check the
    first observations after each reset against the bounds of every finite Box (the shape and
    dtype are checked either way)."""

    def __init__(self, env_fn, num_envs: int, seed: int = 0, name: str = "gymnasium", driver=None,
                 workers: int = 0, step_timeout: float = 60.0, check_bounds: bool = True):
        num_envs = check_int("num_envs", num_envs, 1)
        seed = check_int("seed", seed)
        workers = check_int("workers", workers, 0, num_envs)
        if isinstance(step_timeout, bool) or not isinstance(step_timeout, (int, float)) \
                or not 0 <= step_timeout < float("inf"):
            raise ValueError(f"step_timeout must be a finite number of seconds >= 0 (0: no limit), "
                             f"got {step_timeout!r}")
        self.name, self.num_envs, self.workers = name, num_envs, workers
        self.check_bounds = bool(check_bounds)
        probe = env_fn()
        _check_env(probe, name)
        if driver is None:
            driver = ParallelDriver if is_parallel_env(probe) else GymnasiumDriver
        try:
            env_obs_space, self.action_space, agents = driver.spaces(probe)
            self.obs_layout = observation_layout(env_obs_space)
            self.act_layout = action_layout(self.action_space)
        except BaseException:
            probe.close()
            raise
        self.observation_space = self.obs_layout.row_space
        if self.obs_layout.transpose:
            warnings.warn(f"{name}: observations {env_obs_space.shape} look channels-first; puffjax takes them "
                          f"channels-last, as {self.observation_space.shape}", stacklevel=3)
        self.agents_per_env = agents
        self.num_agents = num_envs * agents
        self.log_names = list(driver.LOG_NAMES)
        specs = buffer_specs(self.num_agents, self.obs_layout, self.act_layout)

        def make_block(first, last, buffers, envs=()):
            return EnvBlock(driver, env_fn, first, last, buffers, env_obs_space, self.action_space,
                            agents, name, envs)

        if workers == 0:
            buffers = {k: np.zeros(shape, dtype) for k, (shape, dtype) in specs.items()}
            self._runner = _Inline(make_block, num_envs, buffers, probe, name, step_timeout)
        else:
            probe.close()
            from .workers import WorkerPool
            self._runner = WorkerPool(driver, env_fn, num_envs, workers, specs, env_obs_space,
                                      self.action_space, agents, name, step_timeout)
        for k in BUFFERS:
            setattr(self, k, self._runner.buffers[k])
        self._closed = False
        self._check_step = False  # check the observations of the next step (the first after a reset)
        self.reset(seed)

    def _check_observations(self) -> None:
        """SpaceError naming the env, position and value of an observation outside its bounds."""
        bad = find_bad_observation(self.obs_layout, self.observations, self.masks) if self.check_bounds else None
        if bad is not None:
            row, text = bad
            k = self.agents_per_env
            who = f"environment {row // k}" + (f", agent {row % k}" if k > 1 else "")
            raise SpaceError(f"{self.name}: {who}: {text} (env.check_bounds = false turns this check off)")

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start new episodes everywhere (environment i with ``seed + i``; without a seed each
        env continues its own randomness) and return ``observations``."""
        if seed is not None:
            seed = check_int("seed", seed)
        self._runner.reset(seed)
        self._check_observations()
        self._check_step = True
        return self.observations

    def step(self, actions=None):
        """Step every environment once; returns the ``(observations, rewards, terminals,
        truncations)`` buffers. ``actions`` is copied into ``self.actions`` first (None: use the
        buffer as it is). ``masks`` says which rows hold a live agent."""
        if actions is not None and actions is not self.actions:
            write_actions(self.name, self.actions, actions, self.act_layout)
        bad = find_bad_action(self.act_layout, self.actions)  # the buffer may have been written in place
        if bad is not None:
            raise ValueError(f"{self.name}: {bad}")
        self._runner.step()
        if self._check_step:
            self._check_step = False
            self._check_observations()
        return self.observations, self.rewards, self.terminals, self.truncations

    def log(self) -> dict:
        """Means of the log fields over episodes finished since the last call, plus ``n``."""
        total, n = dict.fromkeys(self.log_names, 0.0), 0
        for sums, count in self._runner.take_logs():
            for k in total:
                total[k] += sums[k]
            n += count
        if n == 0:
            return {}
        return {**{k: v / n for k, v in total.items()}, "n": n}

    def get_state(self) -> dict:
        """A snapshot (the pickled Python envs, episode counters and buffers) for exact resume.
        It does not depend on ``workers``: a run can resume with another count. A RuntimeError
        where an env cannot be pickled. Restoring it runs code from it (:meth:`set_state`)."""
        envs, total, n = [], dict.fromkeys(self.log_names, 0.0), 0
        for block_envs, (sums, count) in self._runner.get_state():
            envs += block_envs
            total = {k: total[k] + sums[k] for k in total}
            n += count
        blob = pickle.dumps((envs, (total, n)))
        return {"name": self.name, "pickle": np.frombuffer(blob, np.uint8),
                **{k: getattr(self, k).copy() for k in BUFFERS}}

    def set_state(self, state: dict, trusted: bool = False) -> None:
        """Restore a snapshot from :meth:`get_state`. Unpickling it runs whatever code the
        snapshot names, so it is refused unless ``trusted`` (a snapshot this program made, or a
        checkpoint the user vouches for)."""
        if not isinstance(state, dict) or state.get("name") != self.name or "pickle" not in state:
            name = state.get("name") if isinstance(state, dict) else None
            raise ValueError(f"environment state is for {name!r}, not {self.name!r}")
        if not trusted:
            raise ValueError(f"{self.name}: restoring a Python environment snapshot unpickles it, which runs code "
                             f"from it; pass trusted=True only for a snapshot you made or trust")
        envs, log = pickle.loads(np.asarray(state["pickle"], np.uint8).tobytes())
        if len(envs) != self.num_envs:
            raise ValueError(f"environment state holds {len(envs)} environments, expected {self.num_envs}")
        for k in BUFFERS:
            if k in state and np.shape(state[k]) != getattr(self, k).shape:
                raise ValueError(f"environment state: {k} has shape {np.shape(state[k])}, "
                                 f"expected {getattr(self, k).shape}")
        self._runner.set_state(envs, log)
        for k in BUFFERS:
            if k in state:
                getattr(self, k)[...] = state[k]

    def render(self, i: int = 0) -> np.ndarray:
        """Environment i's frame (its env must have been made with ``render_mode="rgb_array"``)."""
        return self._runner.render(check_int("render index", i, 0, self.num_envs - 1))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._runner.close()

    def __repr__(self):
        agents = f", agents_per_env={self.agents_per_env}" if self.agents_per_env > 1 else ""
        workers = f", workers={self.workers}" if self.workers else ""
        return f"PyVecEnv({self.name!r}, num_envs={self.num_envs}{agents}{workers})"
