"""The trainer: collect a rollout from the C environments, run one jitted update epoch, log.

    cfg = puffjax.load_config("breakout")
    trainer = puffjax.Trainer(cfg)
    for log in trainer.train_iter():   # one dict per epoch; or trainer.train() for the list
        ...
"""
from __future__ import annotations

import os
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint, envs
from .config import Config, validate
from .evaluate import trainer_video
from .geometry import geometry
from .heap import keep_freed_memory
from .logger import MetricsLogger, make_run_dir, truncate_metrics
from .models import make_policy
from .optim import make_optimizer
from .rollout import Timer, collect, empty_batch, make_act
from .update import LOSS_KEYS, TrainState, make_train_epoch


def build_policy(cfg: Config, observation_space, action_space):
    p = cfg.policy
    return make_policy(observation_space, action_space, kind=p.kind, hidden_size=p.hidden_size,
                       value_head=p.value_head, num_bins=p.num_bins, v_min=p.v_min, v_max=p.v_max)


def count_params(params) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


class Trainer:
    """PPO-family trainer over a vector environment (PufferLib 3.0's PuffeRL, in JAX).

    ``env``: an already built vector env (e.g. from ``puffjax.envs.from_gymnasium``); by default
    one is made from ``cfg.env``. ``run_dir``: where metrics and checkpoints go (default: a new
    directory under ``cfg.train.data_dir``). ``resume``: a checkpoint file or run directory.
    ``dashboard``: "auto" (live in a terminal, progress lines otherwise), "lines" or "none".
    """

    def __init__(self, cfg: Config, env=None, run_dir: str | None = None, resume: str | None = None,
                 dashboard: str = "auto"):
        validate(cfg)
        keep_freed_memory()  # XLA's CPU buffers would page-fault on every call (see puffjax.heap)
        self.cfg, t = cfg, cfg.train
        self.env = env if env is not None else envs.make(
            cfg.env.name, num_envs=cfg.env.num_envs, threads=cfg.env.threads, seed=t.seed, **cfg.env.options)
        self.geom = geometry(t, self.env.num_envs)
        self.policy = build_policy(cfg, self.env.observation_space, self.env.action_space)
        init_key, self.rollout_key, self.train_key = jax.random.split(jax.random.PRNGKey(t.seed), 3)
        params = self.policy.init(init_key)
        self.tx = make_optimizer(t, self.geom.total_updates)
        self.state = TrainState(params, self.tx.init(params))
        self.num_params = count_params(params)
        self.buf = empty_batch(self.geom, self.env.observation_space, self.env.action_space)
        self.prev_value = jnp.zeros(self.env.num_envs, jnp.float32)
        self.act = make_act(self.policy, self.env.action_space, t.gamma)
        self.train_epoch = make_train_epoch(self.policy, self.tx, self.geom, t)
        self.epoch, self.global_step, self.uptime = 0, 0, 0.0
        self.resumed_from: str | None = None
        self.env.reset(seed=t.seed)
        if resume is not None:
            self.load(resume)
        if run_dir is None and resume is not None:  # continue the checkpoint's own run directory
            run_dir = os.path.dirname(os.path.dirname(self.resumed_from))
        self.run_dir = run_dir or make_run_dir(t.data_dir, cfg.env.name)
        os.makedirs(self.run_dir, exist_ok=True)
        if resume is not None:
            truncate_metrics(self.run_dir, self.epoch)
        cfg.save(os.path.join(self.run_dir, "config.json"))
        self.logger = MetricsLogger(self.run_dir, t.logger, cfg.to_dict())
        self.dashboard_mode = dashboard
        self.last_env_log: dict = {}
        self.last_checkpoint: str | None = None
        self.last_video: str | None = None  # written by puffjax.evaluate.trainer_video

    # ------------------------------------------------------------------ training
    def train_iter(self) -> Iterator[dict]:
        """Train until ``total_timesteps``, yielding one log dict per epoch."""
        from .dashboard import make_dashboard
        dash = make_dashboard(self, self.dashboard_mode)
        timer, clock = Timer(), time.perf_counter
        try:
            while self.epoch < self.geom.total_epochs:
                start = clock()
                carry = self.policy.initial_carry(self.env.num_envs)
                self.buf, _, self.rollout_key, self.prev_value = collect(
                    self.env, self.act, self.state.params, self.buf, carry, self.rollout_key,
                    self.prev_value, self.geom, timer)
                env_log = self.env.log()
                t_learn = clock()
                key = jax.random.fold_in(self.train_key, self.epoch)
                self.state, losses = self.train_epoch(self.state, self.buf, key, self.epoch)
                losses = jax.device_get(losses)  # waits for the update
                end = clock()
                timer.add("learn", end - t_learn)
                self.epoch += 1
                self.global_step += self.geom.batch_size
                self.uptime += end - start
                log = self._log(env_log, losses, timer.pop(), end - start)
                self.logger.log(log)
                final = self.epoch == self.geom.total_epochs
                if final or self.epoch % self.cfg.train.checkpoint_interval == 0:
                    self.last_checkpoint = self.save()
                    self.last_video = trainer_video(self, final) or self.last_video
                dash.update(log)
                yield log
        finally:
            dash.close()

    def train(self) -> list[dict]:
        """Train to the end; returns the history (one log dict per epoch)."""
        return list(self.train_iter())

    def _log(self, env_log: dict, losses: dict, times: dict, epoch_seconds: float) -> dict:
        log = {"SPS": self.geom.batch_size / epoch_seconds, "agent_steps": self.global_step,
               "epoch": self.epoch, "uptime": self.uptime}
        if env_log:
            self.last_env_log = env_log
            log.update({f"environment/{k}": float(v) for k, v in env_log.items()})
        log.update({f"losses/{k}": float(losses[k]) for k in LOSS_KEYS})
        times["misc"] = max(0.0, epoch_seconds - sum(times.values()))
        log.update({f"performance/{k}": v for k, v in times.items()})
        return log

    # ------------------------------------------------------------------ checkpoints
    def _payload(self) -> dict:
        return {
            "params": self.state.params, "opt_state": self.state.opt_state,
            "rollout_key": self.rollout_key, "train_key": self.train_key, "prev_value": self.prev_value,
            "counters": {"epoch": self.epoch, "global_step": self.global_step, "uptime": self.uptime},
            "env": self.env.get_state(),
        }

    def save(self) -> str:
        return checkpoint.save(self.run_dir, self.epoch, self._payload(), self.cfg.to_dict())

    def load(self, path: str) -> None:
        """Restore parameters, optimizer, keys, counters and environment state from a checkpoint."""
        state = checkpoint.load_raw(path)
        path = state["path"]
        missing = [k for k in ("params", "opt_state", "counters") if k not in state]
        if missing:
            raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
        if state["config"]["env"]["name"] != self.cfg.env.name:
            raise ValueError(f"{path}: checkpoint is for environment {state['config']['env']['name']!r}, "
                             f"not {self.cfg.env.name!r}")
        target = self._payload()
        params = checkpoint.restore_into(target["params"], state["params"], "params", path)
        opt_state = checkpoint.restore_into(target["opt_state"], state["opt_state"], "opt_state", path)
        self.state = TrainState(jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, opt_state))
        self.rollout_key = jnp.asarray(state["rollout_key"], jnp.uint32)
        self.train_key = jnp.asarray(state["train_key"], jnp.uint32)
        self.prev_value = jnp.asarray(state["prev_value"], jnp.float32)
        c = state["counters"]
        self.epoch, self.global_step, self.uptime = int(c["epoch"]), int(c["global_step"]), float(c["uptime"])
        self.env.set_state(state["env"])
        self.resumed_from = path

    def close(self) -> None:
        self.logger.close()
        self.env.close()
