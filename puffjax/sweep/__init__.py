"""Hyperparameter sweeps on Optuna: ``puffjax sweep cartpole --trials 30``, or :func:`sweep`.

A sweep is an Optuna study in a database (SQLite in the sweep's directory by default, or any
SQLAlchemy URL, so workers on several machines can share one study). Each trial samples the
search space, fits the batch geometry, trains with :class:`puffjax.Trainer` and records the
metric every epoch. Cost-aware, like PufferLib's Protein: by default the study has two
objectives, the score (the metric's mean over the last epochs, maximized) and its cost (the
trial's training seconds or agent steps, minimized), and the result is their Pareto front;
``objective="score"`` is the scalar mode.

Trials run in worker processes (``workers`` of them, each pinned to its own share of the CPU
cores), asking the study for trials one at a time until it holds ``trials`` of them; on a JAX
environment, ``trials_per_call`` K at a time, trained together in one vmapped call. A trial
that raises, diverges (:class:`puffjax.NonFiniteError`), has an impossible batch geometry or
whose process is killed is recorded as failed with its reason (user attribute ``fail_reason``);
a trial the median rule stops is recorded as pruned. Ctrl-C stops the workers, marks their
trials failed with the reason "interrupted" (those do not count towards ``trials``) and leaves
the study consistent: run the same command again to continue it.

The modules, one job each:

- :mod:`puffjax.sweep.space`: the search space (``[sweep]`` sections, the default space, checks)
- :mod:`puffjax.sweep.study`: the Optuna study (storage, sampler, stored settings, trial states)
- :mod:`puffjax.sweep.prune`: the median rule that stops unpromising trials
- :mod:`puffjax.sweep.worker`: the worker process that trains trials
- :mod:`puffjax.sweep.batched`: several trials in one vmapped call, on a JAX environment
- :mod:`puffjax.sweep.supervisor`: starting, watching and stopping the workers
- :mod:`puffjax.sweep.report`: :class:`SweepResult`, the CSV and plot reports, config export
"""
from __future__ import annotations

import os
import time

from ..config import SWEEP_SECTION, Config, load_config, load_config_file, read_toml_file, sweep_section
from .batched import TRACEABLE, check_batchable
from .prune import PRUNE_STARTUP_TRIALS, PRUNE_WARMUP, REPORT_POINTS
from .report import SweepResult, result, study_result, write_reports
from .space import space_from_section, validate_space
from .study import (COSTS, FINAL_EPOCHS, METRIC, OBJECTIVES, STORAGE_ENV, Settings, counted, open_study, redact_url,
                    stored_settings)
from .supervisor import fail_dead_local, run_workers

__all__ = ["COSTS", "FINAL_EPOCHS", "METRIC", "OBJECTIVES", "PRUNE_STARTUP_TRIALS", "PRUNE_WARMUP", "REPORT_POINTS",
           "STORAGE_ENV", "Settings", "SweepResult", "base_config", "open_study", "redact_url", "result", "sweep",
           "write_reports"]


def base_config(env: str | None = None, config_file: str | None = None, budget: int | None = None,
                overrides: dict | None = None) -> tuple[Config, dict | None]:
    """The sweep's base config (a shipped one or a config file, ``overrides`` on top, ``budget``
    as ``train.total_timesteps``) and the file's ``[sweep]`` section (None if it has none)."""
    overrides = dict(overrides or {})
    if budget is not None:
        overrides["train.total_timesteps"] = budget
    if config_file is not None:
        cfg = load_config_file(config_file, **overrides)
        if env is not None and env != cfg.env.name:
            raise ValueError(f"{config_file} is a {cfg.env.name} config, not {env}")
        return cfg, read_toml_file(config_file).get(SWEEP_SECTION)
    if env is None:
        raise ValueError("name an environment to sweep (e.g. puffjax sweep cartpole) or a --config file")
    return load_config(env, **overrides), sweep_section(env)


