"""Hyperparameter sweeps on Optuna: ``puffjax sweep cartpole --trials 30``.

A sweep is an Optuna study in a database (SQLite in the sweep's directory by default, or any
SQLAlchemy URL, so workers on several machines can share one study). Each trial samples the
search space (:mod:`puffjax.sweep_space`), fits the batch geometry, trains with
:class:`puffjax.Trainer` and reports the metric every epoch. Cost-aware, like PufferLib's
Protein: by default the study has two objectives, the score (the metric's mean over the last
epochs, maximized) and its cost (the trial's training seconds or agent steps, minimized), and the
result is their Pareto front; ``objective="score"`` is the scalar mode.

Trials run in worker processes (``workers`` of them, each pinned to its own share of the CPU
cores), asking the study for trials one at a time until it holds ``trials`` of them. A trial
that raises, diverges (:class:`puffjax.NonFiniteError`), has an impossible batch geometry or
whose process is killed is recorded as failed with its reason (user attribute ``fail_reason``);
a trial the pruner stops is recorded as pruned. Ctrl-C stops the workers, marks their trials
failed with the reason "interrupted" (those do not count towards ``trials``) and leaves the
study consistent: run the same command again to continue it.

Pruning: every epoch's metric value is reported as the trial's intermediate value at its step on
a grid of :data:`REPORT_POINTS` points over the budget, so trials of different batch sizes are
compared at the same agent-step counts. Optuna's ``MedianPruner`` judges the score alone, after
:data:`PRUNE_STARTUP_TRIALS` completed trials and a quarter of the budget. Optuna prunes only
single-objective studies (its TPE sampler fails on a multi-objective study whose pruned trials
hold intermediate values), so the values are kept in the trial's user attribute ``curve``
(``[[step, value], ...]``) and shown to the pruner through a single-objective view of the study.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field

from .config import SECTIONS, SWEEP_SECTION, Config, load_config, read_toml_file, validate
from .geometry import fit_geometry
from .sweep_space import Param, apply, space_from_section, validate_space

METRIC = "environment/perf"
COSTS = ("time", "steps")  # a trial's cost: training seconds (Trainer.uptime) or agent steps
OBJECTIVES = ("pareto", "score")  # maximize the score and minimize the cost, or the score alone
REPORT_POINTS = 20  # intermediate-value steps per budget: the pruner compares trials on this grid
PRUNE_STARTUP_TRIALS = 5  # completed trials before the pruner stops any
PRUNE_WARMUP = 0.25  # fraction of the budget every trial trains before it can be pruned
STARTUP_TRIALS = 8  # random trials before the TPE sampler models the results
FINAL_EPOCHS = 3  # the score: mean of the metric over the last epochs that logged it
ATTR = "puffjax_sweep"  # the study's user attribute holding the sweep's settings
INTERRUPTED = "interrupted"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("puffjax sweep needs Optuna: pip install 'puffjax[sweep]'") from None
    return optuna


# ---------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """What a study was created with; stored in it, so every worker and every resume uses it."""
    config: dict  # the base config (Config.to_dict()); its train.total_timesteps is the budget
    space: list  # Param.to_dict() of each swept parameter
    metric: str = METRIC
    cost: str = "time"
    objective: str = "pareto"

    @property
    def budget(self) -> int:
        return self.config["train"]["total_timesteps"]

    def params(self) -> dict[str, Param]:
        return {d["name"]: Param.from_dict(d) for d in self.space}

    def base(self) -> Config:
        return Config.from_dict(self.config)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(stored: dict, new: dict) -> list[str]:
    a, b = _flat(stored), _flat(new)
    return [f"{k}: {a.get(k)!r} in the study, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def base_config(env: str | None = None, config_file: str | None = None, budget: int | None = None,
                overrides: dict | None = None) -> tuple[Config, dict | None]:
    """The sweep's base config (a shipped one or a config file, ``overrides`` on top, ``budget``
    as ``train.total_timesteps``) and the file's ``[sweep]`` section (None if it has none)."""
    from .config import CONFIG_DIR, load_config_file
    overrides = dict(overrides or {})
    if budget is not None:
        overrides["train.total_timesteps"] = budget
    if config_file is not None:
        cfg = load_config_file(config_file, **overrides)
        if env is not None and env != cfg.env.name:
            raise ValueError(f"{config_file} is a {cfg.env.name} config, not {env}")
        path = config_file
    elif env is not None:
        cfg = load_config(env, **overrides)
        path = os.path.join(CONFIG_DIR, f"{env}.toml")
    else:
        raise ValueError("name an environment to sweep (e.g. puffjax sweep cartpole) or a --config file")
    return cfg, read_toml_file(path).get(SWEEP_SECTION)


