"""GymVecEnv: Python gymnasium environments behind the CVecEnv interface."""
from __future__ import annotations

import pickle

import numpy as np
from gymnasium import spaces

from ._common import EpisodeLog, check_int, write_actions


BUFFERS = ("observations", "actions", "rewards", "terminals", "truncations")


class GymVecEnv:
    """`num_envs` gymnasium environments with the same buffers, auto-reset
    and logs as the C vector envs. Stepping is a plain Python loop.

    Log fields: ``episode_return``, ``episode_length`` (steps) and ``perf``,
    which is the episode return (a gymnasium env has no normalised score).
    """

    def __init__(self, env_fn, num_envs: int, seed: int = 0, name: str = "gymnasium"):
        num_envs = check_int("num_envs", num_envs, 1)
        seed = check_int("seed", seed)
        self.name = name
        self.num_envs = num_envs
        self.envs = [env_fn() for _ in range(num_envs)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        if not isinstance(self.observation_space, spaces.Box):
            raise NotImplementedError(
                f"{name}: only Box observation spaces are supported, got {self.observation_space}")
        if isinstance(self.action_space, spaces.Discrete):
            self._discrete_n = int(self.action_space.n)
            self._discrete_start = int(self.action_space.start)
            self.actions = np.zeros(num_envs, np.int32)
        elif isinstance(self.action_space, spaces.Box):
            self._discrete_n = 0
            self._discrete_start = 0
            self.actions = np.zeros((num_envs, *self.action_space.shape), np.float32)
        else:
            raise NotImplementedError(
                f"{name}: only Discrete and Box action spaces are supported, got {self.action_space}")
        obs_dtype = np.float32 if self.observation_space.dtype.kind == "f" else self.observation_space.dtype
        self.observations = np.zeros((num_envs, *self.observation_space.shape), obs_dtype)
        self.rewards = np.zeros(num_envs, np.float32)
        self.terminals = np.zeros(num_envs, np.bool_)
        self.truncations = np.zeros(num_envs, np.bool_)
        self.log_names = ["perf", "episode_return", "episode_length"]
        self._log = EpisodeLog(self.log_names)
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            seed = check_int("seed", seed)
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else seed + i)
            self.observations[i] = obs
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        self._returns[:] = 0
        self._lengths[:] = 0
        return self.observations

    def step(self, actions=None):
        if actions is not None and actions is not self.actions:
            write_actions(self.name, self.actions, actions, self._discrete_n, self._discrete_start)
        self._step(0, self.num_envs)
        return self.observations, self.rewards, self.terminals, self.truncations

    def step_range(self, start: int, end: int, actions=None) -> None:
        """Step environments ``[start, end)`` only, with ``actions`` for those rows (or what
        ``self.actions[start:end]`` holds)."""
        if not 0 <= start <= end <= self.num_envs:
            raise IndexError(f"step range [{start}, {end}) is not within [0, {self.num_envs}]")
        if actions is not None:
            write_actions(self.name, self.actions[start:end], actions, self._discrete_n, self._discrete_start)
        self._step(start, end)

    def _step(self, start: int, end: int) -> None:
        # Check the buffer itself (it may have been written in place).
        rows = self.actions[start:end]
        if self._discrete_n:
            lo, hi = self._discrete_start, self._discrete_start + self._discrete_n
            bad = np.flatnonzero((rows < lo) | (rows >= hi))
            if bad.size:
                i = start + int(bad[0])
                raise ValueError(f"{self.name}: actions[{i}] = {self.actions[i]} is out of range; "
                                 f"expected an integer in [{lo}, {hi}) for Discrete({self._discrete_n})")
        else:
            bad = np.flatnonzero(~np.isfinite(rows).reshape(end - start, -1).all(axis=1))
            if bad.size:
                i = start + int(bad[0])
                raise ValueError(f"{self.name}: actions[{i}] = {self.actions[i]} is not finite; expected finite floats")
        for i in range(start, end):
            env = self.envs[i]
            a = int(self.actions[i]) if self._discrete_n else self.actions[i]
            obs, reward, terminated, truncated, _ = env.step(a)
            self._returns[i] += reward
            self._lengths[i] += 1
            if terminated or truncated:
                self._log.add(perf=self._returns[i], episode_return=self._returns[i],
                              episode_length=self._lengths[i])
                self._returns[i] = 0
                self._lengths[i] = 0
                obs, _ = env.reset()
            self.observations[i] = obs
            self.rewards[i] = reward
            self.terminals[i] = terminated
            self.truncations[i] = truncated and not terminated

    def log(self) -> dict:
        return self._log.take()

    def get_state(self) -> dict:
        """A snapshot (the pickled Python envs, episode counters and buffers) for checkpoints."""
        try:
            blob = pickle.dumps((self.envs, self._returns, self._lengths, self._log))
        except Exception as e:
            raise RuntimeError(f"{self.name}: these gymnasium environments cannot be pickled, so a "
                               f"checkpoint cannot hold their state ({type(e).__name__}: {e})") from None
        return {"name": self.name, "pickle": np.frombuffer(blob, np.uint8),
                **{k: getattr(self, k).copy() for k in BUFFERS}}

    def set_state(self, state: dict) -> None:
        if state.get("name") != self.name or "pickle" not in state:
            raise ValueError(f"environment state is for {state.get('name')!r}, not {self.name!r}")
        envs, returns, lengths, log = pickle.loads(np.asarray(state["pickle"], np.uint8).tobytes())
        if len(envs) != self.num_envs:
            raise ValueError(f"environment state holds {len(envs)} environments, expected {self.num_envs}")
        self.close()
        self.envs, self._returns, self._lengths, self._log = envs, returns, lengths, log
        for k in BUFFERS:
            getattr(self, k)[...] = state[k]

    def render(self, i: int = 0) -> np.ndarray:
        i = check_int("render index", i, 0, self.num_envs - 1)
        frame = self.envs[i].render()
        if frame is None:
            raise RuntimeError(f"{self.name}: render() returned None; create the env with render_mode='rgb_array'")
        return np.asarray(frame, np.uint8)

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"GymVecEnv({self.name!r}, num_envs={self.num_envs})"
