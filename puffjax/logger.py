"""Run directories and metric sinks (JSON lines always, TensorBoard or W&B on request), and the
reading of a run's logged metrics back: :func:`read_metrics`, :func:`reached`, :func:`final_mean`."""
from __future__ import annotations

import glob
import json
import math
import os
import re
import time
import warnings

from .atomic import write_atomic

METRICS = "metrics.jsonl"


def make_run_dir(data_dir: str, env_name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # gym:CartPole-v1, mymodule:make_env, path/to/foo.h: a plain folder name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(env_name) if env_name.endswith((".h", ".c")) else env_name)
    base = os.path.join(data_dir, f"{safe}-{stamp}")
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    os.makedirs(path)
    return path


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsLogger:
    """Appends one JSON object per epoch to ``metrics.jsonl``; forwards to an optional backend."""

    def __init__(self, run_dir: str, backend: str = "none", config: dict | None = None):
        self.path = os.path.join(run_dir, METRICS)
        self.file = open(self.path, "a")
        self.backend = backend
        self.writer = None
        if backend == "tensorboard":
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError("logger 'tensorboard' needs tensorboardX: pip install 'puffjax[tensorboard]'") from None
            self.writer = SummaryWriter(run_dir)
        elif backend == "wandb":
            try:
                import wandb
            except ImportError:
                raise ImportError("logger 'wandb' needs wandb: pip install 'puffjax[wandb]'") from None
            self.writer = wandb.init(project="puffjax", config=config, dir=run_dir)

    def log(self, metrics: dict) -> None:
        self.file.write(json.dumps({k: _jsonable(v) for k, v in metrics.items()}) + "\n")
        self.file.flush()
        step = metrics.get("agent_steps", 0)
        if self.backend == "tensorboard":
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, step)
        elif self.backend == "wandb":
            self.writer.log(metrics, step=step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            (self.writer.close if self.backend == "tensorboard" else self.writer.finish)()


def read_metrics(run_dir: str) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``, one dict per logged epoch. A torn last line (a
    write cut short, e.g. by a full disk) is dropped with a warning naming the file; any other
    line that is not a JSON object is a ValueError naming the file and the line."""
    return [row for _, row in _rows(run_dir)]


def _rows(run_dir: str) -> list[tuple[str, dict]]:
    """``(line, row)`` for each row of a run's metrics (see :func:`read_metrics`)."""
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir}: no {METRICS} (not a puffjax run directory?)")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [(i, line) for i, line in enumerate(f, 1) if line.strip()]
    rows = []
    for i, line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append((line if line.endswith("\n") else line + "\n", row))
        elif i == lines[-1][0]:
            warnings.warn(f"{path}: dropped its torn last line {i} ({line.strip()[:60]!r})", stacklevel=3)
        else:
            raise ValueError(f"{path}: line {i} is not a JSON object of metrics ({line.strip()[:60]!r})")
    return rows


def reached(history: list[dict], key: str, target: float) -> tuple[dict | None, dict | None]:
    """``(first, held)``: in a run's logs (``history``, one dict per epoch, as the trainer yields
    them or :func:`read_metrics` reads them), the first log whose ``key`` is >= ``target``, and the
    log from which ``key`` stayed >= ``target`` to the end; None where there is none. Logs
    without a value of ``key`` (an epoch where no episode ended) are skipped."""
    first = held = None
    for log in history:
        if log.get(key) is None:
            continue
        if log[key] >= target:
            first = first or log
            held = held or log
        else:
            held = None
    return first, held


def final_mean(history: list[dict], key: str, n: int = 3) -> float:
    """The mean of ``key`` over the last ``n`` logs that hold a value of it (NaN if none does)."""
    values = [log[key] for log in history if log.get(key) is not None][-n:]
    return sum(values) / len(values) if values else math.nan


def truncate_metrics(run_dir: str, epoch: int) -> None:
    """Drop logged epochs after ``epoch`` (a resumed run replays them), and a torn last line.
    The file is replaced atomically (:func:`puffjax.atomic.write_atomic`): a fault at any point
    leaves the old rows or the new ones, never fewer."""
    path, prefix = os.path.join(run_dir, METRICS), f".{METRICS}.tmp-"
    for stale in glob.glob(os.path.join(glob.escape(run_dir), prefix + "*")):  # a rewrite killed midway
        os.unlink(stale)
    if not os.path.exists(path):
        return
    kept = [line for line, row in _rows(run_dir) if row.get("epoch", 0) <= epoch]
    write_atomic(path, "".join(kept).encode("utf-8"), prefix=prefix)
