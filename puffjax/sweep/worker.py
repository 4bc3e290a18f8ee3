"""A sweep's worker process: ``python -m puffjax.sweep.worker --study NAME --dir DIR --trials N``.

A worker asks the study for trials one at a time and trains each with :class:`puffjax.Trainer`
until the study holds ``N`` of them, then exits with status 0 (``--trials-per-call K``: K at a
time, trained together in one vmapped call, :mod:`puffjax.sweep.batched`). Each trial samples
the search space, fits the batch geometry to the budget, trains, records its metric curve every epoch
(user attribute ``curve``; the median rule of :mod:`puffjax.sweep.prune` may stop it) and tells
the study how it ended: complete (with its score and cost), pruned, or failed with the reason
in user attribute ``fail_reason``. SIGINT fails the running trial with the reason
"interrupted" and ends the worker with status 130. ``--cpus 0,1``: pin the process to these
cores (before JAX starts, so XLA sizes its thread pool to them). ``--parent PID``: the worker is
killed as soon as that process (the sweep that started it) is gone
(:func:`puffjax.lifeline.die_with_parent`). The study's storage URL comes in
the environment variable ``PUFFJAX_SWEEP_STORAGE`` (:data:`puffjax.sweep.study.STORAGE_ENV`), not
on the command line, where any user could read its password in ``ps``; the worker takes it out
of its environment at once, so the processes it starts (env workers, the C compiler) do not
inherit it.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
import sys

from ..lifeline import die_with_parent
from .batched import BatchedTrials, run_batch
from .interrupt import check, interrupt_once
from .prune import add_point, grid_step, median_stops, warmup_steps
from .space import apply, trial_config
from .study import INTERRUPTED, STORAGE_ENV, Settings, completed_curves, counted, final_score, open_study, optuna


def run_trial(study, trial, settings: Settings, directory: str, threads: int) -> None:
    """Train one trial and tell the study how it ended (complete, pruned or failed)."""
    opt = optuna()
    from ..finite import NonFiniteError
    from ..trainer import Trainer
    state, values = opt.trial.TrialState.FAIL, None
    try:
        check()  # a Ctrl-C that came while the trial was asked for
        params = {name: p.suggest(trial) for name, p in settings.params().items()}
        cfg, repaired = trial_config(settings.base(), params, settings.budget)
        if repaired:
            trial.set_user_attr("repaired", repaired)
        trial.set_user_attr("config", cfg.to_dict())
        check()  # a Ctrl-C that came during a storage call
        run = apply(cfg, {"env.threads": threads, "train.video_frames": 0, "train.keep_checkpoints": 1,
                          "train.checkpoint_interval": 1 << 30, "train.logger": "none"})
        grid, warmup = grid_step(settings.budget), warmup_steps(settings.budget)
        scores, curve = [], []
        trainer = Trainer(run, run_dir=os.path.join(directory, "trials", f"trial_{trial.number:04d}"),
                          dashboard="none")
        try:
            trial.set_user_attr("run_dir", trainer.run_dir)
            for log in trainer.train_iter():
                if settings.metric not in log or not math.isfinite(log[settings.metric]):
                    continue
                scores.append(float(log[settings.metric]))
                points = len(curve)
                if not add_point(curve, log["agent_steps"], scores[-1], grid):
                    continue
                new_step = len(curve) > points
                trial.set_user_attr("curve", curve)
                check()
                if new_step and median_stops(curve, completed_curves(study), warmup):
                    trial.set_user_attr("score", scores[-1])
                    trial.set_user_attr("steps", log["agent_steps"])
                    trial.set_user_attr("seconds", trainer.uptime)
                    state = opt.trial.TrialState.PRUNED
                    return
            if not scores:
                raise ValueError(f"metric {settings.metric!r} was never logged; this run logs "
                                 f"{', '.join(sorted(k for k in log if not k.startswith('performance/')))}")
            score = final_score(scores)
            cost = trainer.uptime if settings.cost == "time" else float(trainer.global_step)
            for k, v in (("score", score), ("steps", trainer.global_step), ("seconds", trainer.uptime)):
                trial.set_user_attr(k, v)
            values = [score, cost] if settings.objective == "pareto" else [score]
            state = opt.trial.TrialState.COMPLETE
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


def work(url: str, study_name: str, directory: str, target: int, cpus: list[int] | None = None,
         trials_per_call: int = 1) -> int:
    """Ask study ``study_name`` at ``url`` for trials and run them until it holds ``target``;
    returns the exit status: 0, or 130 after SIGINT (its trials recorded as interrupted).
    ``trials_per_call`` > 1: ask for that many at a time and train them in one vmapped call
    (:mod:`puffjax.sweep.batched`)."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    from ..heap import keep_freed_memory
    keep_freed_memory()  # process-wide: this process is the worker
    threads = len(cpus) if cpus else 1
    study, _, settings = open_study(url, study_name)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    batched = BatchedTrials(settings, trials_per_call) if trials_per_call > 1 else None
    while True:
        with _ask_lock(directory):
            todo = target - counted(study)
            if todo <= 0:
                return 0
            trials = [study.ask() for _ in range(min(todo, trials_per_call))]
            for trial in trials:
                trial.set_user_attr("worker", worker)
        if batched is None:
            run_trial(study, trials[0], settings, directory, threads)
        else:
            run_batch(study, trials, batched)


def _cpus(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected core numbers like 0,1,2, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m puffjax.sweep.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--dir", required=True, help="the sweep's directory (trial runs, the ask lock)")
    parser.add_argument("--trials", type=int, required=True, help="stop when the study holds this many trials")
    parser.add_argument("--cpus", type=_cpus, help="cores to pin this process to, e.g. 0,1")
    parser.add_argument("--trials-per-call", type=int, default=1, help="trials trained together in one vmapped "
                                                                         "call (a JAX environment's)")
    parser.add_argument("--parent", type=int, help="the pid of the sweep that started this worker: the worker "
                                                   "ends when it is gone")
    args = parser.parse_args(argv)
    if args.parent is not None:
        die_with_parent(args.parent)
    storage = os.environ.pop(STORAGE_ENV, None)
    if not storage:
        parser.error(f"the study's storage URL goes in the environment variable {STORAGE_ENV}, which is not set")
    try:
        with interrupt_once():
            return work(storage, args.study, args.dir, args.trials, args.cpus, args.trials_per_call)
    except KeyboardInterrupt:  # the trial is recorded as interrupted; leave quietly
        return 130


if __name__ == "__main__":
    sys.exit(main())
