"""Puff advantage: GAE generalised with V-trace clipping, as an XLA custom call.

All arrays are float32 ``[S, H]`` (S rows/segments, H time steps). At ``[s, t]``
the buffer holds the value ``V_t`` and the reward ``r_t`` / terminal ``d_t`` that
arrived WITH observation ``o_t``, so the recurrence reads rewards and terminals
at ``t + 1``::

    A[:, H-1] = 0
    for t = H-2 down to 0:
        nnt   = 1 - d[t+1]
        rho   = min(ratio[t], rho_clip)
        c     = min(ratio[t], c_clip)
        delta = rho * (r[t+1] + gamma * V[t+1] * nnt - V[t])
        A[t]  = delta + gamma * gae_lambda * c * nnt * A[t+1]

With ``ratio == 1`` and both clips >= 1 this is GAE(gamma, lambda); with
``gae_lambda == 1`` it is IMPALA's V-trace (``A = v_s - V``). No bootstrap
across rows.

:func:`puff_advantage` runs as an XLA FFI custom call: a C++ handler on CPU and
a CUDA handler on NVIDIA GPUs (when the extension was built with nvcc). Elsewhere
it runs :func:`puff_advantage_reference`, the same computation as a reverse
``lax.scan``, under the fallback policy of :mod:`puffjax.kernels`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from puffjax import kernels

__all__ = ["puff_advantage", "puff_advantage_reference"]

_ARG_NAMES = ("values", "rewards", "terminals", "ratio")
_ATTR_NAMES = ("gamma", "gae_lambda", "rho_clip", "c_clip")

# ----------------------------------------------------------------------------
# Argument checking


def _check_arrays(fn: str, arrays) -> None:
    """ValueError naming the argument and the expected shape/dtype."""
    for name, x in zip(_ARG_NAMES, arrays):
        dtype = getattr(x, "dtype", None)
        if dtype is None:
            dtype = np.asarray(x).dtype
        if np.dtype(dtype) != np.float32:
            raise ValueError(
                f"{fn}: `{name}` must be a float32 array of shape [S, H]; got dtype {dtype} "
                f"(convert with .astype(jnp.float32))"
            )
    shape = tuple(np.shape(arrays[0]))
    if len(shape) != 2:
        raise ValueError(
            f"{fn}: `values` must have rank 2, shape [S, H] (segments, horizon); got shape "
            f"{shape}. Use jax.vmap for extra leading batch dimensions."
        )
    for name, x in zip(_ARG_NAMES[1:], arrays[1:]):
        if tuple(np.shape(x)) != shape:
            raise ValueError(
                f"{fn}: `{name}` must have the same shape as `values`, [S, H] = {shape}; "
                f"got shape {tuple(np.shape(x))}"
            )
    if shape[1] < 2:
        raise ValueError(
            f"{fn}: the horizon H = `values`.shape[1] must be >= 2 (shape [S, H]); got shape "
            f"{shape}"
        )


_Tracer = getattr(jax.core, "Tracer", None)


def _static_attr(fn: str, name: str, x) -> np.float32:
    traced = _Tracer is not None and isinstance(x, _Tracer)
    if not traced:
        try:
            return np.float32(float(x))
        except jax.errors.ConcretizationTypeError:
            traced = True
        except (TypeError, ValueError) as e:
            raise TypeError(f"{fn}: `{name}` must be a Python float; got {x!r}") from e
    raise TypeError(
        f"{fn}: `{name}` must be a concrete Python float: it is a compile-time attribute "
        f"of the XLA custom call (changing it recompiles), but a traced value was passed "
        f"({x}). Pass it as a Python float (e.g. close over it, or mark it static in "
        f"jax.jit), or use puff_advantage_reference, which accepts traced values."
    )


# ----------------------------------------------------------------------------
# Implementations


def _reference_impl(values, rewards, terminals, ratio, gamma, gae_lambda, rho_clip, c_clip):
    """Reverse lax.scan over the last axis; any leading dims are rows."""
    nnt = 1.0 - terminals[..., 1:]
    q = ratio[..., :-1]
    rho = jnp.minimum(q, rho_clip)  # XLA min propagates NaN
    c = jnp.minimum(q, c_clip)
    delta = rho * (rewards[..., 1:] + gamma * values[..., 1:] * nnt - values[..., :-1])
    coef = (gamma * gae_lambda) * c * nnt

    def step(carry, x):
        d_t, c_t = x
        a_t = d_t + c_t * carry
        return a_t, a_t

    init = jnp.zeros(values.shape[:-1], values.dtype)
    xs = (jnp.moveaxis(delta, -1, 0), jnp.moveaxis(coef, -1, 0))
    _, adv = lax.scan(step, init, xs, reverse=True)
    adv = jnp.moveaxis(adv, 0, -1)
    return jnp.concatenate([adv, jnp.zeros_like(values[..., :1])], axis=-1)


def _ffi_impl(values, rewards, terminals, ratio, *, gamma, gae_lambda, rho_clip, c_clip):
    """One custom call, the same on every platform with a handler (the CUDA handler picks its
    lanes per row from H itself). Attributes must be np.float32 (an F64 attribute fails at
    run time)."""
    call = jax.ffi.ffi_call(
        kernels.ADVANTAGE,
        jax.ShapeDtypeStruct(values.shape, jnp.float32),
        # Under vmap all arguments are broadcast to the batched shape and the
        # handler treats the extra leading dims as more rows: still one call.
        vmap_method="broadcast_all",
    )
    return call(values, rewards, terminals, ratio, gamma=gamma, gae_lambda=gae_lambda,
                rho_clip=rho_clip, c_clip=c_clip)


def puff_advantage_reference(values, rewards, terminals, ratio, *, gamma, gae_lambda,
                             rho_clip, c_clip):
    """Pure-JAX puff advantage (a reverse ``lax.scan``); same contract as :func:`puff_advantage`.

    Unlike :func:`puff_advantage`, the hyperparameters may be traced values, and
    the result is differentiable (gradients flow through the scan).
    """
    arrays = (values, rewards, terminals, ratio)
    _check_arrays("puff_advantage_reference", arrays)
    arrays = tuple(jnp.asarray(x) for x in arrays)
    return _reference_impl(*arrays, gamma, gae_lambda, rho_clip, c_clip)


def puff_advantage(values, rewards, terminals, ratio, *, gamma, gae_lambda, rho_clip,
                   c_clip):
    """Puff advantage (GAE with V-trace clipping) as an XLA FFI custom call.

    Args:
      values, rewards, terminals, ratio: float32 arrays of identical shape
        ``[S, H]`` (rank exactly 2, H >= 2). Rewards and terminals are read at
        ``t + 1`` (they arrived with observation ``t + 1``); ``ratio`` is the
        importance ratio pi/mu of the action at ``t``.
      gamma, gae_lambda, rho_clip, c_clip: Python floats. They are compile-time
        attributes of the custom call (passed as float32); a new value compiles
        a new executable. Passing a traced value raises ``TypeError``.

    Returns:
      advantages, float32 ``[S, H]``; ``advantages[:, H-1] == 0``.

    Works under ``jax.jit``, inside ``lax.scan``/``fori_loop``, and under
    ``jax.vmap`` with any mix of batched and unbatched arguments: the batch
    dimensions become more rows of ONE custom call.

    Gradients: the result is a constant for differentiation. Its inputs go
    through ``lax.stop_gradient``, so ``jax.grad``/``jax.jvp`` of a function that
    calls it work and see zero derivative through the advantages.

    Bad input (non-float32, wrong rank, mismatched shapes, H < 2) raises
    ``ValueError`` at trace time naming the argument. Non-finite inputs give
    NaN/inf in the affected rows (from the NaN position back to t = 0), never a
    crash.

    Platforms: the C++ handler on CPU; the CUDA handler on NVIDIA GPUs if the
    extension was built with CUDA; :func:`puff_advantage_reference` elsewhere.
    Fallback policy (:mod:`puffjax.kernels`): without the extension
    ``puffjax._ffi``, on CPU or an NVIDIA GPU, one ``RuntimeWarning`` naming it and
    how to build it; on an NVIDIA GPU with a build made without nvcc, one
    ``RuntimeWarning``; on TPU, ROCm or other platforms (no kernel by design),
    silently. Each fallback gives the reference's result.
    """
    fn = "puff_advantage"
    arrays = (values, rewards, terminals, ratio)
    _check_arrays(fn, arrays)
    attrs = {name: _static_attr(fn, name, x)
             for name, x in zip(_ATTR_NAMES, (gamma, gae_lambda, rho_clip, c_clip))}
    arrays = tuple(lax.stop_gradient(jnp.asarray(x)) for x in arrays)
    reference = functools.partial(_reference_impl, **attrs)

    platforms = kernels.kernel_platforms(fn, kernels.ADVANTAGE)
    if not platforms:
        return reference(*arrays)
    branches = {p: functools.partial(_ffi_impl, **attrs) for p in platforms}
    # Resolved when lowering: only the branch of the target platform is emitted.
    return lax.platform_dependent(*arrays, default=reference, **branches)
