"""Several trials of a sweep in one jitted call, on a JAX environment (``trials_per_call`` K > 1).

On a JAX environment (``gymnax:``, ``brax:``, ``jumanji:``, ``craftax:``) a whole training run
is one pure function of a key and a :class:`puffjax.update.Hyper` (:func:`puffjax.make_train`),
so ``jax.jit(jax.vmap(train))`` trains K trials at once. A worker with ``trials_per_call`` K
asks the study for K trials, samples each, and trains them as one call of its
:class:`BatchedTrials`, which compiles once (for K rows) and reuses the compiled call for every
batch. A batch with fewer than K trials (the sweep's last, or one with trials whose sampled
values are illegal) fills its remaining rows with copies of its first trial; those rows are
computed and never told.

Only the hyperparameters of :class:`~puffjax.update.Hyper` may differ between the rows of a call
(:data:`TRACEABLE`); everything that sets a shape or the program (sizes, ``update_epochs``,
``total_timesteps``, the policy, environment options) is the base config's, for every trial.
Each trial is keyed as the one-trial path keys it (``PRNGKey(train.seed)``), and its scores
match that path's up to floating-point rounding (traced hyperparameters run the advantage's
scan reference instead of its custom call).

Per trial: its curve (user attribute ``curve``) and score (the metric's mean over the last
:data:`~puffjax.sweep.study.FINAL_EPOCHS` epochs that logged it) come from its own row of the
per-epoch metrics; a row that went non-finite (the non-finite guard's first bad epoch,
:mod:`puffjax.finite`) is failed with the reason, the others complete. Cost "time" is the call's
wall time (its compilation included, for the first batch) divided by K; "steps" the agent steps
trained. The median rule cannot stop one row of a running call, so no trial of a batch is
pruned. No trial writes a run directory: its config is in the study (user attribute ``config``).
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

from ..update import LOSS_KEYS, Hyper
from .interrupt import check
from .prune import add_point, grid_step
from .space import trial_config
from .study import INTERRUPTED, Settings, final_score, optuna

TRACEABLE = tuple(f"train.{name}" for name in Hyper._fields)  # the parameters a call's rows may differ in


def check_batchable(params, env: str, trials_per_call: int) -> None:
    """A ValueError (one line) unless trials of the swept ``params`` (names) on environment
    ``env`` can run ``trials_per_call`` to a jitted call: always for 1; for more, a JAX
    environment and only :data:`TRACEABLE` parameters."""
    from ..envs.jaxenv import FAMILIES, is_jax_name
    if not isinstance(trials_per_call, int) or isinstance(trials_per_call, bool) or trials_per_call < 1:
        raise ValueError(f"trials_per_call must be a positive integer, got {trials_per_call!r}")
    if trials_per_call == 1:
        return
    if not is_jax_name(env):
        raise ValueError(f"trials_per_call {trials_per_call}: vmapped trials need a JAX environment "
                         f"({', '.join(f + ':ID' for f in FAMILIES)}); {env!r} is not one")
    fixed = [name for name in params if name not in TRACEABLE]
    if fixed:
        raise ValueError(f"trials_per_call {trials_per_call}: {', '.join(fixed)} cannot differ between the trials "
                         f"of one vmapped call (they set shapes or the program); vmapped trials sweep only "
                         f"{', '.join(TRACEABLE)}")


class Outcome(NamedTuple):
    """How one row of a call ended: its ``score`` and ``curve`` (``[[step, value], ...]``), or
    ``reason`` (not None) why it failed."""
    score: float | None
    curve: list
    reason: str | None


def _series(metrics: dict, metric: str, log_names: tuple):
    """The per-epoch values of ``metric`` in a call's ``metrics`` (numpy, ``[rows, epochs]``)
    and where they were logged (the trainer logs ``environment/*`` only in epochs that finished
    an episode)."""
    import numpy as np
    section, _, name = metric.partition("/")
    episodes = np.asarray(metrics["episodes"])
    if section == "environment" and name in log_names:
        return np.asarray(metrics["env"])[..., log_names.index(name)], episodes > 0
    if section == "environment" and name == "n":
        return episodes.astype(np.float64), episodes > 0
    if section == "losses" and name in LOSS_KEYS:
        values = np.asarray(metrics[name])
        return values, np.ones(values.shape, bool)
    logged = [f"environment/{n}" for n in (*log_names, "n")] + [f"losses/{k}" for k in LOSS_KEYS]
    raise ValueError(f"metric {metric!r} is not logged by vmapped trials; they log {', '.join(logged)}")


def outcomes(metrics: dict, metric: str, log_names: tuple, batch_size: int, budget: int, rows: int) -> list:
    """The :class:`Outcome` of each of the first ``rows`` rows of a vmapped call's ``metrics``
    (on the host), as the one-trial path would record that run: ``batch_size`` agent steps per
    epoch, curve points on the grid of ``budget``, non-finite values skipped, the first epoch the
    non-finite guard flags (its ``health``) failing the row."""
    import jax
    from ..finite import NonFiniteError, check_record, check_update
    values, logged = _series(metrics, metric, log_names)
    health, grid = metrics["health"], grid_step(budget)
    out = []
    for k in range(rows):
        try:
            for e in range(values.shape[1]):
                if health:
                    row = jax.tree.map(lambda x: x[k, e], health)
                    check_record(row["inputs"], e + 1)
                    check_update(row, e + 1)
        except NonFiniteError as err:
            out.append(Outcome(None, [], f"diverged: {err}"))
            continue
        scores, curve = [], []
        for e in range(values.shape[1]):
            v = float(values[k, e])
            if logged[k, e] and math.isfinite(v):
                scores.append(v)
                add_point(curve, (e + 1) * batch_size, v, grid)
        if not scores:
            out.append(Outcome(None, curve, f"metric {metric!r} was never logged"))
            continue
        out.append(Outcome(final_score(scores), curve, None))
    return out


class BatchedTrials:
    """Trains up to ``size`` trials of a sweep with ``settings`` in one ``jax.jit(jax.vmap(train))``
    call (see the module docstring), compiled at the first call and reused for the next."""

    def __init__(self, settings: Settings, size: int):
        self.settings, self.size = settings, size
        self._ondevice = self._call = None

    def config(self, params: dict):
        """A trial's config and its geometry repairs (:func:`puffjax.sweep.space.trial_config`)."""
        return trial_config(self.settings.base(), params, self.settings.budget)

    def _compile(self, cfg) -> None:
        import jax
        from .. import envs
        from ..ondevice import OnDevice
        env = envs.make(cfg.env.name, num_envs=cfg.env.num_envs, seed=cfg.train.seed, **cfg.env.options)
        self._ondevice = OnDevice(cfg, env)
        self._call = jax.jit(jax.vmap(self._ondevice.train))

    def run(self, cfgs: list) -> tuple[list, float]:
        """Train the trials of configs ``cfgs`` (at most :attr:`size`, differing in
        :data:`TRACEABLE` fields only) in one call; returns their :class:`Outcome` and the call's
        wall seconds. The wait for the call is polled, so SIGINT raises there at once (the
        process still ends only when the call does)."""
        import jax
        import jax.numpy as jnp
        if not 0 < len(cfgs) <= self.size:
            raise ValueError(f"a call trains 1 to {self.size} trials, got {len(cfgs)}")
        if self._call is None:
            self._compile(cfgs[0])
        rows = cfgs + [cfgs[0]] * (self.size - len(cfgs))
        keys = jnp.stack([jax.random.PRNGKey(c.train.seed) for c in rows])
        hyper = Hyper(*(jnp.asarray([getattr(c.train, f) for c in rows], jnp.float32) for f in Hyper._fields))
        start = time.perf_counter()
        _, metrics = self._call(keys, hyper)
        for leaf in jax.tree.leaves(metrics):  # polled, so a Ctrl-C need not wait for the call to end
            while not leaf.is_ready():
                time.sleep(0.05)
        seconds = time.perf_counter() - start
        g = self._ondevice.geom
        return outcomes(jax.device_get(metrics), self.settings.metric, tuple(self._ondevice.log_names),
                        g.batch_size, self.settings.budget, len(cfgs)), seconds

    @property
    def steps(self) -> int:
        """Agent steps each trial trains (after the first call)."""
        g = self._ondevice.geom
        return g.total_epochs * g.batch_size


def run_batch(study, trials: list, batched: BatchedTrials) -> None:
    """Sample ``trials`` (asked from ``study``), train them in one call of ``batched`` and tell
    the study how each ended: complete with its score and cost, or failed with user attribute
    ``fail_reason`` (an illegal sampled value, divergence, an error of the call; "interrupted"
    for all of them on Ctrl-C, which is raised again)."""
    opt, settings = optuna(), batched.settings
    told = set()

    def tell(trial, values=None, reason=None):
        if reason is not None:
            trial.set_user_attr("fail_reason", reason)
        study.tell(trial, values, state=opt.trial.TrialState.FAIL if values is None else None)
        told.add(trial.number)

    try:
        check()  # a Ctrl-C that came while the trials were asked for
        ready = []
        for trial in trials:
            params = {name: p.suggest(trial) for name, p in settings.params().items()}
            try:
                cfg, repaired = batched.config(params)
            except ValueError as e:
                tell(trial, reason=f"ValueError: {e}")
                continue
            if repaired:
                trial.set_user_attr("repaired", repaired)
            trial.set_user_attr("config", cfg.to_dict())
            ready.append((trial, cfg))
        check()
        if not ready:
            return
        results, seconds = batched.run([cfg for _, cfg in ready])
        seconds /= batched.size
        for (trial, _), res in zip(ready, results):
            if res.reason is not None:
                tell(trial, reason=res.reason)
                continue
            trial.set_user_attr("curve", res.curve)
            for name, value in (("score", res.score), ("steps", batched.steps), ("seconds", seconds)):
                trial.set_user_attr(name, value)
            cost = seconds if settings.cost == "time" else float(batched.steps)
            tell(trial, [res.score, cost] if settings.objective == "pareto" else [res.score])
        check()
    except KeyboardInterrupt:
        for trial in trials:
            if trial.number not in told:
                tell(trial, reason=INTERRUPTED)
        raise
    except Exception as e:  # an error of the call itself (compiling, the environment): each trial fails with it
        for trial in trials:
            if trial.number not in told:
                tell(trial, reason=f"{type(e).__name__}: {e}")
