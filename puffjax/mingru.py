"""The minimal GRU recurrence (Feng et al. 2024, "Were RNNs All We Needed?") as a pure function.

    hs, h = mingru(z, candidate, reset, h0)

The gates depend on the input only, so the whole segment is two matmuls over all time steps
(done by the caller: ``z`` and ``candidate`` are ``x @ W + b``) and an elementwise linear
recurrence::

    h_t = (1 - sigmoid(z_t)) * h_{t-1} + sigmoid(z_t) * g(candidate_t)
    g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise   (positive, and linear for large x)

Before step t the state is zeroed on the rows where ``reset[:, t]`` is set (an episode began).
A segment of one step is the rollout's form of the same function.

Where it runs:

- CPU, float32, H a multiple of 8, T > 1: one XLA FFI custom call per direction
  (``xla_ext/mingru_cpu.cc``, a ``custom_vjp``). Each row runs its T steps in one pass over its
  own memory; the recurrence is bound by memory traffic, and XLA's CPU backend spends many
  passes on either scan below (``python benchmarks/lstm.py``).
- CPU otherwise (one step, float64, other H, or the extension missing, which warns once; see
  :mod:`puffjax.kernels`): :func:`mingru_sequential`, a ``lax.scan`` over time, which on CPUs
  beats the parallel scan (its log2(T) extra passes over memory cost more than they save).
- Accelerators: :func:`mingru_parallel`, ``jax.lax.associative_scan`` (log2(T) steps, not T).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from puffjax import kernels

__all__ = ["mingru", "mingru_parallel", "mingru_sequential", "g", "has_kernel"]

_FORWARD, _BACKWARD = kernels.MINGRU_FORWARD, kernels.MINGRU_BACKWARD


def has_kernel() -> bool:
    """True when the CPU kernel is built and registered (by puffjax.kernels, at import)."""
    return all("cpu" in kernels.platforms(t) for t in (_FORWARD, _BACKWARD))


def g(x):
    """minGRU's candidate activation: x + 0.5 for x >= 0, sigmoid(x) below (continuous at 0)."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def _coefficients(z, candidate, reset):
    """h_t = a_t * h_{t-1} + b_t: the decay a_t (0 where an episode began) and input b_t."""
    gate = jax.nn.sigmoid(z)
    a = (1.0 - gate) * (1.0 - reset[..., None].astype(z.dtype))
    return a, gate * g(candidate)


def _check(z, candidate, reset, h0):
    z, candidate, h0 = jnp.asarray(z), jnp.asarray(candidate), jnp.asarray(h0)
    reset = jnp.asarray(reset).astype(bool)
    if z.ndim != 3 or candidate.shape != z.shape:
        raise ValueError(f"mingru: z and candidate must both be [B, T, H], got {z.shape} and {candidate.shape}")
    b, t, h = z.shape
    if reset.shape != (b, t) or h0.shape != (b, h):
        raise ValueError(f"mingru: reset must be {(b, t)} and h0 {(b, h)}, got {reset.shape} and {h0.shape}")
    return z, candidate, reset, h0


def mingru_parallel(z, candidate, reset, h0):
    """The recurrence as a parallel scan over time (``associative_scan``); see :func:`mingru`."""
    z, candidate, reset, h0 = _check(z, candidate, reset, h0)
    a, u = _coefficients(z, candidate, reset)

    def compose(first, second):  # apply `first`, then `second`: x -> a2 * (a1 * x + u1) + u2
        (a1, u1), (a2, u2) = first, second
        return a1 * a2, a2 * u1 + u2

    decay, inputs = jax.lax.associative_scan(compose, (a, u), axis=1)
    hs = decay * h0[:, None] + inputs
    return hs, hs[:, -1]


def mingru_sequential(z, candidate, reset, h0):
    """The recurrence as a sequential ``lax.scan`` over time; see :func:`mingru`."""
    z, candidate, reset, h0 = _check(z, candidate, reset, h0)
    a, u = _coefficients(z, candidate, reset)

    def step(h, xs):
        a_t, u_t = xs
        h = a_t * h + u_t
        return h, h

    h, hs = jax.lax.scan(step, h0, (a.swapaxes(0, 1), u.swapaxes(0, 1)))
    return hs.swapaxes(0, 1), h


def mingru(z, candidate, reset, h0):
    """minGRU over ``T`` steps (the kernel or scan for the platform: see the module docstring).

    Args:
      z: ``[B, T, H]`` gate pre-activations; candidate: ``[B, T, H]`` candidate pre-activations.
      reset: ``[B, T]`` bool; where set, the state is zeroed before that step.
      h0: ``[B, H]`` state before the first step.

    Returns ``(hs [B, T, H], h_T [B, H])``. Differentiable in reverse mode (``grad``, ``vjp``)
    everywhere; the CPU kernel's ``custom_vjp`` has no forward mode, so ``jvp`` needs
    :func:`mingru_sequential` or :func:`mingru_parallel`. Shapes that do not fit raise a
    ValueError naming them.
    """
    z, candidate, reset, h0 = _check(z, candidate, reset, h0)
    cpu = mingru_sequential
    # One step (the rollout) is one elementwise expression, which XLA fuses better than a call.
    fits = z.shape[1] > 1 and z.shape[-1] % 8 == 0
    if fits and {x.dtype for x in (z, candidate, h0)} == {jnp.dtype(jnp.float32)}:
        if "cpu" in kernels.kernel_platforms("mingru", _FORWARD, _BACKWARD):
            cpu = _mingru_kernel
    # Resolved when lowering: only the branch of the target platform is compiled.
    return jax.lax.platform_dependent(z, candidate, reset, h0, cpu=cpu, default=mingru_parallel)


def _f32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _forward_call(z, candidate, reset, h0):
    return jax.ffi.ffi_call(_FORWARD, _f32(*z.shape), vmap_method="sequential")(z, candidate, reset, h0)


@jax.custom_vjp
def _mingru_kernel(z, candidate, reset, h0):
    hs = _forward_call(z, candidate, reset, h0)
    return hs, hs[:, -1]


def _mingru_kernel_fwd(z, candidate, reset, h0):
    hs = _forward_call(z, candidate, reset, h0)
    return (hs, hs[:, -1]), (z, candidate, reset, h0, hs)


def _mingru_kernel_bwd(res, cotangents):
    z, candidate, reset, h0, hs = res
    dhs, dh_t = cotangents
    b, t, h = z.shape
    call = jax.ffi.ffi_call(_BACKWARD, (_f32(b, t, h), _f32(b, t, h), _f32(b, h)), vmap_method="sequential")
    dz, dc, dh0 = call(dhs, dh_t, z, candidate, reset, h0, hs)
    return dz, dc, None, dh0


_mingru_kernel.defvjp(_mingru_kernel_fwd, _mingru_kernel_bwd)
