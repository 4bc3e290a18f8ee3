"""What the user watches while training: a live rich dashboard in a terminal, compact progress
lines anywhere else (CI, notebooks, redirected output)."""
from __future__ import annotations

import sys
import time


def _fmt(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def _duration(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def summary(trainer, log: dict) -> dict:
    """Headline numbers shared by both views."""
    g = trainer.geom
    done = log["agent_steps"] / (g.total_epochs * g.batch_size)
    remaining = log["uptime"] * (1 - done) / done if done > 0 else 0.0
    return {"env": trainer.cfg.env.name, "params": _fmt(trainer.num_params),
            "steps": f"{_fmt(log['agent_steps'])}/{_fmt(g.total_epochs * g.batch_size)}",
            "SPS": _fmt(log["SPS"]), "epoch": f"{log['epoch']}/{g.total_epochs}",
            "uptime": _duration(log["uptime"]), "remaining": _duration(remaining)}


class LineDashboard:
    """One line per epoch at most every ``interval`` seconds (and always for the last epoch)."""

    def __init__(self, trainer, interval: float = 5.0, stream=None):
        self.trainer, self.interval, self.last = trainer, interval, 0.0
        self.stream = stream or sys.stdout

    def update(self, log: dict) -> None:
        now = time.monotonic()
        last_epoch = log["epoch"] == self.trainer.geom.total_epochs
        if now - self.last < self.interval and not last_epoch and log["epoch"] > 1:
            return
        self.last = now
        s = summary(self.trainer, log)
        parts = [f"{s['env']}", f"epoch {s['epoch']}", f"steps {s['steps']}", f"SPS {s['SPS']}"]
        env = {k.split("/", 1)[1]: v for k, v in log.items() if k.startswith("environment/")}
        env = env or self.trainer.last_env_log
        for k in ("score", "perf", "episode_return"):
            if k in env:
                parts.append(f"{k} {env[k]:.3g}")
        parts.append(f"policy_loss {log['losses/policy_loss']:.3g}")
        parts.append(f"value_loss {log['losses/value_loss']:.3g}")
        print(" | ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichDashboard:
    """A live terminal view in the spirit of PufferLib's."""

    def __init__(self, trainer):
        from rich.console import Console
        from rich.live import Live
        self.trainer = trainer
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def _render(self, log: dict):
        from rich.table import Table
        from rich import box

        def table(title, rows, fmt=lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)):
            t = Table(title=title, box=box.SIMPLE, show_header=False, title_style="bold cyan")
            t.add_column(style="bold")
            t.add_column(justify="right")
            for k, v in rows:
                t.add_row(k, fmt(v))
            return t

        s = summary(self.trainer, log)
        perf = {k.split("/", 1)[1]: v for k, v in log.items() if k.startswith("performance/")}
        total = sum(perf.values()) or 1.0
        perf_rows = [(k, f"{v:.2f}s {100 * v / total:3.0f}%") for k, v in perf.items()]
        loss_rows = [(k.split("/", 1)[1], v) for k, v in log.items() if k.startswith("losses/")]
        env = {k.split("/", 1)[1]: v for k, v in log.items() if k.startswith("environment/")}
        env_rows = list((env or self.trainer.last_env_log).items()) or [("episodes", "none yet")]
        grid = Table.grid(padding=(0, 2))
        grid.add_row(table("puffjax", list(s.items())), table("performance", perf_rows, str),
                     table("losses", loss_rows), table("environment", env_rows))
        return grid

    def update(self, log: dict) -> None:
        self.live.update(self._render(log))

    def close(self) -> None:
        self.live.stop()


class NoDashboard:
    def update(self, log: dict) -> None:
        pass

    def close(self) -> None:
        pass


def make_dashboard(trainer, mode: str = "auto"):
    if mode == "none":
        return NoDashboard()
    if mode == "rich" or (mode == "auto" and sys.stdout.isatty()):
        return RichDashboard(trainer)
    if mode in ("auto", "lines"):
        return LineDashboard(trainer)
    raise ValueError(f"dashboard must be auto, rich, lines or none, got {mode!r}")
