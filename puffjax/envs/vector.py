"""CVecEnv: N C environments stepping in place over NumPy buffers."""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from . import custom_c
from ._common import check_int, write_actions
from .spaces import action_layout

try:
    from .. import _envs
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError(
        "puffjax._envs (the compiled C environments) is missing: install puffjax with "
        "`pip install .` or build it (see README)") from e

def _observation_space(info: dict) -> spaces.Box:
    """The Box the C header declares: its shape, dtype and per-element bounds."""
    dtype = np.dtype(info["obs_dtype"])
    return spaces.Box(info["obs_low"].astype(dtype), info["obs_high"].astype(dtype), dtype=dtype)


BUFFERS = ("observations", "actions", "rewards", "terminals", "truncations")


class CVecEnv:
    """A vector of `num_envs` C environments of one kind.

    Buffers (NumPy arrays that the C code reads and writes in place), one row
    per agent, R = ``num_agents`` = N x ``agents_per_env`` rows (environment i
    owns rows i*K .. i*K+K-1): ``observations`` [R, *obs_shape] float32 (uint8
    for squared and snake), ``actions`` [R] int32 (Discrete) or [R, d] float32
    (Box), ``rewards`` [R] float32, ``terminals`` [R] bool, ``truncations``
    [R] bool, ``masks`` [R] bool (always True: every C agent is live).
    ``step`` returns those very arrays (no copies): copy them if you keep them.
    """

    def __init__(self, name: str, num_envs: int = 1, threads: int = 1, seed: int = 0, **options):
        if not isinstance(name, str):
            raise TypeError(f"environment name must be a string, got {name!r}")
        num_envs = check_int("num_envs", num_envs, 1, 1 << 26)
        threads = check_int("threads", threads, 1, 1024)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & ((1 << 64) - 1)
        seed = check_int("seed", seed)
        # A registered name, or the path of an out-of-tree header (built and loaded; kept
        # referenced here so that its library stays loaded while this env lives).
        self._custom = custom_c.load(name) if custom_c.is_c_source(name) else None
        env_type = self._custom.address if self._custom else name
        info = _envs.env_info(env_type, options)  # raises on unknown names / options
        self.name = name
        self.options = dict(info["options"])
        self.num_envs = num_envs
        self.threads = min(threads, num_envs)
        self.render_size = tuple(info["render_shape"][:2])  # (height, width)
        self.log_names = list(info["log_names"])
        obs_shape = tuple(info["obs_shape"])
        self.observation_space = _observation_space(info)
        self.agents_per_env = int(info["num_agents"])
        rows = self.num_agents = num_envs * self.agents_per_env  # environment i: rows i*K .. i*K+K-1
        if info["action_n"] > 0:
            self.action_space = spaces.Discrete(info["action_n"])
            actions = np.zeros(rows, np.int32)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (info["action_dim"],), np.float32)
            actions = np.zeros((rows, info["action_dim"]), np.float32)
        self.act_layout = action_layout(self.action_space)
        # Every row of a C env is a live agent (the buffer exists for a uniform interface).
        self.masks = np.ones(rows, np.bool_)
        # Buffers are allocated once, here, and reused for every step.
        self.observations = np.zeros((rows, *obs_shape), np.dtype(info["obs_dtype"]))
        self.actions = actions
        self.rewards = np.zeros(rows, np.float32)
        self.terminals = np.zeros(rows, np.bool_)
        self.truncations = np.zeros(rows, np.bool_)
        self._c = _envs.VecEnv(env_type, options, self.observations, self.actions, self.rewards, self.terminals,
                               self.truncations, seed & ((1 << 64) - 1), self.threads)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start new episodes in every environment and return ``observations``.
        With a seed, environment i's RNG restarts from (seed, i); without, each
        continues its own stream. Logs of finished episodes are kept."""
        if seed is not None:
            seed = check_int("seed", seed) & ((1 << 64) - 1)
        self._c.reset(seed)
        return self.observations

    def step(self, actions=None):
        """Step every environment once and return ``(observations, rewards,
        terminals, truncations)``, the env's own buffers. ``actions`` is copied
        into ``self.actions`` first; with None, whatever is in ``self.actions``
        is used (write it in place for zero copies). Episodes that end reset
        themselves: the observation is the next episode's first, while reward
        and terminal/truncation belong to the finished one."""
        if actions is not None and actions is not self.actions:
            write_actions(self.name, self.actions, actions, self.act_layout)
        self._c.step()
        return self.observations, self.rewards, self.terminals, self.truncations

    def step_range(self, start: int, end: int, actions=None) -> None:
        """Step environments ``[start, end)`` only (on all threads), with ``actions`` for their
        agents' rows (``start * agents_per_env`` up to ``end * agents_per_env``; or what those
        rows of ``self.actions`` hold); their rows of the buffers change, the others' do not. The
        rollout steps one group of environments while the policy runs on another."""
        if actions is not None:
            k = self.agents_per_env
            write_actions(self.name, self.actions[start * k:end * k], actions, self.act_layout)
        self._c.step(start, end)

    def log(self) -> dict:
        """Means of the log fields over episodes finished since the last call,
        plus ``n`` (their count); ``{}`` when none finished."""
        return self._c.log()

    def get_state(self) -> dict:
        """A snapshot of every environment and of the buffers (copies), for checkpoints."""
        return {"name": self.name, "options": dict(self.options), "envs": np.frombuffer(self._c.get_state(), np.uint8),
                **{k: getattr(self, k).copy() for k in BUFFERS}}

    def set_state(self, state: dict) -> None:
        """Restore a snapshot from :meth:`get_state` of a vector env with the same name,
        options and size: the next step continues exactly where the snapshot was taken.
        Nothing in it is trusted: every part is checked (each environment against the bounds
        its header declares) before anything changes, and a bad snapshot raises ValueError
        naming the part, leaving the environments as they were."""
        if not isinstance(state, dict):
            raise ValueError(f"environment state must be a dict from get_state, got {type(state).__name__}")
        missing = [k for k in ("name", "options", "envs", *BUFFERS) if k not in state]
        if missing:
            raise ValueError(f"environment state lacks {', '.join(missing)}")
        options = state["options"]
        if state["name"] != self.name or not isinstance(options, dict) or dict(options) != self.options:
            raise ValueError(f"environment state is for {state['name']!r} {options}, not {self.name!r} {self.options}")
        expected = {"envs": ((np.asarray(state["envs"]).size,), np.dtype(np.uint8)),
                    **{k: (getattr(self, k).shape, getattr(self, k).dtype) for k in BUFFERS}}
        buffers = {}
        for k, (shape, dtype) in expected.items():
            buffers[k] = value = np.asarray(state[k])
            if value.shape != shape or value.dtype != dtype:
                raise ValueError(f"environment state: {k} has shape {value.shape} and dtype {value.dtype}, "
                                 f"expected {shape} and {dtype}")
        self._c.set_state(buffers["envs"].tobytes())  # checks every environment, then restores them
        for k in BUFFERS:
            getattr(self, k)[...] = buffers[k]

    def render(self, i: int = 0) -> np.ndarray:
        """Environment i drawn as a (height, width, 3) uint8 image."""
        return self._c.render(check_int("render index", i))

    def close(self) -> None:
        self._c.close()

    @property
    def closed(self) -> bool:
        return self._c.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"CVecEnv({self.name!r}, num_envs={self.num_envs}, threads={self.threads}{', ' + opts if opts else ''})"
