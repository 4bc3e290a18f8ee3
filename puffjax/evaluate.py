"""Evaluate a checkpoint: per-episode and mean stats, and a video of environment 0.

    result = puffjax.evaluate("runs/breakout-20250101-120000", episodes=16, video="breakout.mp4")
    result.mean["score"], result.episodes[0], result.video     # a notebook shows stats and video

Same from the shell: ``puffjax eval breakout --checkpoint RUN_DIR --episodes 16 --video out.gif``.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import html
import json
import os
import warnings
from dataclasses import dataclass

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint as ckpt
from . import envs as _envs
from . import normalize
from .config import Config, EnvConfig, check_stored_env, stored_config
from .models import policy_from_config
from .preflight import make_env


@dataclass
class LoadedPolicy:
    policy: object  # puffjax.models.Policy
    params: dict
    config: Config
    path: str  # the checkpoint file
    obs_norm: tuple | None = None  # (moments, clip) the run standardised observations with (puffjax.normalize)


def load_policy(checkpoint: str, observation_space=None, action_space=None) -> LoadedPolicy:
    """Rebuild the policy of a checkpoint (file, checkpoints/ dir or run dir) from its own config.

    With spaces given (those of the environment it will play), parameter shapes are checked
    against them: a checkpoint from another environment or policy shape is a ValueError naming
    the file and the first mismatching parameter."""
    return _load_policy(ckpt.load_raw(checkpoint), observation_space, action_space)


def _checkpoint_config(state: dict) -> Config:
    return stored_config(state["config"], state["path"])


# Policies rebuilt from checkpoints, one per (policy config, spaces), so that evaluating many
# checkpoints of one run compiles its step once. Bounded: the oldest is dropped.
_POLICIES: collections.OrderedDict = collections.OrderedDict()
_MAX_POLICIES = 8


def _space_key(space):
    if isinstance(space, (gymnasium.spaces.Dict, gymnasium.spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, gymnasium.spaces.Dict) else enumerate(space.spaces)
        return (type(space).__name__, tuple((k, _space_key(s)) for k, s in items))
    arrays = [np.asarray(getattr(space, a)) for a in ("low", "high", "nvec") if hasattr(space, a)]
    return (type(space).__name__, getattr(space, "shape", None), str(getattr(space, "dtype", None)),
            getattr(space, "n", None), tuple(a.tobytes() for a in arrays))


def _load_policy(state: dict, observation_space=None, action_space=None) -> LoadedPolicy:
    path = state["path"]
    if "params" not in state:
        raise ValueError(f"{path}: checkpoint has no params")
    cfg = _checkpoint_config(state)
    if observation_space is None or action_space is None:
        with _envs.make(cfg.env.name, num_envs=1, **cfg.env.options) as env:
            observation_space, action_space = env.observation_space, env.action_space
    key = (json.dumps(dataclasses.asdict(cfg.policy), sort_keys=True), _space_key(observation_space),
           _space_key(action_space))
    policy = _POLICIES.get(key)
    if policy is None:
        try:
            policy = policy_from_config(cfg.policy, observation_space, action_space)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: cannot build the checkpoint's policy for this environment ({e})") from None
        _POLICIES[key] = policy
        if len(_POLICIES) > _MAX_POLICIES:
            _POLICIES.popitem(last=False)
    _POLICIES.move_to_end(key)
    # The parameter tree's shapes without running (or compiling) the initialisers.
    shapes = jax.eval_shape(policy._init, jax.random.PRNGKey(0))
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    params = ckpt.restore_into(target, state["params"], "params", path)
    obs_norm = normalize.observation_stats(state.get("normalize"), cfg.train, path)
    return LoadedPolicy(policy, jax.tree.map(jnp.asarray, params), cfg, path, obs_norm)


def make_step(policy, deterministic: bool):
    """step(params, obs, carry, done, key, obs_norm=None) -> (env_action, carry, key), jitted.

    The same acting step as the trainer's rollout (:meth:`puffjax.models.Policy.act`): it
    standardises the observations with ``obs_norm`` (``(moments, clip)``, as
    :attr:`LoadedPolicy.obs_norm`) when given, zeroes the carry where an episode began, samples
    with a sub-key of ``key`` (or takes the mode when ``deterministic``) and maps the action for
    the env. Kept in ``policy.cache``, so
    the trainer's periodic videos compile it once."""
    name = ("eval_step", deterministic)
    if name not in policy.cache:
        def step(params, obs, carry, done, key, obs_norm=None):
            if obs_norm is not None:
                obs = normalize.standardize(obs, *obs_norm)
            _, action, carry, key = policy.act(params, obs, carry, done, key, deterministic)
            return policy.dist.to_env_action(action), carry, key

        policy.cache[name] = jax.jit(step)
    return policy.cache[name]


