"""The non-finite guard: stop training with a clear error when NaN or inf appears.

An environment that emits NaN would otherwise turn the losses and then the parameters into
NaN while training goes on. The checks run inside the jitted code and reduce to a few
integers: the rollout keeps a :func:`record` of the first non-finite observation and reward
(which step, which row), read once per epoch; the update reports whether any minibatch's loss,
gradients or the new parameters were non-finite. The trainer raises :class:`NonFiniteError`
before it keeps the new parameters or writes a checkpoint, so ``latest`` stays the last good one.
``train.check_finite = false`` leaves the checks out of the jitted code and training goes on
whatever the values.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(FloatingPointError):
    """Training produced or received NaN/inf; the message names the quantity, row and epoch."""


INPUTS = ("observations", "rewards")  # checked per rollout step, in this order


def clean_record() -> np.ndarray:
    """The record of a rollout that has seen no non-finite input yet: ``[step, row]`` per input
    in :data:`INPUTS`, -1 = none (a host array; the rollout starts each device from one)."""
    return np.full((len(INPUTS), 2), -1, np.int32)


def _first_bad_row(x) -> jax.Array:
    """Index of the first row of ``x`` holding a non-finite value, or -1."""
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.int32(-1)
    bad = ~jnp.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    return jnp.where(bad.any(), jnp.argmax(bad), -1).astype(jnp.int32)


def record(seen: jax.Array, step, observations, rewards, first_row=0) -> jax.Array:
    """Note the first step (and row) at which each input was non-finite; later ones are ignored.
    ``first_row``: the agent index of row 0 of these inputs (a device's block of agents)."""
    rows = jnp.stack([_first_bad_row(observations), _first_bad_row(rewards)])
    new = (seen[:, 0] < 0) & (rows >= 0)
    return jnp.where(new[:, None], jnp.stack([jnp.full_like(rows, step), rows + first_row], axis=1), seen)


def check_record(seen, epoch: int, envs_per_process: int | None = None) -> None:
    """Raise :class:`NonFiniteError` if the rollout of ``epoch`` (1-based) saw a non-finite input.
    ``seen``: one record, or a stack of them (one per device, agent indices global); with
    ``envs_per_process`` an agent index is named as an environment row of its process."""
    seen = np.asarray(seen).reshape(-1, len(INPUTS), 2)
    problems = []
    for i, name in enumerate(INPUTS):
        hits = seen[:, i][seen[:, i, 0] >= 0]
        if len(hits):
            step, row = hits[np.lexsort((hits[:, 1], hits[:, 0]))[0]]  # the earliest step, then row
            where = f"environment {row}"
            if envs_per_process:
                where = f"environment {row % envs_per_process} of process {row // envs_per_process}"
                row = row % envs_per_process
            problems.append(f"{name}[{row}] ({where}) at rollout step {step} of the epoch")
    if problems:
        raise NonFiniteError(f"epoch {epoch}: the environment returned non-finite values (NaN or inf): "
                             f"{'; '.join(problems)}. Training stopped before this epoch's update; nothing "
                             f"from this epoch is kept or saved.")


def all_finite(tree) -> jax.Array:
    """True when every leaf of ``tree`` is free of NaN and inf (one reduction per leaf)."""
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all() if leaves else jnp.bool_(True)


def check_update(report: dict, epoch: int) -> None:
    """Raise :class:`NonFiniteError` from the update's report (see ``puffjax.update``):
    ``bad_minibatch`` (first minibatch whose loss or gradients were non-finite, -1 if none),
    its loss terms, and ``params_finite``."""
    mb = int(report["bad_minibatch"])
    if mb >= 0:
        terms = ", ".join(f"{k} = {float(v):.4g}" for k, v in report["bad_terms"].items())
        raise NonFiniteError(f"epoch {epoch}: the loss or its gradients became non-finite in minibatch {mb} "
                             f"({terms}). The update was discarded; nothing from this epoch is kept or saved. "
                             f"Lower train.learning_rate or check the environment's rewards.")
    if not bool(report["params_finite"]):
        raise NonFiniteError(f"epoch {epoch}: the parameters became non-finite after the update. It was "
                             f"discarded; nothing from this epoch is kept or saved.")