# ---------------------------------------------------------------------------- storage and study
def _storage(url: str):
    """The RDB storage at ``url``; SQLite waits for its lock instead of failing at once. Processes
    creating the same new database at once collide on its tables ("already exists", a unique
    constraint): the losers try again and find the schema there."""
    optuna = _optuna()
    import sqlalchemy.exc
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == 2:
                raise
            time.sleep(0.5)


def _sampler(seed: int | None = None):
    optuna = _optuna()
    with warnings.catch_warnings():  # multivariate and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True,
                                          n_startup_trials=STARTUP_TRIALS, seed=seed)


def _directions(objective: str) -> list[str]:
    return ["maximize", "minimize"] if objective == "pareto" else ["maximize"]


def open_study(storage: str, study: str, settings: Settings | None = None, *, given: set = frozenset()):
    """Load study ``study`` from ``storage`` or, when it does not exist and ``settings`` are given,
    create it (and queue the base config as its first trial). An existing study keeps its stored
    settings; those of ``given`` (names of Settings fields the caller chose explicitly) must match
    them. Returns (optuna study, the storage, Settings)."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = _storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    if study in names:
        s = optuna.load_study(study_name=study, storage=store, sampler=_sampler())
        if ATTR not in s.user_attrs:
            raise ValueError(f"study {study!r} in {storage} was not made by puffjax sweep")
        stored = Settings(**s.user_attrs[ATTR])
        if settings is not None:
            diffs = []
            for name in sorted(given):
                a, b = getattr(stored, name), getattr(settings, name)
                if name == "space":
                    a, b = ({d["name"]: Param.from_dict(d).describe() for d in x} for x in (a, b))
                if a != b:
                    diffs += (_differences({name: a}, {name: b}) if isinstance(a, dict)
                              else [f"{name}: {a!r} in the study, {b!r} here"])
            if diffs:
                raise ValueError(f"study {study!r} in {storage} was made with other settings, so it cannot be "
                                 f"continued with these: {'; '.join(diffs)}. Use the study's settings, or "
                                 f"another --study name.")
        return s, store, stored
    if settings is None:
        raise ValueError(f"no study {study!r} in {storage}" + (f"; it holds {', '.join(names)}" if names else ""))
    s = optuna.create_study(storage=store, study_name=study, directions=_directions(settings.objective),
                            sampler=_sampler())
    s.set_user_attr(ATTR, dataclasses.asdict(settings))
    base = settings.base()
    start = {}
    for p in settings.params().values():  # the config's own values, where the space holds them
        value = _get(base, p.name)
        if p.contains(value):
            start[p.name] = value
    s.enqueue_trial(start, user_attrs={"baseline": True})
    return s, store, settings


def _stored_settings(storage: str, study: str) -> Settings | None:
    try:
        return open_study(storage, study)[2]
    except ValueError:
        return None


def _get(cfg: Config, name: str):
    section, _, fld = name.partition(".")
    obj = getattr(cfg, section)
    return getattr(obj, fld) if hasattr(obj, fld) and fld != "options" else obj.options.get(fld)


def _counted(study) -> int:
    """Trials that count towards the sweep's total: running or finished, except interrupted ones."""
    from optuna.trial import TrialState
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == INTERRUPTED:
            continue
        n += 1
    return n


def _fail(study, store, frozen, reason: str) -> None:
    """Mark a running trial (of any process) failed with ``reason``; a no-op if it has finished."""
    optuna = _optuna()
    try:
        store.set_trial_user_attr(frozen._trial_id, "fail_reason", reason)
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
        pass  # finished meanwhile