def rollout_key(seed: int):
    """The action-sampling key the trainer's first rollout uses for ``train.seed = seed``."""
    return jax.random.split(jax.random.PRNGKey(seed), 3)[1]


@dataclass
class EvalResult:
    """Stats of an evaluation. ``episodes``: one dict per finished episode (per agent episode in
    a multi-agent env), in the order they ended (by step, then buffer row): ``env`` (its
    environment), ``agent`` (its agent in that environment; multi-agent envs only), ``step``
    (the vector step it ended on, from 1), ``episode_return`` summed from the step buffers,
    ``steps`` (agent steps, from the buffers), ``episode_length`` (the env's own count where it
    logs one, e.g. frames for Breakout; agent steps otherwise), plus the environment's other log
    fields (``perf``, ``score``...), each the episode's own value. A C environment steps alone
    so that its log holds its own episodes only; a Python env's log fields are the return
    (``perf``) and live steps (``episode_length``), known per episode from the buffers. A field
    the env logs only as a mean over episodes that ended on the same step is left out of those
    episodes' dicts (several agents of one C environment that end together; other vector envs).
    ``mean``: the means over all those episodes of the environment's log fields (what the
    trainer logs as ``environment/*``), plus ``episodes``. ``asked``: the episodes asked for
    (episodes that end on the step of the last one asked for count too); ``num_envs`` and
    ``agents_per_env``: the environments played at once and the agents in each."""

    checkpoint: str
    env: str
    episodes: list[dict]
    mean: dict
    steps: int  # vector steps played
    deterministic: bool
    video: str | None = None
    asked: int = 0
    num_envs: int = 1
    agents_per_env: int = 1

    def table(self) -> str:
        """One row per episode (its environment, agent and own values), then the means; a field
        the env logged only as a shared mean for that episode shows ``-``."""
        keys = _keys(self.episodes)
        ids = ["env", "agent"] if self.agents_per_env > 1 else ["env"]
        rows = [["#", *ids, *keys]]
        rows += [[str(i), *(str(e[k]) for k in ids), *(_fmt(e.get(k)) for k in keys)]
                 for i, e in enumerate(self.episodes)]
        rows.append(["mean", *([""] * len(ids)), *(_fmt(self.mean.get(k)) for k in keys)])
        widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        if any(k not in e for e in self.episodes for k in keys):
            lines.append("-: the env logged this value only as a mean over the episodes that ended on the same "
                         "step (in the mean row)")
        return "\n".join(lines)

    def headline(self) -> str:
        n, k = len(self.episodes), self.agents_per_env
        text = (f"{self.env}: {n} {'agent ' if k > 1 else ''}episodes in {self.steps} steps "
                f"({'deterministic' if self.deterministic else 'sampled'} actions) from {self.checkpoint}")
        if k > 1:
            text += f"; each row is one agent's episode ({self.num_envs} environments of {k} agents each)"
        if self.asked and n > self.asked:
            text += f"; {self.asked} asked for, and those that ended on the same step as the last of them count too"
        return text

    def __str__(self) -> str:
        return self.headline() + "\n" + self.table() + (f"\nvideo: {self.video}" if self.video else "")

    def __repr__(self) -> str:
        means = ", ".join(f"{k}={_fmt(v)}" for k, v in self.mean.items())
        return f"<EvalResult {self.headline()}; mean {means}>"

    def _repr_html_(self) -> str:
        keys = [k for k in _keys(self.episodes) if k in self.mean]
        cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(self.mean[k])}</td></tr>" for k in keys)
        out = (f"<p><b>{html.escape(self.env)}</b>: {len(self.episodes)} episodes, "
               f"{html.escape(os.path.basename(self.checkpoint))}</p>"
               f"<table><tr><th>mean</th><th></th></tr>{cells}</table>")
        if self.video:
            from .video import Video
            out += Video(self.video)._repr_html_()
        return out


