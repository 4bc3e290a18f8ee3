"""The median rule that stops unpromising trials early.

A trial records its metric as a curve, ``[[step, value], ...]``: the latest value at each step
of a grid of :data:`REPORT_POINTS` points over the budget (:func:`grid_step`), so trials of
different batch sizes are compared at the same agent-step counts. At each new step ``s`` of its
curve, a trial is stopped when its best value so far is below the median of the values the
study's completed trials recorded at ``s``; not before :data:`PRUNE_STARTUP_TRIALS` trials have
completed, not before the first :data:`PRUNE_WARMUP` of the budget, and not when no completed
trial recorded a value at ``s``. The rule reads nothing but curves: it is a pure function.
"""
from __future__ import annotations

import statistics

REPORT_POINTS = 20  # curve steps per budget: trials are compared on this grid
PRUNE_STARTUP_TRIALS = 5  # completed trials before the rule stops any
PRUNE_WARMUP = 0.25  # fraction of the budget every trial trains before it can be stopped


def grid_step(budget: int) -> int:
    """The spacing of the curve's steps for a budget of ``budget`` agent steps."""
    return max(1, budget // REPORT_POINTS)


def add_point(curve: list, steps: int, value: float, grid: int) -> bool:
    """Record ``value``, reached after ``steps`` agent steps, on ``curve`` (in place): as the
    value of grid step ``steps // grid * grid``, a new last point or the last point's new value.
    Returns whether the curve changed (False before the grid's first step)."""
    step = steps // grid * grid
    if step < grid:
        return False
    if curve and curve[-1][0] == step:
        curve[-1][1] = value
    else:
        curve.append([step, value])
    return True


def warmup_steps(budget: int) -> int:
    """Agent steps every trial trains before the rule can stop it."""
    return int(budget * PRUNE_WARMUP)


def median_stops(curve: list, completed: list[list], warmup: int, startup: int = PRUNE_STARTUP_TRIALS) -> bool:
    """Whether the median rule stops a trial at the last step ``s`` of its ``curve``
    (``[[step, value], ...]``, steps increasing, values finite).

    ``completed``: the curves of the study's completed trials (an empty one for a trial that
    recorded none; it counts towards ``startup``). True when at least ``startup`` (and at least
    one) trials have completed, ``s >= warmup``, and the best value of ``curve`` is below the
    median of the completed curves' values at exactly ``s`` (the mean of the middle two for an
    even count); False when none of them recorded a value at ``s``.
    """
    if not curve or not completed or len(completed) < startup:
        return False
    step = curve[-1][0]
    if step < warmup:
        return False
    at_step = [value for other in completed for s, value in other if s == step]
    if not at_step:
        return False
    return max(value for _, value in curve) < statistics.median(at_step)
