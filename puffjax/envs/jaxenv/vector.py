"""JaxVecEnv: a batch of JAX environments behind the host interface every puffjax vector env has."""
from __future__ import annotations

import functools

import jax
import numpy as np

from .._common import Closable, check_int, find_bad_action, write_actions
from ..env_block import BUFFERS, buffer_specs
from ..spaces import action_layout, observation_layout
from .protocol import JaxEnv, VecState, read_log, vec_log_names, vec_reset, vec_step


class JaxVecEnv(Closable):
    """``num_envs`` copies of the :class:`JaxEnv` ``env`` stepped together by the jitted
    :func:`~puffjax.envs.jaxenv.vec_step`, with the NumPy buffers, ``reset``, ``step``, ``log``,
    ``get_state`` / ``set_state`` and ``close`` of the C and Python vector envs (see
    :mod:`puffjax.envs`), so the trainer, eval and sweeps take it as they take those.

    ``env`` (the JaxEnv) and ``state`` (its :class:`VecState`) are there for code that runs the
    batch on device itself. The randomness is one JAX key: ``reset(seed)`` restarts it from
    ``seed``, and each step splits it. ``log_names``: ``episode_return``, ``episode_length`` and
    the env's own fields."""

    def __init__(self, env: JaxEnv, num_envs: int, seed: int = 0, name: str = "jax"):
        self.env, self.name = env, name
        self.num_envs = check_int("num_envs", num_envs, 1)
        seed = check_int("seed", seed)
        self.agents_per_env = int(env.agents_per_env)
        if self.agents_per_env != 1:
            raise ValueError(f"{name}: JAX environments with several agents are not supported "
                             f"(agents_per_env={self.agents_per_env})")
        self.num_agents = self.num_envs
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.obs_layout, self.act_layout = observation_layout(env.observation_space), action_layout(env.action_space)
        self.log_names = list(vec_log_names(env))
        for k, (shape, dtype) in buffer_specs(self.num_agents, self.obs_layout, self.act_layout).items():
            setattr(self, k, np.zeros(shape, dtype))
        self.masks[:] = True  # every row is a live agent
        self._reset = jax.jit(functools.partial(vec_reset, env), static_argnums=1)
        self._step = jax.jit(functools.partial(vec_step, env))
        self._closed = False
        self.key = jax.random.PRNGKey(0)
        self.state: VecState | None = None
        self.reset(seed)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start new episodes everywhere (from ``seed``; without one, the key continues its own
        stream) and return ``observations``. Logs of finished episodes are kept."""
        if seed is not None:
            self.key = jax.random.PRNGKey(check_int("seed", seed) & ((1 << 64) - 1))
        self.key, key = jax.random.split(self.key)
        state = self._reset(key, self.num_envs)
        if self.state is not None:
            state = state._replace(log_sum=self.state.log_sum, log_count=self.state.log_count)
        self.state = state
        self.observations[...] = np.asarray(state.obs)
        self.rewards[:], self.terminals[:], self.truncations[:] = 0.0, False, False
        return self.observations

    def step(self, actions=None):
        """Step every environment once; returns the ``(observations, rewards, terminals,
        truncations)`` buffers. ``actions`` is copied into ``self.actions`` first (None: use the
        buffer as it is). Episodes that end reset themselves: the observation is the next
        episode's first, reward and flags belong to the finished one."""
        if actions is not None and actions is not self.actions:
            write_actions(self.name, self.actions, actions, self.act_layout)
        bad = find_bad_action(self.act_layout, self.actions)
        if bad is not None:
            raise ValueError(f"{self.name}: {bad}")
        self.key, key = jax.random.split(self.key)
        self.state, reward, terminated, truncated = self._step(key, self.state, self.actions)
        self.observations[...] = np.asarray(self.state.obs)
        self.rewards[...] = np.asarray(reward)
        self.terminals[...] = np.asarray(terminated)
        self.truncations[...] = np.asarray(truncated)
        return self.observations, self.rewards, self.terminals, self.truncations

    def log(self) -> dict:
        """Means of the log fields over episodes finished since the last call, plus ``n``;
        ``{}`` when none finished."""
        log, self.state = read_log(self.env, self.state)
        return log

    def get_state(self) -> dict:
        """A snapshot as plain arrays (the key, every leaf of the batch's state, the buffers),
        for checkpoints: :meth:`set_state` continues exactly from it."""
        leaves = jax.tree.leaves(self.state)
        return {"name": self.name, "key": np.asarray(self.key),
                "leaves": {str(i): np.asarray(v) for i, v in enumerate(leaves)},
                **{k: getattr(self, k).copy() for k in BUFFERS}}

    def set_state(self, state: dict) -> None:
        """Restore a snapshot from :meth:`get_state` of a vector env with the same name and size.
        Every part is checked (shape and dtype) before anything changes; a bad snapshot raises
        ValueError naming the part."""
        if not isinstance(state, dict):
            raise ValueError(f"environment state must be a dict from get_state, got {type(state).__name__}")
        missing = [k for k in ("name", "key", "leaves", *BUFFERS) if k not in state]
        if missing:
            raise ValueError(f"environment state lacks {', '.join(missing)}")
        if state["name"] != self.name:
            raise ValueError(f"environment state is for {state['name']!r}, not {self.name!r}")
        mine, treedef = jax.tree.flatten(self.state)
        saved = state["leaves"]
        if not isinstance(saved, dict) or len(saved) != len(mine):
            raise ValueError(f"environment state holds {len(saved) if isinstance(saved, dict) else saved!r} "
                             f"arrays, expected {len(mine)}")
        expected = {"key": (self.key, np.asarray(state["key"])),
                    **{f"leaves[{i}]": (v, np.asarray(saved.get(str(i)))) for i, v in enumerate(mine)},
                    **{k: (getattr(self, k), np.asarray(state[k])) for k in BUFFERS}}
        for where, (now, value) in expected.items():
            if value.shape != np.shape(now) or value.dtype != now.dtype:
                raise ValueError(f"environment state: {where} has shape {value.shape} and dtype {value.dtype}, "
                                 f"expected {np.shape(now)} and {now.dtype}")
        self.key = jax.numpy.asarray(expected["key"][1])
        self.state = jax.tree.unflatten(treedef, [jax.numpy.asarray(saved[str(i)]) for i in range(len(mine))])
        for k in BUFFERS:
            getattr(self, k)[...] = state[k]

    def render(self, i: int = 0) -> np.ndarray:
        """Environment i drawn as a (height, width, 3) uint8 image, where the env can draw
        (its JaxEnv has ``render(state)``)."""
        i = check_int("render index", i, 0, self.num_envs - 1)
        draw = getattr(self.env, "render", None)
        if draw is None:
            raise RuntimeError(f"{self.name}: this environment does not render")
        return np.asarray(draw(jax.tree.map(lambda a: a[i], self.state.env)), np.uint8)

    def close(self) -> None:
        self._closed = True

    def __repr__(self):
        return f"JaxVecEnv({self.name!r}, num_envs={self.num_envs})"