def _keys(episodes: list[dict]) -> list[str]:
    keys: list[str] = []
    for e in episodes:
        keys += [k for k in e if k not in ("env", "agent", "step") and k not in keys]
    return keys


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)) or float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"


def evaluate(checkpoint: str, env=None, episodes: int = 10, video: str | None = None,
             deterministic: bool = False, seed: int = 0, num_envs: int | None = None,
             video_frames: int = 1000, fps: int = 30, max_steps: int = 100_000,
             env_options: dict | None = None) -> EvalResult:
    """Play a checkpoint's policy until ``episodes`` episodes have finished.

    ``checkpoint``: a checkpoint file, a ``checkpoints/`` directory or a run directory (its
    ``latest``). ``env``: an environment name (must be the checkpoint's; default) or an already
    built vector env with the same spaces (it is reset with ``seed`` and left open). ``num_envs`` environments (default ``min(episodes,
    8)``) are seeded with ``seed`` like the trainer's; sampled actions draw from the same key
    stream as the trainer's first rollout with ``train.seed = seed``, so evaluating the
    parameters a rollout used reproduces that rollout's episodes. ``env_options``: environment
    options on top of the checkpoint's (e.g. ``render_mode``), for an env made by name.
    ``episodes`` counts agent episodes in a multi-agent env. Episodes that end on the
    same step as the ``episodes``-th are counted too. A recurrent policy keeps its state across
    steps and zeroes it where an episode ends.

    ``video``: a ``.gif`` or ``.mp4`` path; writes environment 0's frames (at most
    ``video_frames``, played on until its first episode ends if need be) at ``fps``.
    Returns an :class:`EvalResult` (shown as a table and the video in a notebook).
    """
    from .video import VideoWriter, video_format
    if video is not None:
        video_format(video)  # an unknown extension fails before any work
        if video_frames < 1:
            raise ValueError(f"video_frames must be at least 1, got {video_frames}")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    state = ckpt.load_raw(checkpoint)
    cfg = _checkpoint_config(state)
    own_env = env is None or isinstance(env, str)
    if isinstance(env, str) and env != cfg.env.name:
        raise ValueError(f"{state['path']}: checkpoint was trained on {cfg.env.name!r}, not {env!r}")
    if env is None:  # the environment would be built on the checkpoint's word
        check_stored_env(cfg, state["path"], None)
    if own_env:
        n = num_envs if num_envs is not None else min(episodes, 8)
        vec = make_env(cfg.env.name, num_envs=n, seed=seed, **{**cfg.env.options, **(env_options or {})})
    else:
        vec = env
    try:
        loaded = _load_policy(state, vec.observation_space, vec.action_space)
        with VideoWriter(video, fps) if video is not None else contextlib.nullcontext() as writer:
            result = _play(loaded, vec, episodes, deterministic, seed, writer, video_frames, max_steps)
    finally:
        if own_env:
            vec.close()
    result.video = video
    return result


def _play(loaded: LoadedPolicy, env, episodes: int, deterministic: bool, seed: int, writer,
          video_frames: int, max_steps: int) -> EvalResult:
    policy, params = loaded.policy, loaded.params
    step = make_step(policy, deterministic)
    N, K = env.num_agents, env.agents_per_env  # one row per agent, K agents per environment
    env.reset(seed=seed)
    env.log()  # drop episodes logged before this evaluation
    carry = policy.initial_carry(N)
    key = rollout_key(seed)
    done = np.zeros(N, bool)
    ret, length = np.zeros(N, np.float64), np.zeros(N, np.int64)
    finished: list[dict] = []
    groups: list[dict] = []  # the env's logs of the steps where episodes ended
    if writer is not None:
        writer.append(env.render(0))
    env0_done, steps = False, 0
    while steps < max_steps:
        stats_done = len(finished) >= episodes
        video_done = writer is None or writer.frames >= video_frames or env0_done
        if stats_done and video_done:
            break
        action, carry, key = step(params, env.observations, carry, done, key, loaded.obs_norm)
        live = env.masks.copy()  # rows whose agent acts now (a masked agent's row ends no episode)
        rew, done, logs = _step_envs(env, np.asarray(action), live, collect=not stats_done)
        steps += 1
        if writer is not None and writer.frames < video_frames:
            writer.append(env.render(0))
        env0_done = env0_done or bool(done[0])
        if stats_done:
            continue  # playing on for the video only
        ret += rew
        length += live
        ended = done & live
        for rows, log in logs:
            if log:
                groups.append(log)
            for i in rows:
                finished.append({"env": int(i) // K, **({"agent": int(i) % K} if K > 1 else {}), "step": steps,
                                 **_own_values(env, log, len(rows), ret[i], length[i])})
        ret[ended], length[ended] = 0.0, 0
    if len(finished) < episodes:
        warnings.warn(f"{loaded.path}: only {len(finished)} of {episodes} episodes finished in "
                      f"{max_steps} steps (raise max_steps)", stacklevel=3)
    return EvalResult(checkpoint=loaded.path, env=getattr(env, "name", str(env)), episodes=finished,
                      mean=_means(finished, groups), steps=steps, deterministic=deterministic, asked=episodes,
                      num_envs=env.num_envs, agents_per_env=K)


