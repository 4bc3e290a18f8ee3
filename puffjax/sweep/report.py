"""A sweep's results: its trials as rows, the Pareto front, the best trial, the reports.

:func:`result` reads them from a study without running anything; :func:`write_reports` writes
``trials.csv`` (every trial), ``pareto.csv`` and ``pareto.png`` (score against cost, the front
highlighted); :meth:`SweepResult.export` writes a trial's config as a file that
``puffjax train --config FILE`` runs as is.
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, field

from ..config import Config, write_config
from .space import field_value
from .study import FINAL_EPOCHS, Settings, open_study, redact_url


@dataclass
class SweepResult:
    """A study's trials (``rows``: one dict per trial), its ``pareto`` front (completed trials
    no other beats on both score and cost, by cost) and ``best`` (highest score; the cheaper
    on a tie). ``storage``: the study's storage URL for showing, its password hidden
    (:func:`puffjax.sweep.study.redact_url`). ``seconds``: wall time of the call that returned it."""
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
            params = {name: field_value(cfg, name) for name in params}
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
    return study_result(s, storage, directory, settings, seconds)


def study_result(s, storage: str, directory: str, settings: Settings, seconds: float = 0.0) -> SweepResult:
    """The :class:`SweepResult` of the open study ``s`` (at ``storage``, with ``settings``)."""
    study = s.study_name
    rows = _rows(s, settings)
    front = _pareto(rows)
    best = max(front, key=lambda r: r["score"]) if front else None
    return SweepResult(study, redact_url(storage), directory, settings, rows, front, best, seconds)


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


def trial_line(t, finished: int, target: int) -> str:
    """One progress line for finished trial ``t``: its state and score, or why it failed."""
    a = t.user_attrs
    head = f"puffjax sweep: trial {t.number} {t.state.name.lower()}"
    if t.state.name in ("COMPLETE", "PRUNED"):
        body = f"score {_fmt(a.get('score'))} after {a.get('steps'):,} steps, {_fmt(a.get('seconds'))} s"
    else:
        body = str(a.get("fail_reason"))
    return f"{head}: {body} ({finished} of {target} finished)"
