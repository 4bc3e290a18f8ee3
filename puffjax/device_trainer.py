"""The trainer's epochs on a JAX environment: :meth:`puffjax.ondevice.OnDevice.epoch` (the
rollout as a ``lax.scan`` over the environments and the update, one jitted call) run from the
trainer's host loop, one call per epoch.

The host loop reads each epoch's metrics (a few hundred bytes) before it keeps the new
:class:`~puffjax.ondevice.Runner`, so the non-finite guard can discard a bad epoch and the
dashboard, metrics and checkpoints see every epoch; between epochs nothing leaves the device.
A checkpoint holds the Runner as plain arrays (:meth:`DeviceRun.payload`), and a resume from it
continues bit for bit (:meth:`DeviceRun.restore`).
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from . import checkpoint, finite, normalize, parallel
from .ondevice import OnDevice, Runner
from .update import LOSS_KEYS, TrainState


class DeviceRun:
    """A :class:`puffjax.Trainer`'s run on the JAX vector env ``env`` (a ``JaxVecEnv``, whose
    ``num_envs`` environments are stepped on device; its own host state is not used) with the
    config ``cfg`` on ``mesh``. ``runner``: the current :class:`Runner`, drawn from
    ``PRNGKey(seed)`` as :func:`puffjax.make_train` draws it, so the trainer's epochs are those
    of ``make_train(cfg, env)(PRNGKey(seed))``."""

    def __init__(self, cfg, env, mesh, seed: int):
        if jax.process_count() > 1:
            raise ValueError(f"{env.name}: JAX environments train in one process (on its devices); "
                             f"this run has {jax.process_count()} processes")
        if env.num_envs != cfg.env.num_envs:  # the environments given win over the config's count
            cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, num_envs=env.num_envs))
        self.ondevice = OnDevice(cfg, env, mesh)
        self.runner: Runner = self.ondevice.init(jax.random.PRNGKey(seed))

    def epoch(self, epoch: int, timer) -> tuple[dict, dict]:
        """Run one epoch (``epoch``: its 1-based number, for messages) and keep its Runner;
        returns ``(env_log, losses)``: the means of the log fields over the episodes finished in
        it with their number ``n`` (``{}`` when none), and the update's losses. Raises
        :class:`puffjax.NonFiniteError` (the Runner stays the last good one) when the
        environments returned NaN/inf or the update went non-finite."""
        start = time.perf_counter()
        runner, metrics = self.ondevice.epoch(self.runner)
        metrics = jax.device_get(metrics)  # waits for the epoch
        timer.add("device_epoch", time.perf_counter() - start)
        health = metrics["health"]
        if health:
            finite.check_record(health["inputs"], epoch)
            finite.check_update(health, epoch)
        self.runner = runner
        n = int(metrics["episodes"])
        env_log = {}
        if n:
            env_log = {k: float(v) for k, v in zip(self.ondevice.log_names, np.asarray(metrics["env"]))}
            env_log["n"] = n
        return env_log, {k: metrics[k] for k in LOSS_KEYS}

    @property
    def state(self) -> TrainState:
        """The parameters and optimizer state of the current Runner."""
        return self.runner.train

    @property
    def stats(self) -> normalize.Stats | None:
        """The current Runner's normalisation statistics (None when the run normalises nothing)."""
        return self.runner.stats

    def payload(self) -> dict:
        """The Runner for a checkpoint, as host arrays: ``params`` and ``opt_state`` (as the
        trainer saves them for any env), ``runner``, every other leaf of the Runner but the
        normalisation's by its index in the flattened tree (the environments' states, keys,
        carried rewards and values), and, when the run normalises, ``normalize`` (the statistics,
        :func:`puffjax.normalize.to_host`, as the host trainer saves them) and ``return`` (each
        agent's running discounted return)."""
        host = jax.tree.map(parallel.to_local, self.runner)
        rest = jax.tree.leaves(host._replace(train=None, returns=None, stats=None))
        out = {"params": host.train.params, "opt_state": host.train.opt_state,
               "runner": {str(i): np.asarray(v) for i, v in enumerate(rest)}}
        if host.stats is not None:
            out.update(normalize=normalize.to_host(host.stats), **{"return": np.asarray(host.returns)})
        return out

    def restore(self, saved: dict, state: TrainState, path: str) -> None:
        """Continue from a checkpoint's ``runner`` (:meth:`payload`) with the restored ``state``;
        a leaf of another shape (another environment, ``num_envs`` or policy) raises ValueError
        naming it. A run that normalises takes the checkpoint's statistics and returns where it
        holds them (as the host trainer does), else starts them afresh."""
        if "runner" not in saved:
            raise ValueError(f"{path}: the checkpoint holds no on-device run state (it was not written by a "
                             f"run on a JAX environment)")
        stats, returns = self.runner.stats, self.runner.returns
        if stats is not None:
            if "normalize" in saved:
                host = normalize.from_host(saved["normalize"], jax.tree.map(parallel.to_local, stats), path)
                stats = jax.tree.map(lambda a, like: jax.device_put(a, like.sharding), host, stats)
            if "return" in saved:
                host = checkpoint.restore_into(parallel.to_local(returns), saved["return"], "return", path)
                returns = jax.device_put(host, returns.sharding)
        rest, treedef = jax.tree.flatten(self.runner._replace(train=None, returns=None, stats=None))
        target = {str(i): parallel.to_local(v) for i, v in enumerate(rest)}
        if len(saved["runner"]) != len(target):
            raise ValueError(f"{path}: the checkpoint's run state holds {len(saved['runner'])} arrays, this "
                             f"environment's {len(target)}: it is from a different environment")
        values = checkpoint.restore_into(target, saved["runner"], "runner", path)
        placed = [jax.device_put(values[str(i)], v.sharding) for i, v in enumerate(rest)]
        self.runner = jax.tree.unflatten(treedef, placed)._replace(train=state, returns=returns, stats=stats)