def _step_envs(env, action, live, collect: bool):
    """Step every environment of ``env`` once with ``action``; returns ``(rewards, done, logs)``:
    ``done`` per row, and ``logs`` a list of (rows whose episode ended, the env's log of exactly
    those episodes). A vector env that steps a range of environments (C envs: ``step_range``)
    steps them one at a time, so that each environment's log holds its own episodes; any other
    steps at once, with one log for every episode that ended on the step. Without ``collect``
    no log is taken."""
    K = env.agents_per_env
    if not hasattr(env, "step_range"):
        _, rew, term, trunc = env.step(action)
        done = term | trunc
        rows = np.flatnonzero(done & live)
        return rew, done, ([(rows, env.log())] if collect and rows.size else [])
    logs = []
    for e in range(env.num_envs):
        env.step_range(e, e + 1, action[e * K:(e + 1) * K])
        part = slice(e * K, (e + 1) * K)
        rows = np.flatnonzero((env.terminals[part] | env.truncations[part]) & live[part]) + e * K
        if collect and rows.size:
            logs.append((rows, env.log()))
    return env.rewards, env.terminals | env.truncations, logs


def _own_values(env, log: dict, shared_by: int, ret: float, length: int) -> dict:
    """One episode's row: its return and agent steps from the buffers, plus the env's log fields
    where they are its own: the log covers this episode alone, or the env is a Python env, whose
    log is the return (``perf``) and the live steps (``episode_length``) of each episode."""
    row = {"episode_return": float(ret), "steps": int(length), "episode_length": float(length)}
    if shared_by == 1:
        row.update({k: float(v) for k, v in log.items() if k not in ("n", "episode_return")})
    elif isinstance(env, _envs.PyVecEnv):
        row["perf"] = float(ret)
    return row


def _means(finished: list[dict], groups: list[dict]) -> dict:
    """Episode-weighted means of the env's log fields; buffer sums where the env logs nothing."""
    mean: dict = {}
    total = sum(float(g.get("n", 0)) for g in groups)
    if total > 0:
        for k in groups[0]:
            if k != "n":
                mean[k] = sum(float(g[k]) * float(g["n"]) for g in groups) / total
    for k in ("episode_return", "episode_length", "steps"):
        if k not in mean and finished:
            mean[k] = float(np.mean([e[k] for e in finished]))
    mean["episodes"] = len(finished)
    return mean


def record_video(policy, params, env_cfg: EnvConfig, path: str, frames: int, seed: int = 0, fps: int = 30,
                 obs_norm: tuple | None = None) -> str:
    """Write ``frames`` frames of one fresh C environment (``env_cfg``: a config's ``env``
    section) played by ``policy`` with sampled actions (observations standardised with
    ``obs_norm`` as in :func:`make_step`). The trainer calls it for its rollout
    videos; it never touches the training environments."""
    from .video import VideoWriter
    env = _envs.make(env_cfg.name, num_envs=1, seed=seed, **env_cfg.options)
    try:
        step = make_step(policy, deterministic=False)
        env.reset(seed=seed)
        n = env.num_agents  # a multi-agent env: every agent plays, environment 0 is filmed
        carry, key, done = policy.initial_carry(n), jax.random.PRNGKey(seed), np.zeros(n, bool)
        with VideoWriter(path, fps) as writer:
            writer.append(env.render(0))
            while writer.frames < frames:
                action, carry, key = step(params, env.observations, carry, done, key, obs_norm)
                _, _, term, trunc = env.step(np.asarray(action))
                done = term | trunc
                writer.append(env.render(0))
    finally:
        env.close()
    return path
