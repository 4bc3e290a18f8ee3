"""Learning curves from run directories' ``metrics.jsonl``: several runs on one figure.

    puffjax.plot.plot_runs(["runs/a", "runs/b"], "curves.png")        # or: puffjax plot runs/a runs/b -o curves.png

Panels: score (perf when the environment logs no score), episode return and SPS, against
agent steps and/or wall time (``uptime``). The legend is each run directory's name.
"""
from __future__ import annotations

import json
import os

from .logger import read_metrics

X_AXES = {"steps": ("agent_steps", "agent steps"), "time": ("uptime", "wall time (s)")}
PANELS = (("environment/score", "environment/perf", "score"),
          ("environment/episode_return", None, "episode return"),
          ("SPS", None, "SPS"))


def load_runs(run_dirs) -> dict[str, list[dict]]:
    """{label: metrics rows}; a directory without metrics (or with none logged) is an error naming it."""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ValueError("plot: no run directories given")
    runs: dict[str, list[dict]] = {}
    for d in run_dirs:
        d = os.fspath(d)
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{d}: not a directory")
        rows = _read_rows(d)
        if not rows:
            raise ValueError(f"{os.path.join(d, 'metrics.jsonl')}: no metrics logged yet (empty file)")
        label = os.path.basename(os.path.normpath(d)) or d
        while label in runs:  # same basename in two places
            label += "'"
        runs[label] = rows
    return runs


def _read_rows(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        read_metrics(run_dir)  # raises FileNotFoundError naming the directory
    with open(path) as f:
        lines = f.read().split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:  # the last line of a live run, still being written
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON ({e})") from None
    return rows


def _series(rows: list[dict], x: str, y: str):
    xs, ys = [], []
    for r in rows:
        if r.get(x) is not None and r.get(y) is not None:
            xs.append(r[x])
            ys.append(r[y])
    return xs, ys


def plot_runs(run_dirs, out: str | None = None, x: str = "both", title: str | None = None):
    """Draw the learning curves of ``run_dirs`` (one or more run directories) and return the
    matplotlib Figure; with ``out``, also save it there (PNG, SVG, PDF by extension).
    ``x``: "steps", "time" or "both" (two rows)."""
    if x not in ("steps", "time", "both"):
        raise ValueError(f"plot: x must be steps, time or both, got {x!r}")
    runs = load_runs(run_dirs)
    # A bare Figure (no pyplot): no GUI backend, no global state; it saves with Agg and a
    # notebook shows it inline.
    from matplotlib.figure import Figure
    axes_x = ["steps", "time"] if x == "both" else [x]
    fig = Figure(figsize=(4.2 * len(PANELS), 3.2 * len(axes_x)), layout="constrained")
    grid = fig.subplots(len(axes_x), len(PANELS), squeeze=False)
    all_keys = {k for rows in runs.values() for r in rows for k in r}
    for row, ax_name in enumerate(axes_x):
        xkey, xlabel = X_AXES[ax_name]
        for col, (key, fallback, label) in enumerate(PANELS):
            ax = grid[row][col]
            ykey = key if key in all_keys or fallback is None else fallback
            if ykey == "environment/perf":
                label = "perf"
            for i, (name, rows) in enumerate(runs.items()):
                xs, ys = _series(rows, xkey, ykey)
                if xs:
                    ax.plot(xs, ys, label=name, color=f"C{i % 10}", linewidth=1.2,
                            marker="o" if len(xs) < 30 else None, markersize=3)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if not ax.lines:
                ax.text(0.5, 0.5, f"no {ykey} logged", ha="center", va="center", transform=ax.transAxes)
    # One legend entry per run (same colour in every panel), even where a panel lacks that run.
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=f"C{i % 10}", label=name) for i, name in enumerate(runs)]
    grid[0][0].legend(handles=handles, fontsize="small")
    if title:
        fig.suptitle(title)
    if out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        fig.savefig(out, dpi=100)
    return fig