# ---------------------------------------------------------------------------- trials (in a worker)
class _ScoreView:
    """The study as the pruner sees it: one objective, the score, maximized, and each trial's
    ``curve`` attribute as its intermediate values."""

    def __init__(self, study):
        from optuna.study import StudyDirection
        self._study, self.direction = study, StudyDirection.MAXIMIZE

    def get_trials(self, deepcopy: bool = True, states=None):
        return [with_curve(t) for t in self._study.get_trials(deepcopy=False, states=states)]


def with_curve(frozen):
    """A copy of ``frozen`` whose intermediate values are its ``curve`` user attribute."""
    t = copy.copy(frozen)
    t.intermediate_values = {int(step): float(v) for step, v in frozen.user_attrs.get("curve", [])}
    return t


def _run_trial(study, store, trial, settings: Settings, directory: str, threads: int) -> None:
    """Train one trial and tell the study how it ended (complete, pruned or failed)."""
    optuna = _optuna()
    from .finite import NonFiniteError
    from .trainer import Trainer
    state, values = optuna.trial.TrialState.FAIL, None
    try:
        params = {name: p.suggest(trial) for name, p in settings.params().items()}
        cfg = apply(settings.base(), params)
        validate(cfg)
        try:
            repaired = fit_geometry(cfg.train, cfg.env.num_envs, settings.budget)
        except ValueError as e:
            raise ValueError(f"impossible batch geometry: {e}") from None
        if repaired:
            trial.set_user_attr("repaired", repaired)
        trial.set_user_attr("config", cfg.to_dict())
        run = apply(cfg, {"env.threads": threads, "train.video_frames": 0, "train.keep_checkpoints": 1,
                          "train.checkpoint_interval": 1 << 30, "train.logger": "none"})
        grid = max(1, settings.budget // REPORT_POINTS)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS,
                                             n_warmup_steps=int(settings.budget * PRUNE_WARMUP))
        view, scores, curve, last_step = _ScoreView(study), [], [], 0
        trainer = Trainer(run, run_dir=os.path.join(directory, "trials", f"trial_{trial.number:04d}"),
                          dashboard="none")
        try:
            trial.set_user_attr("run_dir", trainer.run_dir)
            for log in trainer.train_iter():
                if settings.metric not in log or not math.isfinite(log[settings.metric]):
                    continue
                scores.append(float(log[settings.metric]))
                step = log["agent_steps"] // grid * grid
                if step < grid:
                    continue
                if curve and curve[-1][0] == step:
                    curve[-1][1] = scores[-1]
                else:
                    curve.append([step, scores[-1]])
                trial.set_user_attr("curve", curve)
                if step != last_step:
                    last_step = step
                    if pruner.prune(view, with_curve(store.get_trial(trial._trial_id))):
                        trial.set_user_attr("score", scores[-1])
                        trial.set_user_attr("steps", log["agent_steps"])
                        trial.set_user_attr("seconds", trainer.uptime)
                        state = optuna.trial.TrialState.PRUNED
                        return
            if not scores:
                raise ValueError(f"metric {settings.metric!r} was never logged; this run logs "
                                 f"{', '.join(sorted(k for k in log if not k.startswith('performance/')))}")
            score = sum(scores[-FINAL_EPOCHS:]) / len(scores[-FINAL_EPOCHS:])
            cost = trainer.uptime if settings.cost == "time" else float(trainer.global_step)
            for k, v in (("score", score), ("steps", trainer.global_step), ("seconds", trainer.uptime)):
                trial.set_user_attr(k, v)
            values = [score, cost] if settings.objective == "pareto" else [score]
            state = optuna.trial.TrialState.COMPLETE
        finally:
            trainer.close()
    except NonFiniteError as e:
        trial.set_user_attr("fail_reason", f"diverged: {e}")
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", INTERRUPTED)
        raise
    except Exception as e:  # any error of the trial's own: recorded, and the sweep goes on
        trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
    finally:
        study.tell(trial, values, state=state if values is None else None)


