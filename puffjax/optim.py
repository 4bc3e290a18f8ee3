"""Optimizers: Muon (PufferLib's default) and Adam, as optax transformations.

``make_optimizer(config, total_updates)`` returns::

    chain(clip_by_global_norm(max_grad_norm),
          <Muon or Adam> with learning rate lr(t))

where ``lr(t)`` is constant, or (``anneal_lr``) decays from ``learning_rate`` to 0 over the
run: a cosine ``lr * (1 + cos(pi * e / E)) / 2`` (``lr_decay="cosine"``, the default) or a line
``lr * (1 - e / E)`` (``lr_decay="linear"``, CleanRL's and PureJaxRL's), with ``e`` the epoch index
``t // updates_per_epoch`` and ``E = ceil(total_updates / updates_per_epoch)``
(``updates_per_epoch=1``, the default, anneals at every update, which is
``optax.cosine_decay_schedule``; pass the minibatches per epoch to step it once
per epoch as PufferLib does). ``t`` counts optimizer updates.

Muon (``optimizer="muon"``), built from ``optax.contrib.scale_by_muon`` (the
core of ``optax.contrib.muon``):

* every parameter with ndim >= 2 is a matrix. Flax stores Dense kernels as
  ``(in, out)`` and Conv kernels as ``(H, W, in, out)``: the reduction axes are
  all but the last, so a conv kernel is orthogonalised as the
  ``(H * W * in, out)`` matrix. Its Nesterov momentum (``beta = adam_beta1``, as
  PufferLib's heavyball Muon uses ``betas[0]``) is orthogonalised by 5
  Newton-Schulz iterations (optax's quintic coefficients, Frobenius
  pre-normalisation with eps 1e-7) and scaled by PufferLib's
  ``sqrt(max(1, out / in))`` with ``in`` = product of the reduction axes (for a
  PyTorch ``(out, in)`` weight this is the same number);
* every other parameter (biases, the Gaussian ``log_std``) gets, by default,
  PufferLib's treatment: plain Nesterov momentum SGD,
  ``v = beta * v + g; update = g + beta * v`` (heavyball's ``nesterov_momentum``,
  i.e. ``optax.trace(beta, nesterov=True)``), times the learning rate.
  ``non_matrix="adam"`` (argument or ``train.muon_non_matrix``) uses Adam
  (``adam_beta1/2``, ``adam_eps``) for them instead, as ``optax.contrib.muon``
  does.

Flax's LSTM cell keeps one ``(in, hidden)`` kernel per gate, so each gate's
matrix is orthogonalised on its own (scale 1); PufferLib orthogonalises
PyTorch's fused ``(4 * hidden, in)`` matrix (scale 2). Both give updates of the
same RMS size.

Adam (``optimizer="adam"``): ``optax.adam(lr, adam_beta1, adam_beta2, adam_eps)``
(eps outside the square root, as PyTorch).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from optax.contrib import MuonDimensionNumbers, scale_by_muon

__all__ = [
    "make_optimizer",
    "make_lr_schedule",
    "set_schedule_count",
    "muon",
    "muon_dimension_numbers",
    "scale_by_muon_shape",
    "is_matrix",
]

_NS_EPS = 1e-7


def is_matrix(x) -> bool:
    """Whether Muon treats this parameter as a matrix (ndim >= 2)."""
    return jnp.ndim(x) >= 2


def _dim_nums(x):
    nd = jnp.ndim(x)
    return MuonDimensionNumbers(reduction_axis=tuple(range(nd - 1)), output_axis=nd - 1)


def muon_dimension_numbers(params):
    """``MuonDimensionNumbers`` for every matrix leaf: reduce over all axes but the last.

    Flax Dense ``(in, out)`` -> reduction 0, output 1; Conv ``(H, W, in, out)``
    -> reduction (0, 1, 2), output 3. Non-matrix leaves map to None.
    """
    return jax.tree.map(lambda x: _dim_nums(x) if is_matrix(x) else None, params)


def _fans(x):
    shape = jnp.shape(x)
    return math.prod(shape[:-1]), shape[-1]


def scale_by_muon_shape() -> optax.GradientTransformation:
    """Multiply each (matrix) update by PufferLib's ``sqrt(max(1, fan_out / fan_in))``."""

    def update_fn(updates, state, params=None):
        del params

        def scale(u):
            fan_in, fan_out = _fans(u)
            return u * math.sqrt(max(1.0, fan_out / fan_in))

        return jax.tree.map(scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def muon(
    learning_rate,
    beta: float = 0.95,
    *,
    non_matrix: str = "nesterov",
    adam_b2: float = 0.999,
    adam_eps: float = 1e-8,
    ns_steps: int = 5,
) -> optax.GradientTransformation:
    """Muon for Flax parameter trees (see the module docstring).

    Args:
      learning_rate: float or optax schedule.
      beta: momentum of both the matrix and the non-matrix branch (and Adam's b1).
      non_matrix: ``"nesterov"`` (PufferLib) or ``"adam"`` for ndim < 2 parameters.
      adam_b2, adam_eps: used only when ``non_matrix="adam"``.
      ns_steps: Newton-Schulz iterations.
    """
    if non_matrix not in ("nesterov", "adam"):
        raise ValueError(f"muon: non_matrix must be 'nesterov' or 'adam', got {non_matrix!r}")

    def dims(updates):  # updates of the matrix partition (others are MaskedNode)
        return jax.tree.map(_dim_nums, updates)

    matrix_tx = optax.chain(
        scale_by_muon(ns_steps=ns_steps, beta=beta, eps=_NS_EPS, nesterov=True,
                      weight_dimension_numbers=dims),
        scale_by_muon_shape(),
        optax.scale_by_learning_rate(learning_rate),
    )
    if non_matrix == "nesterov":
        other_tx = optax.chain(
            optax.trace(decay=beta, nesterov=True),
            optax.scale_by_learning_rate(learning_rate),
        )
    else:
        other_tx = optax.adam(learning_rate, b1=beta, b2=adam_b2, eps=adam_eps)
    labels = lambda params: jax.tree.map(lambda x: "matrix" if is_matrix(x) else "other", params)
    return optax.partition({"matrix": matrix_tx, "other": other_tx}, labels)


def make_lr_schedule(config, total_updates: int, updates_per_epoch: int = 1, learning_rate=None):
    """The learning rate as a function of the update count (an optax schedule); ``learning_rate``
    (a float or a scalar array, which may be traced) replaces ``config.learning_rate``."""
    lr = float(config.learning_rate) if learning_rate is None else learning_rate
    if not getattr(config, "anneal_lr", False):
        return lambda count: jnp.asarray(lr, jnp.float32)
    if int(total_updates) < 1:
        raise ValueError(f"make_optimizer: total_updates must be >= 1 when annealing, got {total_updates}")
    if int(updates_per_epoch) < 1:
        raise ValueError(f"make_optimizer: updates_per_epoch must be >= 1, got {updates_per_epoch}")
    upe = int(updates_per_epoch)
    epochs = max(1, -(-int(total_updates) // upe))

    linear = getattr(config, "lr_decay", "cosine") == "linear"

    def schedule(count):
        e = jnp.minimum(jnp.asarray(count) // upe, epochs).astype(jnp.float32)
        if linear:
            return (lr * (1.0 - e / epochs)).astype(jnp.float32)
        return (lr * 0.5 * (1.0 + jnp.cos(jnp.pi * e / epochs))).astype(jnp.float32)

    return schedule


def set_schedule_count(opt_state, count: int):
    """``opt_state`` with the update count its learning-rate schedules read set to ``count``
    (every ``optax.ScaleByScheduleState``; the rest, momenta and Adam's bias correction
    included, unchanged). A run resumed with another batch geometry continues its schedule
    from the update that matches its agent step."""
    is_schedule = lambda x: isinstance(x, optax.ScaleByScheduleState)
    return jax.tree.map(lambda x: x._replace(count=jnp.full_like(x.count, count)) if is_schedule(x) else x,
                        opt_state, is_leaf=is_schedule)


def make_optimizer(config, total_updates: int, *, updates_per_epoch: int = 1,
                   non_matrix: str | None = None, learning_rate=None) -> optax.GradientTransformation:
    """Global-norm clipping + (annealed) Muon or Adam, from a config object.

    ``config`` needs ``optimizer`` ("muon" | "adam"), ``learning_rate``,
    ``anneal_lr``, ``lr_decay`` ("cosine" when the object has none), ``max_grad_norm`` (None or
    inf: no clipping), ``adam_beta1``,
    ``adam_beta2``, ``adam_eps``, and ``muon_non_matrix`` ("nesterov" | "adam", the config
    field ``train.muon_non_matrix``; "nesterov" when the object has none).
    ``total_updates`` is the number of ``update`` calls over the run. ``learning_rate``: replaces
    ``config.learning_rate``; a scalar array, which may be traced (e.g. vmapped over), is taken
    as it is, unchecked.
    """
    name = getattr(config, "optimizer", "muon")
    if name not in ("muon", "adam"):
        raise ValueError(f"make_optimizer: optimizer must be 'muon' or 'adam', got {name!r}")
    if learning_rate is None and not float(config.learning_rate) > 0:
        raise ValueError(f"make_optimizer: learning_rate must be > 0, got {config.learning_rate}")
    schedule = make_lr_schedule(config, total_updates, updates_per_epoch, learning_rate)
    b1, b2, eps = float(config.adam_beta1), float(config.adam_beta2), float(config.adam_eps)

    if name == "muon":
        nm = non_matrix or getattr(config, "muon_non_matrix", None) or "nesterov"
        inner = muon(schedule, beta=b1, non_matrix=nm, adam_b2=b2, adam_eps=eps)
    else:
        inner = optax.adam(schedule, b1=b1, b2=b2, eps=eps)

    mgn = config.max_grad_norm
    if mgn is None or math.isinf(float(mgn)):
        return inner
    if not float(mgn) > 0:
        raise ValueError(f"make_optimizer: max_grad_norm must be > 0 (or None), got {mgn}")
    return optax.chain(optax.clip_by_global_norm(float(mgn)), inner)
