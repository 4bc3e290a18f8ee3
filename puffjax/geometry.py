"""Batch geometry: how a batch splits into segments, minibatches and accumulation chunks.

Checked once, up front, with messages that say which numbers disagree.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    total_agents: int  # over every process
    devices: int  # of the mesh, over every process; each holds segments / devices rows
    horizon: int  # bptt_horizon: columns of a segment
    batch_size: int  # agent steps per epoch
    segments: int  # rows of the rollout buffer (batch_size / horizon)
    rows_per_agent: int  # segments / total_agents: horizons each agent plays per epoch
    minibatch_segments: int  # rows drawn per minibatch (minibatch_segments / devices on each device)
    minibatches_per_epoch: int  # update_epochs * batch_size / minibatch_size
    accumulation_steps: int  # (minibatch_size / devices) / max_minibatch_size when larger, else 1
    total_epochs: int  # ceil(total_timesteps / batch_size)
    minibatch_steps: int = 0  # train.minibatch_steps: steps per minibatch, each drawn on its own; 0: whole segments

    @property
    def total_updates(self) -> int:
        return self.total_epochs * self.minibatches_per_epoch


def rounding_note(total_timesteps: int, geom: Geometry) -> str | None:
    """One line saying that ``total_timesteps`` is not a whole number of epochs and how many
    steps the run plays instead (the next whole epoch), or None when it is."""
    played = geom.total_epochs * geom.batch_size
    if played == total_timesteps:
        return None
    return (f"train.total_timesteps {total_timesteps:,} is not a whole number of epochs of {geom.batch_size:,} "
            f"steps: training {geom.total_epochs} epochs ({played:,} steps)")


def geometry(train_cfg, total_agents: int, devices: int = 1) -> Geometry:
    """The geometry for ``total_agents`` agents (every process's) on a mesh of ``devices``."""
    t = train_cfg
    horizon = t.bptt_horizon
    if total_agents <= 0:
        raise ValueError(f"need at least one agent, got {total_agents}")
    if devices < 1 or total_agents % devices:
        raise ValueError(f"{total_agents} agents do not split evenly over {devices} devices: make env.num_envs "
                         f"a multiple of the devices per process")
    batch = total_agents * horizon if t.batch_size == "auto" else int(t.batch_size)
    if batch <= 0:
        raise ValueError(f"train.batch_size must be positive or 'auto', got {t.batch_size!r}")
    if batch % horizon:
        raise ValueError(f"train.batch_size {batch} is not divisible by train.bptt_horizon {horizon}")
    segments = batch // horizon
    if total_agents > segments:
        raise ValueError(
            f"{total_agents} agents need at least {total_agents} segments, but batch_size {batch} / "
            f"bptt_horizon {horizon} gives {segments}: raise batch_size to >= {total_agents * horizon}")
    if segments % total_agents:
        raise ValueError(
            f"segments ({segments} = batch_size {batch} / bptt_horizon {horizon}) must be a multiple "
            f"of the number of agents ({total_agents}) so every agent fills whole segments")
    mb = t.minibatch_size
    steps = t.minibatch_steps
    if mb % horizon and not steps:
        raise ValueError(f"train.minibatch_size {mb} is not a multiple of train.bptt_horizon {horizon}")
    if mb > batch:
        raise ValueError(f"train.minibatch_size {mb} is larger than the batch ({batch} steps)")
    if batch % mb:
        raise ValueError(f"train.batch_size {batch} is not divisible by train.minibatch_size {mb}")
    if steps and mb % devices:
        raise ValueError(f"a minibatch of {mb} steps does not split evenly over {devices} devices")
    if not steps and (mb // horizon) % devices:
        raise ValueError(f"a minibatch of {mb // horizon} rows (minibatch_size {mb} / bptt_horizon {horizon}) "
                         f"does not split evenly over {devices} devices")
    per_device = mb // devices  # steps of each minibatch on each device
    accum = 1
    if per_device > t.max_minibatch_size:
        if per_device % t.max_minibatch_size or (t.max_minibatch_size % horizon and not steps):
            raise ValueError(
                f"gradient accumulation needs each device's share of minibatch_size ({mb} / {devices} devices = "
                f"{per_device} steps) to be a multiple of max_minibatch_size ({t.max_minibatch_size}), itself a "
                f"multiple of bptt_horizon ({horizon})")
        accum = per_device // t.max_minibatch_size
    epochs = -(-t.total_timesteps // batch)  # whole epochs, rounded up: the budget is never cut
    if t.total_timesteps < batch:
        raise ValueError(
            f"train.total_timesteps {t.total_timesteps} is less than one batch ({batch} steps): "
            f"no epoch would run")
    return Geometry(
        total_agents=total_agents, devices=devices, horizon=horizon, batch_size=batch, segments=segments,
        rows_per_agent=segments // total_agents, minibatch_segments=mb // horizon,
        minibatches_per_epoch=t.update_epochs * (batch // mb), accumulation_steps=accum,
        total_epochs=epochs, minibatch_steps=mb if steps else 0)


def _nearest_divisor(n: int, target: float) -> int:
    """The divisor of ``n`` closest to ``target`` on a log scale (the smaller one on a tie)."""
    import math
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d / max(target, 1e-9))), d))


def fit_geometry(train_cfg, total_agents: int, budget: int | None = None) -> list[str]:
    """Change ``train_cfg`` in place to the nearest batch geometry :func:`geometry` accepts, for
    configs whose sizes were set independently (a hyperparameter sweep samples them so):
    ``batch_size`` to a multiple of ``total_agents * bptt_horizon``, ``minibatch_size`` to a
    multiple of the horizon that divides the batch, ``max_minibatch_size`` to a chunk that
    divides the minibatch (of one device), and a ``total_timesteps`` below one batch up to one
    batch if that is within ``budget`` (agent steps). Returns the changes as ``"train.field: old -> new"`` lines;
    raises ValueError (from :func:`geometry`) when no change of those fields can help, e.g. a
    batch larger than the budget."""
    t, changes = train_cfg, []

    def change(name, value):
        if getattr(t, name) != value:
            changes.append(f"train.{name}: {getattr(t, name)} -> {value}")
            setattr(t, name, value)

    horizon = t.bptt_horizon
    if total_agents > 0 and horizon > 0:
        row = total_agents * horizon  # the smallest batch: every agent plays one segment
        if t.batch_size != "auto":
            change("batch_size", max(1, round(int(t.batch_size) / row)) * row)
        batch = row if t.batch_size == "auto" else t.batch_size
        segments = batch // horizon
        mb_segments = _nearest_divisor(segments, t.minibatch_size / horizon)
        change("minibatch_size", mb_segments * horizon)
        if t.minibatch_size > t.max_minibatch_size:
            chunk = max([d for d in range(1, mb_segments + 1)
                         if mb_segments % d == 0 and d * horizon <= t.max_minibatch_size], default=1)
            change("max_minibatch_size", chunk * horizon)
        if t.total_timesteps < batch and budget is not None and batch <= budget:
            change("total_timesteps", batch)
    geometry(t, total_agents)
    return changes
