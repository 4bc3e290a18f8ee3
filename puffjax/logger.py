"""Run directories and metric sinks (JSON lines always, TensorBoard or W&B on request), and the
reading of a run's logged metrics back: :func:`read_metrics`, :func:`reached`, :func:`final_mean`."""
from __future__ import annotations

import json
import math
import os
import re
import time


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
        self.path = os.path.join(run_dir, "metrics.jsonl")
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
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (not a puffjax run directory?)")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
    """Drop logged epochs after ``epoch`` (a resumed run replays them)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return
    rows = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= epoch]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
