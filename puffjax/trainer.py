"""The trainer: collect a rollout from the environments, run one jitted update epoch, log.

    cfg = puffjax.load_config("breakout")
    trainer = puffjax.Trainer(cfg)
    for log in trainer.train_iter():   # one dict per epoch; or trainer.train() for the list
        ...

The data path: env -> rollout (:mod:`puffjax.rollout`) -> buffer (:mod:`puffjax.buffer`) ->
advantage, loss and optimizer (:mod:`puffjax.update`); this module only drives it, logs and
checkpoints.
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from . import buffer, checkpoint, envs, finite, normalize, parallel, profiles
from .config import Config, check_stored_env, resume_conflicts, stored_config, validate
from .dashboard import make_dashboard
from .device_trainer import DeviceRun
from .evaluate import record_video
from .geometry import geometry, rounding_note
from .logger import MetricsLogger, make_run_dir, truncate_metrics
from .models import count_params, policy_from_config
from .optim import make_optimizer, set_schedule_count
from .rollout import Timer, groups_for, make_act, play
from .update import LOSS_KEYS, TrainState, make_train_epoch


class Trainer:
    """PPO-family trainer over a vector environment (PufferLib 3.0's PuffeRL in JAX).

    ``cfg``: the run's :class:`puffjax.Config`. ``env``: an already built vector env (e.g. from
    ``puffjax.envs.from_gymnasium``); by default one is made from ``cfg.env``. ``run_dir``: where
    metrics and checkpoints go (default: a new directory under ``cfg.train.data_dir``; the
    checkpoint's own run directory when resuming). ``dashboard``: "auto" (live in a terminal,
    progress lines otherwise), "rich", "lines" or "none".

    ``resume``: a checkpoint file or run directory to continue from (parameters, optimizer,
    keys, counters and environment state). Which config wins: ``cfg`` when given, else the
    config stored in the checkpoint (``Trainer(resume=RUN)`` continues a run exactly as it was
    configured; ``Trainer(puffjax.run_config(RUN, total_timesteps=...), resume=RUN)`` changes
    some fields on top). A ``cfg`` whose environment, policy or optimizer differs from the
    checkpoint's is refused with a ValueError naming the fields. A checkpoint is data: the
    environment is built from its config alone only where that loads no code from a file
    (:func:`puffjax.config.check_stored_env`; a C file or ``module:factory`` is named again in
    ``cfg``). Python environments (gymnasium, PettingZoo) are rebuilt and re-seeded, with a
    warning, unless the run saved their pickled state (``train.save_python_env_state``) and
    ``trust_checkpoint`` is True: unpickling it runs code from the file.

    Training stops with :class:`puffjax.NonFiniteError` when the environment returns NaN/inf
    or the update goes non-finite; the parameters and checkpoints stay those of the last good
    epoch (``train.check_finite = false`` turns these checks off).

    Devices: the batch is sharded over ``train.devices`` devices per process (0: all local
    devices; see :mod:`puffjax.parallel`). After :func:`puffjax.parallel.initialize`, every
    process runs this same trainer with its own ``env.num_envs`` environments; process 0
    writes the metrics, dashboard, videos and checkpoints (every process adds its environments'
    state to them). A process that dies stops the others with :class:`puffjax.parallel.PeerLostError`.

    A JAX environment (a ``JaxVecEnv``, e.g. ``gymnax:CartPole-v1``) runs on device: each epoch
    is one jitted call of rollout and update (:mod:`puffjax.device_trainer`), in one process.

    On CPUs, call :func:`puffjax.keep_freed_memory` once first for speed (the CLI and the
    examples do): XLA's CPU buffers otherwise page-fault on every call. It changes glibc's
    malloc settings for the whole process, so the trainer does not do it on its own.
    """

    def __init__(self, cfg: Config | None = None, env=None, run_dir: str | None = None,
                 resume: str | None = None, dashboard: str = "auto", trust_checkpoint: bool = False):
        saved = None
        if resume is not None:
            saved = checkpoint.load_raw(resume)
            stored = stored_config(saved["config"], saved["path"])
            if cfg is None and env is None:  # the environment would be built on the checkpoint's word
                check_stored_env(stored, saved["path"], None)
            cfg = stored if cfg is None else cfg
            conflicts = resume_conflicts(stored, cfg)
            if conflicts:
                raise ValueError(f"{saved['path']}: the checkpoint is from a different environment or policy than "
                                 f"this config, so it cannot be resumed with it: {'; '.join(conflicts)}")
        elif cfg is None:
            raise TypeError("Trainer needs a config (puffjax.load_config(...)) or resume= a run to continue")
        validate(cfg)
        self.cfg, t = cfg, cfg.train
        self.mesh = parallel.make_mesh(t.devices)
        self.main = parallel.is_main()
        env_seed = parallel.process_seed(t.seed)
        self.env = env if env is not None else envs.make(
            cfg.env.name, num_envs=cfg.env.num_envs, threads=cfg.env.threads or envs.available_cores(),
            seed=env_seed, workers=cfg.env.workers, step_timeout=cfg.env.step_timeout,
            check_bounds=cfg.env.check_bounds, **cfg.env.options)
        n_local = self.env.num_agents  # buffer rows: environments x agents per environment
        if n_local % parallel.local_devices(self.mesh):
            raise ValueError(f"{n_local} agents do not split evenly over this process's "
                             f"{parallel.local_devices(self.mesh)} devices: make env.num_envs a multiple of it")
        self.geom = geometry(t, n_local * jax.process_count(), self.mesh.size)
        self.policy = policy_from_config(cfg.policy, self.env.observation_space, self.env.action_space)
        init_key, rollout_key, train_key = jax.random.split(jax.random.PRNGKey(t.seed), 3)
        params = self.policy.init(init_key)
        self.tx = make_optimizer(t, self.geom.total_updates)
        self.num_params = count_params(params)
        self.state = parallel.replicate(self.mesh, TrainState(params, self.tx.init(params)))
        self.rollout_key, self.train_key = parallel.replicate(self.mesh, (rollout_key, train_key))
        rows = parallel.rows(self.mesh)
        g = self.geom
        new_buf = jax.jit(lambda: buffer.allocate(g.segments, g.horizon, self.env.observation_space, self.policy.dist),
                          out_shardings=rows)
        self.buf = new_buf()
        # train.overlap: the buffer the update reads while the next rollout is played into self.buf
        self.spare = new_buf() if t.overlap else None
        self._ahead: tuple[dict, int] | None = None  # the played-ahead rollout's env log and live steps
        # The rollout's groups of agents (see puffjax.rollout): per group, a recurrent carry and
        # the value of each agent's last state (for bootstrapping truncations).
        self.groups = groups_for(self.env, n_local // parallel.local_devices(self.mesh), t.rollout_groups)
        group_agents = g.total_agents // self.groups
        self._initial_carry = jax.jit(lambda: self.policy.initial_carry(group_agents), out_shardings=rows)
        zeros = jax.jit(lambda: jnp.zeros(group_agents, jnp.float32), out_shardings=rows)
        self.prev_values = [zeros() for _ in range(self.groups)]
        self.returns = [zeros() for _ in range(self.groups)]  # running discounted returns (normalize_reward)
        self.stats, self._empty_acc, self._update_stats = normalize.trainer_parts(self.env.observation_space, t,
                                                                                  self.mesh)
        self.act = make_act(self.policy, t.gamma, self.mesh, t.check_finite, t.reward_clip, t.normalize_obs,
                            t.normalize_reward, t.obs_clip)
        self._live_steps = parallel.per_device(self.mesh, lambda masks: jnp.sum(masks > 0, dtype=jnp.int32))
        self.train_epoch = make_train_epoch(self.policy, self.tx, self.geom, t, self.mesh)
        # timesteps: the agent steps played (the budget's count); global_step: those that count
        # for learning (masked agents' steps do not)
        self.epoch, self.timesteps, self.global_step, self.uptime = 0, 0, 0, 0.0
        self.resumed_from: str | None = None
        self.last_checkpoint: str | None = None
        self.trust_checkpoint = trust_checkpoint
        self._env_state_warned = False
        self.env.reset(seed=env_seed)
        # A JAX environment runs on device: rollout and update as one jitted call per epoch.
        self.device = DeviceRun(cfg, self.env, self.mesh, t.seed) if isinstance(self.env, envs.jaxenv.JaxVecEnv) else None
        if self.device is not None:
            self.state = self.device.state
        note = rounding_note(t.total_timesteps, self.geom)
        if note and self.main:
            warnings.warn(note, stacklevel=2)
        if saved is not None:
            self._restore(saved)
        if run_dir is None and resume is not None:  # continue the checkpoint's own run directory
            run_dir = os.path.dirname(os.path.dirname(self.resumed_from))
        if run_dir is None:
            run_dir = parallel.broadcast_text(make_run_dir(t.data_dir, cfg.env.name) if self.main else "")
        self.run_dir = run_dir
        os.makedirs(self.run_dir, exist_ok=True)
        self.logger = None
        if self.main:
            if resume is not None:
                truncate_metrics(self.run_dir, self.epoch)
            cfg.save(os.path.join(self.run_dir, "config.json"))
            self.logger = MetricsLogger(self.run_dir, t.logger, cfg.to_dict())
        self.dashboard_mode = dashboard if self.main else "none"
        self.last_env_log: dict = {}
        self.last_video: str | None = None
        self._video_warned = False

    @property
    def finished(self) -> bool:
        """True when the run has reached ``train.total_timesteps``."""
        return self.timesteps >= self.cfg.train.total_timesteps

    # ------------------------------------------------------------------ training
    def train_iter(self) -> Iterator[dict]:
        """Train until ``total_timesteps``, yielding one log dict per epoch."""
        dash = make_dashboard(self, self.dashboard_mode)
        try:
            while not self.finished:
                log = self._epoch()
                dash.update(log)
                yield log
        except Exception as e:
            if jax.process_count() > 1 and not isinstance(e, finite.NonFiniteError):
                lost = parallel.lost_processes(e)
                if lost:
                    raise parallel.PeerLostError(
                        f"process{'es' if len(lost) > 1 else ''} {', '.join(map(str, lost))} of "
                        f"{jax.process_count()} stopped during epoch {self.epoch + 1} (this is process "
                        f"{jax.process_index()}); the last checkpoint is {self.last_checkpoint}") from e
            raise
        finally:
            dash.close()

    def collect(self, timer: Timer | None = None):
        """Play the next epoch's rollout with the current parameters into ``self.buf`` (and
        return it), advancing the environments and the rollout's key; ``timer`` collects the
        time per phase."""
        self._collect(timer or Timer(), self.epoch + 1)
        return self.buf

    def _collect(self, timer: Timer, epoch: int) -> tuple[dict, int]:
        """:meth:`collect` of epoch ``epoch`` (1-based, for messages); returns its environment
        log and live agent steps over every process, shared with the non-finite check in one
        collective, after which it raises :class:`puffjax.NonFiniteError` if any process's
        environments returned NaN or inf."""
        carries = [self._initial_carry() for _ in range(self.groups)]
        self.buf, self.rollout_key, self.prev_values, self.returns, acc, record = play(
            self.env, self.act, self.state.params, self.buf, carries, self.rollout_key, self.prev_values,
            self.returns, self.stats, self._empty_acc(), self.geom, timer, epoch=epoch, mesh=self.mesh)
        self.stats = self._update_stats(self.stats, acc)
        live = int(parallel.to_local(self._live_steps(self.buf.masks)).sum())  # masked agents' steps do not count
        env_log, records, steps = parallel.exchange_epoch(self.env.log(), self.env.log_names, record, live)
        multi = jax.process_count() > 1
        finite.check_record(records, epoch, self.env.num_agents if multi else None)
        return env_log, steps

    def _plays_ahead(self) -> bool:
        """Whether this epoch's update overlaps the next epoch's rollout (``train.overlap``):
        not when this epoch ends the run or writes a checkpoint, so a checkpoint holds the
        environments, keys and parameters of one finished epoch with no rollout pending."""
        t = self.cfg.train
        epoch = self.epoch + 1
        return (t.overlap and self.timesteps + self.geom.batch_size < t.total_timesteps
                and epoch % t.checkpoint_interval != 0)

    def _epoch(self) -> dict:
        """One epoch: rollout, update, log, checkpoint; returns the epoch's log.

        With ``train.overlap`` the update is dispatched (it runs asynchronously) and the next
        epoch's rollout is played meanwhile, into the other buffer, with the parameters from
        before this update; the next epoch then starts with its update. ``performance/learn``
        is then the wait for the update after that rollout: the part of it not hidden."""
        timer, clock = Timer(), time.perf_counter
        start = clock()
        if self.device is not None:
            env_log, losses = self.device.epoch(self.epoch + 1, timer)
            self.state, steps = self.device.state, self.geom.batch_size
        else:
            if self._ahead is None:
                env_log, steps = self._collect(timer, self.epoch + 1)
            else:  # played during the previous epoch's update
                (env_log, steps), self._ahead = self._ahead, None
            t_learn = clock()
            key = jax.random.fold_in(self.train_key, self.epoch)
            progress = jnp.float32(self.timesteps / self.geom.batch_size)  # in epochs of this batch: schedules' clock
            state, losses, health = self.train_epoch(self.state, self.buf, key, progress)
            if self._plays_ahead():  # the act step donates self.buf; the update reads the spare
                self.buf, self.spare = self.spare, self.buf
                t_ahead = clock()
                self._ahead = self._collect(timer, self.epoch + 2)
                t_learn += clock() - t_ahead  # the rollout's time is its own
            losses, health = jax.tree.map(parallel.to_local, (losses, health))  # waits for the update
            if self.cfg.train.check_finite:
                finite.check_update(health, self.epoch + 1)  # before the new state is kept
            self.state = state
            timer.add("learn", clock() - t_learn)
        end = clock()
        self.epoch += 1
        self.timesteps += self.geom.batch_size
        self.global_step += steps
        self.uptime += end - start
        log = self._log(env_log, losses, timer.pop(), end - start, steps)
        if self.logger is not None:
            self.logger.log(log)
        note = profiles.no_episode_warning(self.epoch, self.geom.total_epochs, bool(self.last_env_log), self.geom,
                                           self.env.num_envs)
        if note and self.main:
            warnings.warn(f"puffjax: {note}", stacklevel=3)
        final = self.finished
        if final or self.epoch % self.cfg.train.checkpoint_interval == 0:
            self.last_checkpoint = self.save()
            if self.main:
                self.last_video = self._video(final) or self.last_video
        return log

    def train(self) -> list[dict]:
        """Train to the end; returns the history (one log dict per epoch)."""
        return list(self.train_iter())

    def _log(self, env_log: dict, losses: dict, times: dict, epoch_seconds: float, steps: int) -> dict:
        log = {"SPS": steps / epoch_seconds, "agent_steps": self.global_step,
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
        """This process's part of a checkpoint, as host arrays: the replicated state and counters
        on process 0, and on every process its environments' state and its agents' prev_value
        (in environment order); on a JAX environment, the on-device Runner (:class:`DeviceRun`)."""
        counters = {"epoch": self.epoch, "timesteps": self.timesteps, "global_step": self.global_step,
                    "uptime": self.uptime, "processes": jax.process_count()}
        if self.device is not None:
            return {**self.device.payload(), "counters": counters}
        prev_value, returns = (np.concatenate([parallel.to_local(v) for v in vs]) for vs in (self.prev_values,
                                                                                             self.returns))
        local = {"prev_value": prev_value, "return": returns}
        env_state = self._env_state()
        if env_state is not None:
            local["env"] = env_state
        if not self.main:
            return local
        replicated = jax.tree.map(parallel.to_local, {
            "params": self.state.params, "opt_state": self.state.opt_state,
            "rollout_key": self.rollout_key, "train_key": self.train_key})
        replicated["normalize"] = normalize.to_host(jax.tree.map(parallel.to_local, self.stats))
        return {**replicated, **local, "counters": counters}

    def _env_state(self) -> dict | None:
        """This process's environments' state for a checkpoint, or None where it holds none:
        Python environments' internals are saved (pickled) only with
        ``train.save_python_env_state``, and not where they cannot be pickled (one warning; the
        rest of the checkpoint is written all the same)."""
        if not isinstance(self.env, envs.PyVecEnv):
            return self.env.get_state()
        if not self.cfg.train.save_python_env_state:
            return None
        try:
            return self.env.get_state()
        except RuntimeError as e:
            if not self._env_state_warned:
                self._env_state_warned = True
                warnings.warn(f"checkpoints of {self.run_dir} hold no state of the Python environments, which "
                              f"cannot be saved ({e}); a resume re-seeds them", stacklevel=4)
            return None

    def save(self) -> str:
        """Write a checkpoint of the current state (keeping ``train.keep_checkpoints``); its path.
        Every process of a multi-process run must call it together."""
        return checkpoint.save(self.run_dir, self.epoch, self._payload(), self.cfg.to_dict(),
                               keep=self.cfg.train.keep_checkpoints)

    def _restore(self, state: dict) -> None:
        """Restore parameters, optimizer, keys, counters and environment state from a loaded
        checkpoint (:func:`puffjax.checkpoint.load_raw`) already checked against this config."""
        path = state["path"]
        missing = [k for k in ("params", "opt_state", "counters") if k not in state]
        if missing:
            raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
        target = jax.tree.map(parallel.to_local, {"params": self.state.params, "opt_state": self.state.opt_state})
        params = checkpoint.restore_into(target["params"], state["params"], "params", path)
        opt_state = checkpoint.restore_into(target["opt_state"], state["opt_state"], "opt_state", path)
        c, g = state["counters"], self.geom
        self.epoch, self.global_step, self.uptime = int(c["epoch"]), int(c["global_step"]), float(c["uptime"])
        self.timesteps = int(c.get("timesteps", self.epoch * g.batch_size))
        # The learning rate continues from the agent step, whatever this run's updates per step.
        opt_state = set_schedule_count(opt_state, self.timesteps * g.minibatches_per_epoch // g.batch_size)
        self.state = parallel.replicate(self.mesh, TrainState(params, opt_state))
        self.resumed_from = self.last_checkpoint = path
        if self.device is not None:
            self.device.restore(state, self.state, path)
            return
        self.rollout_key, self.train_key = parallel.replicate(
            self.mesh, (np.asarray(state["rollout_key"], np.uint32), np.asarray(state["train_key"], np.uint32)))
        if "normalize" in state:
            host = normalize.from_host(state["normalize"], jax.tree.map(parallel.to_local, self.stats), path)
            self.stats = parallel.replicate(self.mesh, host)
        processes, p = int(c.get("processes", 1)), jax.process_index()
        if processes == jax.process_count():  # each process continues its own environments exactly
            why = self._restore_envs(state if p == 0 else checkpoint.load_part(path, p))
        else:
            why = f"saved by {processes} process(es), resumed by {jax.process_count()}"
        if why:  # fresh episodes, from a stream of the seed and the agent step
            self.env.reset(seed=parallel.process_seed(parallel.step_seed(self.cfg.train.seed, self.timesteps)))
            if self.main:
                warnings.warn(f"{path}: {why}: the parameters, optimizer and counters continue, the environments "
                              f"are re-seeded", stacklevel=3)

    def _restore_envs(self, local: dict) -> str | None:
        """Restore this process's environments and their agents' prev_value from its part of a
        checkpoint; returns why they were not restored (they keep their fresh episodes), or None."""
        env_state = local.get("env")
        if env_state is None:
            return "the checkpoint holds no state of the environments (Python ones: train.save_python_env_state)"
        if isinstance(self.env, envs.PyVecEnv):
            if not self.trust_checkpoint and isinstance(env_state, dict) and "pickle" in env_state:
                return ("the Python environments' pickled state was not loaded, since unpickling runs code from the "
                        "file (--trust-checkpoint, or Trainer(..., trust_checkpoint=True), loads it)")
            self.env.set_state(env_state, trusted=self.trust_checkpoint)
        else:
            self.env.set_state(env_state)
        prev_value = np.asarray(local["prev_value"], np.float32).reshape(self.groups, -1)
        self.prev_values = [parallel.from_local(self.mesh, v) for v in prev_value]
        if "return" in local:
            returns = np.asarray(local["return"], np.float32).reshape(self.groups, -1)
            self.returns = [parallel.from_local(self.mesh, v) for v in returns]
        return None

    # ------------------------------------------------------------------ videos
    def _video(self, final: bool) -> str | None:
        """After a checkpoint: ``run_dir/video.gif`` at the end of a run, and
        ``run_dir/videos/epoch_XXXXXX.gif`` every ``train.video_interval`` checkpoints (0: only
        at the end). ``train.video_frames = 0`` turns videos off; so does an environment that
        cannot be replayed by name (one the caller built, other than a C env or a JAX env of
        ``cfg.env``) or a JAX env that does not render."""
        t = self.cfg.train
        if t.video_frames <= 0:
            return None
        if not (isinstance(self.env, (envs.CVecEnv, envs.jaxenv.JaxVecEnv)) and self.env.name == self.cfg.env.name):
            return None
        if self.device is not None and not hasattr(self.device.ondevice.env, "render"):
            return None
        if final:
            path = os.path.join(self.run_dir, "video.gif")
        elif t.video_interval > 0 and (self.epoch // t.checkpoint_interval) % t.video_interval == 0:
            path = os.path.join(self.run_dir, "videos", f"epoch_{self.epoch:06d}.gif")
        else:
            return None
        try:
            stats = self.stats if self.device is None else self.device.stats
            obs_norm = (stats.obs, t.obs_clip) if t.normalize_obs else None
            return record_video(self.policy, self.state.params, self.cfg.env, path, t.video_frames, seed=t.seed,
                                obs_norm=obs_norm)
        except ImportError as e:
            if not self._video_warned:
                warnings.warn(f"puffjax: no rollout video ({e})", stacklevel=2)
                self._video_warned = True
            return None

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        self.env.close()