def sweep(env: str | None = None, trials: int = 20, *, config_file: str | None = None,
          storage: str | None = None, study: str | None = None, directory: str | None = None,
          workers: int = 1, metric: str | None = None, cost: str | None = None, objective: str | None = None,
          budget: int | None = None, overrides: dict | None = None, space: dict | None = None,
          export: str | None = None, export_trial: int | None = None, trials_per_call: int = 1,
          progress=print) -> SweepResult:
    """Run (or continue) a sweep until its study holds ``trials`` trials; returns a :class:`SweepResult`
    and writes ``trials.csv``, ``pareto.csv`` and ``pareto.png`` to ``directory``.

    ``env``: any environment :func:`puffjax.load_config` takes (a shipped config's name,
    ``gym:ID``, ``module:factory``, a C file path...), or ``config_file``: a config file (its ``[sweep]`` section
    is the search space; the shipped configs have none, so they get
    :func:`puffjax.sweep.space.default_space`). ``space``: a ``[sweep]`` section as a dict,
    instead of the file's. ``overrides`` apply to the base config (as in :func:`puffjax.load_config`);
    ``budget``: each trial's most agent steps (default: the config's ``train.total_timesteps``).
    ``study``: its name (default: the environment's); ``directory``: where its database,
    trial runs and reports go (default ``sweeps/STUDY``); ``storage``: an SQLAlchemy URL
    (default SQLite in ``directory``). ``workers``: processes on this machine sharing the
    study, each on its own share of the cores. ``metric`` (default ``environment/perf``),
    ``cost`` ("time" or "steps") and ``objective`` ("pareto": maximize the score, minimize the
    cost; "score": the score alone) are stored with the study: a later call continues it with
    them, and a different explicit value is an error. ``export``: write the best trial's config
    (or ``export_trial``'s) there. ``trials_per_call``: trials each worker trains together in one
    vmapped call (:mod:`puffjax.sweep.batched`; more than 1 needs a JAX environment and a space of
    :data:`~puffjax.sweep.batched.TRACEABLE` parameters only, and restricts the default space to
    them). ``progress``: called with a line per finished trial (None: silent).
    """
    say = progress or (lambda *_: None)
    if not isinstance(trials, int) or trials < 0:
        raise ValueError(f"trials must be a non-negative integer, got {trials!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    for what, value, choices in (("cost", cost, COSTS), ("objective", objective, OBJECTIVES)):
        if value is not None and value not in choices:
            raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    if budget is not None and (not isinstance(budget, int) or budget <= 0):
        raise ValueError(f"budget must be a positive number of agent steps, got {budget!r}")
    if env is None and config_file is None:
        raise ValueError("name an environment to sweep (e.g. puffjax sweep cartpole) or a --config file")
    if not study:  # the config file's or the environment's name (a C file's without its folder)
        named = config_file or (env if env.endswith((".h", ".c")) else None)
        study = os.path.splitext(os.path.basename(named))[0] if named else env
    directory = os.path.abspath(directory or os.path.join("sweeps", study))
    os.makedirs(directory, exist_ok=True)
    storage = storage or f"sqlite:///{os.path.join(directory, 'study.db')}"
    stored = stored_settings(storage, study)
    if budget is None and stored is not None:
        budget = stored.budget  # continuing a study: its budget unless another is asked for
    cfg, section = base_config(env, config_file, budget, overrides)
    check_batchable((), cfg.env.name, trials_per_call)
    params = space_from_section(space if space is not None else section, cfg,
                                only=TRACEABLE if trials_per_call > 1 else None)
    if not params:
        raise ValueError("the search space is empty: give the [sweep] section at least one parameter")
    check_batchable(params, cfg.env.name, trials_per_call)
    validate_space(params, cfg)
    settings = Settings(cfg.to_dict(), [p.to_dict() for p in params.values()], metric or METRIC,
                        cost or "time", objective or "pareto")
    given = {"config", "space"} | {n for n, v in (("metric", metric), ("cost", cost), ("objective", objective))
                                   if v is not None}
    s, store, settings = open_study(storage, study, settings, given=given)
    start = time.time()
    fail_dead_local(s, store)
    todo = trials - counted(s)
    if todo > 0:
        say(f"puffjax sweep: study {study!r} ({redact_url(storage)}): {trials - todo} of {trials} trials done; running "
            f"{todo} on {workers} worker{'s' * (workers > 1)}, {len(params)} parameters, budget "
            f"{settings.budget:,} steps each")
        run_workers(s, store, storage, directory, trials, workers, say, trials_per_call)
    res = study_result(s, storage, directory, settings, time.time() - start)
    write_reports(res)
    if export:
        res.export(export, export_trial)
    return res
