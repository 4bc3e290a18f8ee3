"""The worker processes of a sweep on this machine: started, watched, restarted, stopped.

Each worker is a fresh interpreter, ``python -m puffjax.sweep.worker`` (whatever the caller's
main module is: a script, Jupyter), pinned to its own share of the CPU cores. The storage URL,
which may hold a password, reaches it in the environment variable :data:`STORAGE_ENV`, never on
its command line (which any user sees in ``ps``). Workers are killed when this process is gone,
however it ended (``--parent``: :func:`puffjax.lifeline.die_with_parent`), so a sweep killed
with ``kill -9`` leaves no worker training. A worker killed mid-trial has that trial
failed with the reason and is started again while the study needs trials. Ctrl-C (or a worker
ending with status 130, as when SIGINT reached it alone) stops every worker, fails their running
trials with the reason "interrupted" and raises KeyboardInterrupt; the caller's SIGINT handler
is the same afterwards as before.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from .interrupt import check, interrupt_once
from .report import trial_line
from .study import INTERRUPTED, STORAGE_ENV, counted, fail, running


def cpu_shares(workers: int) -> list:
    """Disjoint CPU sets for ``workers`` processes (shared round-robin when there are more
    workers than cores); None where the platform cannot pin processes."""
    if not hasattr(os, "sched_getaffinity"):
        return [None] * workers
    cpus = sorted(os.sched_getaffinity(0))
    if workers >= len(cpus):
        return [{cpus[i % len(cpus)]} for i in range(workers)]
    return [set(cpus[i * len(cpus) // workers:(i + 1) * len(cpus) // workers]) for i in range(workers)]


def fail_dead_local(study, store) -> None:
    """Fail the running trials whose worker process on this machine no longer runs (left by a
    sweep killed before it could record them)."""
    host = socket.gethostname()
    for t in running(study):
        w = t.user_attrs.get("worker", "")
        if w.rpartition(":")[0] == host:
            try:
                os.kill(int(w.rpartition(":")[2]), 0)
            except ProcessLookupError:
                fail(study, store, t.number, f"its worker process ({w}) died before recording how the trial ended")
            except PermissionError:
                pass


def worker_command(study: str, directory: str, target: int, cpus: set | None,
                   trials_per_call: int = 1) -> list[str]:
    """The command line of one worker process started by this one (the storage URL is not on
    it: see :func:`worker_env`)."""
    cmd = [sys.executable, "-m", "puffjax.sweep.worker", "--study", study, "--dir", directory, "--trials", str(target)]
    cmd += ["--trials-per-call", str(trials_per_call)] if trials_per_call > 1 else []
    return cmd + (["--cpus", ",".join(map(str, sorted(cpus)))] if cpus else []) + ["--parent", str(os.getpid())]


def worker_env(storage: str, environ: dict) -> dict:
    """The environment of one worker process: ``environ`` (this process's) with the storage URL
    in :data:`STORAGE_ENV`."""
    return {**environ, STORAGE_ENV: storage}


def run_workers(study, store, storage: str, directory: str, target: int, workers: int, say,
                trials_per_call: int = 1) -> None:
    """Run ``workers`` worker processes on study ``study`` (at ``storage``) until it holds
    ``target`` trials, calling ``say`` with a line per finished trial; each worker trains
    ``trials_per_call`` trials per call."""
    shares = cpu_shares(workers)
    host = socket.gethostname()

    def start(i):
        return subprocess.Popen(worker_command(study.study_name, directory, target, shares[i], trials_per_call),
                                env=worker_env(storage, dict(os.environ)))

    procs = {i: start(i) for i in range(workers)}
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    errors = []
    with interrupt_once():
        try:
            _watch(study, store, procs, start, seen, target, errors, host, say)
        except KeyboardInterrupt:
            say("puffjax sweep: interrupted; stopping the workers and recording their trials as interrupted")
            _stop(study, store, list(procs.values()), host)
            raise
    if errors:
        raise RuntimeError("; ".join(errors))


def _watch(study, store, procs: dict, start, seen: set, target: int, errors: list, host: str, say) -> None:
    """Poll the workers until none is left: fail the trials of those that died, start them
    again while the study needs trials, and say each trial that finished."""
    restarts = 0
    while procs:
        time.sleep(0.5)
        check()
        for i, p in list(procs.items()):
            if p.poll() is None:
                continue
            del procs[i]
            if p.returncode == 0:
                continue
            if p.returncode == 130:  # SIGINT reached the worker alone (`kill -INT`, or a parent that
                raise KeyboardInterrupt  # ignores it, as under `nohup ... &`): stop as on Ctrl-C
            mine = [t for t in running(study) if t.user_attrs.get("worker") == f"{host}:{p.pid}"]
            why = (f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}")
            for t in mine:
                fail(study, store, t.number, f"its worker process was {why}" if p.returncode < 0 else
                     f"its worker process stopped ({why})")
            if p.returncode > 0 and not mine:
                errors.append(f"worker {i} stopped with {why} (its error is printed above)")
            elif counted(study) < target and restarts < target:
                restarts += 1
                procs[i] = start(i)
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                say(trial_line(t, len(seen), target))
        check()


def _stop(study, store, procs, host: str) -> None:
    """Pass SIGINT on to the running workers, wait for them (a minute at most, then kill them)
    and fail their trials still running with the reason "interrupted". Called under
    :func:`interrupt_once`, so a second Ctrl-C cannot cut the recording short."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    pids = {f"{host}:{p.pid}" for p in procs}
    for t in running(study):
        if t.user_attrs.get("worker") in pids:
            fail(study, store, t.number, INTERRUPTED)
