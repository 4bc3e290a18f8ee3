"""PettingZoo Parallel API environments: one env, K buffer rows (one per possible agent).

Written against the Parallel API protocol (``possible_agents``, ``agents``,
``observation_space(agent)``, ``action_space(agent)``, ``reset(seed=...) -> (obs, infos)``,
``step(actions) -> (obs, rewards, terminations, truncations, infos)``, dicts keyed by agent), so
PettingZoo itself is not needed to use it (``pip install puffjax[pettingzoo]`` brings it).

Rules:

* The agent set is fixed: ``possible_agents``, one row each (agent k of env i is row i * K + k),
  and every agent must have the same observation space and action space (one shared policy).
* Agents of one env step together. An agent that finished (terminated or truncated) before the
  others is **masked** until the env's episode ends: its row holds zeros, reward 0,
  ``terminals`` True, and ``masks`` False, so it takes no action, is not counted as a step and
  does not enter the loss. When no agent is left the env resets, and every row is live again.
* ``log()`` counts agent episodes: ``episode_return`` and ``episode_length`` (live steps) per
  agent, and ``perf`` (= the return).
* Refused: an agent whose observation or action space changes mid-episode, an agent not in
  ``possible_agents``, and observations that do not fit the space (checked on each reset and
  the first step after it).
"""
from __future__ import annotations

import numpy as np

from .spaces import SpaceError


def is_parallel_env(env) -> bool:
    """Whether ``env`` looks like a PettingZoo Parallel API environment."""
    return hasattr(env, "possible_agents") and callable(getattr(env, "observation_space", None)) \
        and callable(getattr(env, "action_space", None))


class ParallelDriver:
    """Drives one Parallel API env over its K rows (see the module docstring)."""

    LOG_NAMES = ("perf", "episode_return", "episode_length")

    @staticmethod
    def spaces(env):
        """(observation space, action space, agents per env): the agents' shared spaces."""
        agents = list(env.possible_agents)
        if not agents:
            raise ValueError("a PettingZoo env needs at least one agent in possible_agents")
        obs, act = env.observation_space(agents[0]), env.action_space(agents[0])
        for agent in agents[1:]:
            for what, space, first in (("observation", env.observation_space(agent), obs),
                                       ("action", env.action_space(agent), act)):
                if space != first:
                    raise ValueError(f"every agent must have the same {what} space (one policy for all): agent "
                                     f"{agent!r} has {space}, agent {agents[0]!r} has {first}")
        return obs, act, len(agents)

    def __init__(self, env, index: int, rows, obs_layout, act_layout, log, where: str):
        self.env, self.index, self.rows, self.log = env, index, rows, log
        self.obs_layout, self.act_layout = obs_layout, act_layout
        self.agents = list(env.possible_agents)
        self.slot = {agent: k for k, agent in enumerate(self.agents)}
        self.where = f"{where}: environment {index}: "
        K = len(self.agents)
        self.returns, self.lengths = np.zeros(K), np.zeros(K, np.int64)
        self.checks_left = 0  # observations still to check: a reset's and the first step's after it

    # ---- helpers ----
    def _agent(self, agent) -> int:
        k = self.slot.get(agent)
        if k is None:
            raise SpaceError(f"{self.where}agent {agent!r} is not in possible_agents {self.agents}")
        return k

    def _write_obs(self, obs: dict) -> None:
        r = self.rows
        for agent, value in obs.items():
            k = self._agent(agent)
            if self.checks_left:
                self.obs_layout.check(value, f"{self.where}agent {agent!r}: ")
            self.obs_layout.write(r.observations[k], value)

    def _check_spaces(self, agent) -> None:
        for what, space, layout in (("observation", self.env.observation_space(agent), self.obs_layout),
                                    ("action", self.env.action_space(agent), self.act_layout)):
            if space is not layout.space and space != layout.space:
                raise SpaceError(f"{self.where}agent {agent!r} changed its {what} space mid-episode, from "
                                 f"{layout.space} to {space}; puffjax needs fixed spaces")

    def _start(self, obs: dict) -> None:
        """Rows of a fresh episode: the agents present are live."""
        r = self.rows
        r.observations[...] = 0
        self._write_obs(obs)
        live = set(self.env.agents) & set(obs)
        for k, agent in enumerate(self.agents):
            r.masks[k] = agent in live
        self.returns[:] = 0.0
        self.lengths[:] = 0

    # ---- the driver interface ----
    def reset(self, seed: int | None) -> None:
        obs, _ = self.env.reset(seed=seed)
        self.checks_left = 2
        self._start(obs)
        r = self.rows
        r.rewards[...] = 0.0
        r.terminals[...] = False
        r.truncations[...] = False
        if self.checks_left:
            self.checks_left -= 1

    def step(self) -> None:
        r, layout = self.rows, self.act_layout
        live = [agent for k, agent in enumerate(self.agents) if r.masks[k]]
        actions = {}
        for agent in live:
            a = r.actions[self.slot[agent]]
            actions[agent] = (int(a) if layout.dtype == np.int32 else a) if layout.plain else layout.unflatten(a)
        obs, rewards, terminations, truncations, _ = self.env.step(actions)
        for agent in live:
            self._check_spaces(agent)
        # Rows of agents that were not live: masked (see the module docstring).
        r.observations[...] = 0
        r.rewards[...] = 0.0
        r.terminals[...] = True
        r.truncations[...] = False
        r.masks[...] = False
        self._write_obs(obs)
        for agent in live:
            k = self.slot[agent]
            reward = float(rewards.get(agent, 0.0))
            term, trunc = bool(terminations.get(agent, False)), bool(truncations.get(agent, False))
            r.rewards[k], r.terminals[k], r.truncations[k] = reward, term, trunc and not term
            self.returns[k] += reward
            self.lengths[k] += 1
            if term or trunc:
                self.log.add(perf=self.returns[k], episode_return=self.returns[k], episode_length=self.lengths[k])
            else:
                r.masks[k] = True
        still = set(self.env.agents)
        for agent in live:  # an env may drop an agent without saying it finished
            k = self.slot[agent]
            if r.masks[k] and agent not in still:
                r.masks[k] = False
                self.log.add(perf=self.returns[k], episode_return=self.returns[k], episode_length=self.lengths[k])
        if not r.masks.any():  # no agent left: a new episode
            reset_obs, _ = self.env.reset()
            self._start(reset_obs)
        if self.checks_left:
            self.checks_left -= 1

    def render(self):
        return self.env.render()

    def get_state(self):
        return self.env, self.returns.copy(), self.lengths.copy()

    def set_state(self, state) -> None:
        self.env, returns, lengths = state
        self.returns[:], self.lengths[:] = returns, lengths
        self.checks_left = 0

    def close(self) -> None:
        self.env.close()