@contextlib.contextmanager
def _ask_lock(directory: str):
    """Held while a worker counts the study's trials and asks for one, so the workers of this
    machine never start more than ``trials`` between them (a file lock: any process can take it)."""
    import fcntl
    with open(os.path.join(directory, ".ask.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_WORKER_MAIN = "import json, sys; from puffjax.sweep import _worker; _worker(*json.loads(sys.argv[1]))"


def _interrupt_once(signum, frame):
    """SIGINT in a worker: one KeyboardInterrupt (the trial is recorded as interrupted), then
    further ones are ignored so that recording it is not cut short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker(storage: str, study_name: str, directory: str, target: int, cpus: list | None) -> None:
    """A worker process: ask the study for trials and run them until it holds ``target``."""
    signal.signal(signal.SIGINT, _interrupt_once)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)  # before JAX starts: XLA sizes its thread pool to these cores
    from .heap import keep_freed_memory
    keep_freed_memory()
    threads = len(cpus) if cpus else 1
    study, store, settings = open_study(storage, study_name)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        while True:
            with _ask_lock(directory):
                if _counted(study) >= target:
                    return
                trial = study.ask()
                trial.set_user_attr("worker", worker)
            _run_trial(study, store, trial, settings, directory, threads)
    except KeyboardInterrupt:  # the trial is recorded as interrupted; leave quietly
        sys.exit(130)


def _cpu_shares(workers: int) -> list:
    """Disjoint CPU sets for ``workers`` processes (shared round-robin when there are more
    workers than cores); None where the platform cannot pin processes."""
    if not hasattr(os, "sched_getaffinity"):
        return [None] * workers
    cpus = sorted(os.sched_getaffinity(0))
    if workers >= len(cpus):
        return [{cpus[i % len(cpus)]} for i in range(workers)]
    return [set(cpus[i * len(cpus) // workers:(i + 1) * len(cpus) // workers]) for i in range(workers)]


# ---------------------------------------------------------------------------- results
@dataclass
class SweepResult:
    """A study's trials (``rows``: one dict per trial), its ``pareto`` front (completed trials
    no other beats on both score and cost, by cost) and ``best`` (highest score; the cheaper
    on a tie). ``seconds``: wall time of the call that returned it."""
    study: str
    storage: str
    directory: str
    settings: Settings
    rows: list = field(default_factory=list)
    pareto: list = field(default_factory=list)
    best: dict | None = None
    seconds: float = 0.0

    def export(self, path: str, trial: int | None = None) -> str:
        """Write the config of trial ``trial`` (default: :attr:`best`) as a config file that
        ``puffjax train --config PATH`` runs as is; returns ``path``."""
        if trial is None:
            if self.best is None:
                raise ValueError(f"study {self.study!r} has no completed trial to export")
            row = self.best
        else:
            matches = [r for r in self.rows if r["trial"] == trial]
            if not matches or "config" not in matches[0]:
                raise ValueError(f"study {self.study!r} has no trial {trial} with a config to export")
            row = matches[0]
        header = [f"puffjax sweep: study {self.study!r}, trial {row['trial']} ({row['state'].lower()})",
                  f"{self.settings.metric} {_fmt(row.get('score'))} (mean of the last {FINAL_EPOCHS} epochs), "
                  f"{_fmt(row.get('seconds'))} s of training, {row.get('steps')} agent steps",
                  "fields not listed keep the defaults of puffjax/config.py (not a shipped config's values)"]
        write_config(Config.from_dict(row["config"]), path, header)
        return path

    def __str__(self) -> str:
        return self.table()

    def table(self, top: int = 10) -> str:
        """The best trials and the Pareto front as text."""
        cost = "seconds" if self.settings.cost == "time" else "steps"
        done = [r for r in self.rows if r.get("score") is not None and r["state"] == "COMPLETE"]
        best = sorted(done, key=lambda r: (-r["score"], r["cost"]))[:top]
        states = {}
        for r in self.rows:
            states[r["state"]] = states.get(r["state"], 0) + 1
        lines = [f"study {self.study!r} ({self.storage}): {len(self.rows)} trials, "
                 + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())),
                 f"score = {self.settings.metric} (mean of the last {FINAL_EPOCHS} epochs), cost = {cost}"]
        for title, rows in (("best trials", best), ("Pareto front (score against cost)", self.pareto)):
            lines += ["", title, f"{'trial':>6} {'score':>9} {cost:>10}  parameters"]
            for r in rows:
                params = " ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in r["params"].items())
                lines.append(f"{r['trial']:>6} {_fmt(r['score']):>9} {_fmt(r['cost']):>10}  {params}")
        failed = [r for r in self.rows if r["state"] == "FAIL"]
        if failed:
            lines += ["", "failed trials"] + [f"{r['trial']:>6} {r.get('reason')}" for r in failed]
        return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _rows(study, settings: Settings) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state.name == "WAITING":
            continue
        seconds, steps = a.get("seconds"), a.get("steps")
        params = dict(t.params)
        if "config" in a:  # the values trained with (the batch geometry may have been repaired)
            cfg = Config.from_dict(a["config"])
            params = {name: _get(cfg, name) for name in params}
        row = {"trial": t.number, "state": t.state.name, "score": a.get("score"),
               "cost": seconds if settings.cost == "time" else steps, "seconds": seconds, "steps": steps,
               "reason": a.get("fail_reason"), "repaired": a.get("repaired"), "run_dir": a.get("run_dir"),
               "params": params}
        if "config" in a:
            row["config"] = a["config"]
        rows.append(row)
    return rows


def _pareto(rows: list[dict]) -> list[dict]:
    """Completed trials that no other completed trial beats on both objectives, cheapest first."""
    done = sorted((r for r in rows if r["state"] == "COMPLETE" and r["score"] is not None),
                  key=lambda r: (r["cost"], -r["score"]))
    front, best = [], -math.inf
    for r in done:
        if r["score"] > best:
            front.append(r)
            best = r["score"]
    return front


def result(storage: str, study: str, directory: str = ".", seconds: float = 0.0) -> SweepResult:
    """The :class:`SweepResult` of an existing study (nothing is run)."""
    s, _, settings = open_study(storage, study)
    return _result(s, storage, study, directory, settings, seconds)


def _result(s, storage, study, directory, settings, seconds) -> SweepResult:
    rows = _rows(s, settings)
    front = _pareto(rows)
    best = max(front, key=lambda r: r["score"]) if front else None
    return SweepResult(study, storage, directory, settings, rows, front, best, seconds)


def write_reports(res: SweepResult) -> list[str]:
    """``trials.csv`` (every trial), ``pareto.csv`` and ``pareto.png`` (score against cost, the
    front highlighted) in the sweep's directory; returns the paths written."""
    os.makedirs(res.directory, exist_ok=True)
    names = sorted({k for r in res.rows for k in r["params"]})
    paths = []
    for fname, rows in (("trials.csv", res.rows), ("pareto.csv", res.pareto)):
        path = os.path.join(res.directory, fname)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["trial", "state", "score", "cost", "seconds", "steps", "pareto", "reason", "repaired",
                        "run_dir", *names])
            front = {r["trial"] for r in res.pareto}
            for r in rows:
                w.writerow([r["trial"], r["state"], r["score"], r["cost"], r["seconds"], r["steps"],
                            r["trial"] in front, r["reason"] or "", "; ".join(r["repaired"] or []),
                            os.path.relpath(r["run_dir"], res.directory) if r["run_dir"] else "",
                            *[r["params"].get(n, "") for n in names]])
        paths.append(path)
    try:
        paths.append(_plot(res, os.path.join(res.directory, "pareto.png")))
    except ImportError as e:
        warnings.warn(f"puffjax sweep: no pareto.png ({e})", stacklevel=2)
    return paths


def _plot(res: SweepResult, path: str) -> str:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install 'puffjax[sweep]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for state, style in (("COMPLETE", dict(c="tab:blue", marker="o", label="complete")),
                         ("PRUNED", dict(c="tab:gray", marker="x", label="pruned (score when stopped)"))):
        pts = [(r["cost"], r["score"]) for r in res.rows if r["state"] == state and r["score"] is not None]
        if pts:
            ax.scatter(*zip(*pts), alpha=0.7, **style)
    if res.pareto:
        ax.plot([r["cost"] for r in res.pareto], [r["score"] for r in res.pareto], "-o", c="tab:red",
                label="Pareto front", drawstyle="steps-post")
        for r in res.pareto:
            ax.annotate(str(r["trial"]), (r["cost"], r["score"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=8)
    ax.set_xlabel("training seconds" if res.settings.cost == "time" else "agent steps")
    ax.set_ylabel(f"score ({res.settings.metric})")
    ax.set_title(f"sweep {res.study}: {len(res.rows)} trials")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- config files
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or math.isfinite(v) else ("nan" if math.isnan(v) else
                                                                            ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    raise TypeError(f"cannot write {v!r} to a config file")


def write_config(cfg: Config, path: str, header: list[str] = ()) -> None:
    """Write ``cfg`` as a config file (the format of ``puffjax/configs/*.toml``): every field
    that differs from the dataclass defaults, the environment's name and options in ``[env]``.
    :func:`puffjax.config.load_config_file` reads it back to an equal config."""
    default = Config()
    lines = [f"# {h}" for h in header]
    for section in SECTIONS:
        obj, ref = getattr(cfg, section), getattr(default, section)
        entries = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "options":
                entries += [f"{k} = {_toml_value(v)}" for k, v in sorted(value.items())]
            elif f.name == "name" or value != getattr(ref, f.name):
                entries.append(f"{f.name} = {_toml_value(value)}")
        if entries:
            lines += ["", f"[{section}]", *entries]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines).lstrip("\n") + "\n")


# ---------------------------------------------------------------------------- the sweep
def sweep(env: str | None = None, trials: int = 20, *, config_file: str | None = None,
          storage: str | None = None, study: str | None = None, directory: str | None = None,
          workers: int = 1, metric: str | None = None, cost: str | None = None, objective: str | None = None,
          budget: int | None = None, overrides: dict | None = None, space: dict | None = None,
          export: str | None = None, export_trial: int | None = None, progress=print) -> SweepResult:
    """Run (or continue) a sweep until its study holds ``trials`` trials; returns a :class:`SweepResult`
    and writes ``trials.csv``, ``pareto.csv`` and ``pareto.png`` to ``directory``.

    ``env``: a shipped config's name, or ``config_file``: a config file (its ``[sweep]`` section
    is the search space; the shipped configs have none, so they get
    :func:`puffjax.sweep_space.default_space`). ``space``: a ``[sweep]`` section as a dict,
    instead of the file's. ``overrides`` apply to the base config (as in :func:`puffjax.load_config`);
    ``budget``: each trial's most agent steps (default: the config's ``train.total_timesteps``).
    ``study``: its name (default: the environment's); ``directory``: where its database,
    trial runs and reports go (default ``sweeps/STUDY``); ``storage``: an SQLAlchemy URL
    (default SQLite in ``directory``). ``workers``: processes on this machine sharing the
    study, each on its own share of the cores. ``metric`` (default ``environment/perf``),
    ``cost`` ("time" or "steps") and ``objective`` ("pareto": maximize the score, minimize the
    cost; "score": the score alone) are stored with the study: a later call continues it with
    them, and a different explicit value is an error. ``export``: write the best trial's config
    (or ``export_trial``'s) there. ``progress``: called with a line per finished trial (None: silent).
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
    study = study or (os.path.splitext(os.path.basename(config_file))[0] if config_file else env)
    directory = os.path.abspath(directory or os.path.join("sweeps", study))
    os.makedirs(directory, exist_ok=True)
    storage = storage or f"sqlite:///{os.path.join(directory, 'study.db')}"
    stored = _stored_settings(storage, study)
    if budget is None and stored is not None:
        budget = stored.budget  # continuing a study: its budget unless another is asked for
    cfg, section = base_config(env, config_file, budget, overrides)
    params = space_from_section(space if space is not None else section, cfg)
    if not params:
        raise ValueError("the search space is empty: give the [sweep] section at least one parameter")
    validate_space(params, cfg)
    settings = Settings(cfg.to_dict(), [p.to_dict() for p in params.values()], metric or METRIC,
                        cost or "time", objective or "pareto")
    given = {"config", "space"} | {n for n, v in (("metric", metric), ("cost", cost), ("objective", objective))
                                   if v is not None}
    s, store, settings = open_study(storage, study, settings, given=given)
    start = time.time()
    _fail_dead_local(s, store)
    todo = trials - _counted(s)
    if todo > 0:
        say(f"puffjax sweep: study {study!r} ({storage}): {trials - todo} of {trials} trials done; running "
            f"{todo} on {workers} worker{'s' * (workers > 1)}, {len(params)} parameters, budget "
            f"{settings.budget:,} steps each")
        _run_workers(s, store, storage, study, directory, trials, workers, say)
    res = _result(s, storage, study, directory, settings, time.time() - start)
    write_reports(res)
    if export:
        res.export(export, export_trial)
    return res


def _fail_dead_local(study, store) -> None:
    """Fail the running trials whose worker process on this machine no longer runs (left by a
    sweep killed before it could record them)."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False):
        w = t.user_attrs.get("worker", "")
        if t.state.name == "RUNNING" and w.rpartition(":")[0] == host:
            pid = int(w.rpartition(":")[2])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                _fail(study, store, t, f"its worker process ({w}) died before recording how the trial ended")
            except PermissionError:
                pass


def _run_workers(s, store, storage, study, directory, target, workers, say) -> None:
    shares = _cpu_shares(workers)
    host = socket.gethostname()

    def start(i):  # a fresh interpreter, whatever the caller's main module is (a script, Jupyter)
        args = json.dumps([storage, study, directory, target, sorted(shares[i]) if shares[i] else None])
        return subprocess.Popen([sys.executable, "-c", _WORKER_MAIN, args])

    procs = {i: start(i) for i in range(workers)}
    seen = {t.number for t in s.get_trials(deepcopy=False) if t.state.is_finished()}
    restarts, errors = 0, []
    try:
        while procs:
            time.sleep(0.5)
            for i, p in list(procs.items()):
                if p.poll() is None:
                    continue
                del procs[i]
                if p.returncode == 0:
                    continue
                if p.returncode == 130:  # SIGINT reached the worker alone (`kill -INT`, or a parent that
                    raise KeyboardInterrupt  # ignores it, as under `nohup ... &`): stop as on Ctrl-C
                mine = [t for t in s.get_trials(deepcopy=False, states=(_optuna().trial.TrialState.RUNNING,))
                        if t.user_attrs.get("worker") == f"{host}:{p.pid}"]
                why = (f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}")
                for t in mine:
                    _fail(s, store, t, f"its worker process was {why}" if p.returncode < 0 else
                          f"its worker process stopped ({why})")
                if p.returncode > 0 and not mine:
                    errors.append(f"worker {i} stopped with {why} (its error is printed above)")
                elif _counted(s) < target and restarts < target:
                    restarts += 1
                    procs[i] = start(i)
            for t in s.get_trials(deepcopy=False):
                if t.state.is_finished() and t.number not in seen:
                    seen.add(t.number)
                    say(_trial_line(t, len(seen), target))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say("puffjax sweep: interrupted; stopping the workers and recording their trials as interrupted")
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.time() + 60
        for p in procs.values():
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        pids = {f"{host}:{p.pid}" for p in procs.values()}
        for t in s.get_trials(deepcopy=False):
            if t.state.name == "RUNNING" and t.user_attrs.get("worker") in pids:
                _fail(s, store, t, INTERRUPTED)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise
    if errors:
        raise RuntimeError("; ".join(errors))


def _trial_line(t, finished: int, target: int) -> str:
    a = t.user_attrs
    head = f"puffjax sweep: trial {t.number} {t.state.name.lower()}"
    if t.state.name in ("COMPLETE", "PRUNED"):
        body = f"score {_fmt(a.get('score'))} after {a.get('steps'):,} steps, {_fmt(a.get('seconds'))} s"
    else:
        body = str(a.get("fail_reason"))
    return f"{head}: {body} ({finished} of {target} finished)"
