"""The LSTM recurrence as a pure function, with a fused CPU kernel behind it.

    hs, (c, h) = lstm(gates_x, reset, w_h, (c0, h0))

``gates_x [B, T, 4H]`` is the input projection ``x @ W_x + b`` of all T steps (one large
matmul, done by the caller); gates are in the order i, f, g, o. Before step t the carry is
zeroed on the rows where ``reset[:, t]`` is set. ``hs [B, T, H]`` are the hidden states,
``(c, h)`` the carry after the last step.

On CPU the recurrence is one XLA FFI custom call per direction (``xla_ext/lstm_cpu.cc``):
XLA's CPU backend runs a ``lax.scan`` step as a chain of small thunks, which for a training
minibatch of Breakout's LSTM config would take most of the training time. Its gradient is a ``custom_vjp``:
the kernel returns the gradient of the pre-activation gates, and the weight gradient is one
large matmul. Elsewhere (GPU), for float64, or for H not a multiple of 16 the same function
runs as :func:`lstm_reference`, under the fallback policy of :mod:`puffjax.kernels`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from puffjax import kernels

__all__ = ["lstm", "lstm_reference", "has_kernel"]

_FORWARD, _BACKWARD = kernels.LSTM_FORWARD, kernels.LSTM_BACKWARD


def has_kernel() -> bool:
    """True when the fused CPU kernel is built and registered (by puffjax.kernels, at import)."""
    return all("cpu" in kernels.platforms(t) for t in (_FORWARD, _BACKWARD))


def _cell(w_h, carry, gx_t, reset_t):
    c, h = (jnp.where(reset_t[:, None], 0.0, v) for v in carry)
    i, f, g, o = jnp.split(gx_t + h @ w_h, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (c, h), h


def lstm_reference(gates_x, reset, w_h, carry):
    """The recurrence as a ``lax.scan`` (differentiated by JAX); same contract as :func:`lstm`."""
    step = lambda carry, xs: _cell(w_h, carry, *xs)
    if gates_x.shape[1] == 1:  # a rollout step: no loop at all
        carry, h = step(carry, (gates_x[:, 0], reset[:, 0]))
        return h[:, None], carry
    carry, hs = lax.scan(step, carry, (gates_x.swapaxes(0, 1), reset.swapaxes(0, 1)))
    return hs.swapaxes(0, 1), carry


def _f32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _forward_call(gates_x, reset, w_h, c0, h0, residuals: bool):
    b, t, g = gates_x.shape
    acts = _f32(b, t, g) if residuals else _f32(0)  # the backward pass's residuals, or nothing
    call = jax.ffi.ffi_call(_FORWARD, (_f32(b, t, g // 4), _f32(b, t, g // 4), acts),
                            vmap_method="sequential")
    return call(gates_x, reset, w_h, c0, h0)


@jax.custom_vjp
def _lstm_kernel(gates_x, reset, w_h, c0, h0):
    hs, cs, _ = _forward_call(gates_x, reset, w_h, c0, h0, residuals=False)
    return hs, (cs[:, -1], hs[:, -1])


def _lstm_kernel_fwd(gates_x, reset, w_h, c0, h0):
    hs, cs, acts = _forward_call(gates_x, reset, w_h, c0, h0, residuals=True)
    return (hs, (cs[:, -1], hs[:, -1])), (reset, w_h, c0, h0, hs, cs, acts)


def _lstm_kernel_bwd(res, cotangents):
    reset, w_h, c0, h0, hs, cs, acts = res
    dhs, (dc_t, dh_t) = cotangents
    b, t, g = acts.shape
    call = jax.ffi.ffi_call(_BACKWARD, (_f32(b, t, g), _f32(b, g // 4), _f32(b, g // 4)),
                            vmap_method="sequential")
    dgx, dc0, dh0 = call(dhs, dc_t, dh_t, acts, cs, c0, reset, w_h)
    # dW_h = sum over b, t of h_{t-1}^T dgx_t, with h_{t-1} as the step saw it (zero after a reset).
    h_prev = jnp.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    h_prev = jnp.where(reset[..., None], 0.0, h_prev)
    dw_h = jnp.einsum("bth,btg->hg", h_prev, dgx)
    return dgx, None, dw_h, dc0, dh0


_lstm_kernel.defvjp(_lstm_kernel_fwd, _lstm_kernel_bwd)


def lstm(gates_x, reset, w_h, carry):
    """LSTM recurrence over ``T`` steps.

    Args:
      gates_x: ``[B, T, 4H]`` input projections (``x @ W_x + b``), gates i, f, g, o.
      reset: ``[B, T]`` bool; where set, the carry is zeroed before that step.
      w_h: ``[H, 4H]`` recurrent kernel.
      carry: ``(c0, h0)``, each ``[B, H]``.

    Returns:
      ``(hs [B, T, H], (c, h))``. Differentiable in ``gates_x``, ``w_h`` and ``carry`` in
      reverse mode (``grad``, ``vjp``); on CPU the kernel's ``custom_vjp`` has no forward
      mode, so ``jvp``/``jacfwd`` need :func:`lstm_reference`.

    Raises:
      ValueError naming the argument whose shape does not fit ``gates_x``.

    Platforms: the fused kernel on CPU for float32 with H a multiple of 16;
    :func:`lstm_reference` otherwise. Fallback policy (:mod:`puffjax.kernels`): without the
    extension ``puffjax._ffi``, on CPU, one ``RuntimeWarning`` naming it and how to build it;
    on GPUs, TPUs and other platforms, for float64 or other H (no kernel by design),
    silently. Each fallback gives the reference's result.
    """
    gates_x, w_h = jnp.asarray(gates_x), jnp.asarray(w_h)
    reset = jnp.asarray(reset).astype(bool)
    c0, h0 = (jnp.asarray(x) for x in carry)
    if gates_x.ndim != 3 or gates_x.shape[-1] % 4:
        raise ValueError(f"lstm: gates_x must be [B, T, 4H], got shape {gates_x.shape}")
    b, t, g = gates_x.shape
    h = g // 4
    for name, x, want in (("reset", reset, (b, t)), ("w_h", w_h, (h, g)), ("c0", c0, (b, h)),
                          ("h0", h0, (b, h))):
        if x.shape != want:
            raise ValueError(f"lstm: {name} must have shape {want} for gates_x {gates_x.shape}, "
                             f"got {x.shape}")
    if t == 0:
        raise ValueError("lstm: gates_x has no time steps (T = 0)")
    dtypes = {x.dtype for x in (gates_x, w_h, c0, h0)}
    if h % 16 or dtypes != {jnp.dtype(jnp.float32)}:  # no kernel for these: the scan, silently
        return lstm_reference(gates_x, reset, w_h, (c0, h0))
    platforms = kernels.kernel_platforms("lstm", _FORWARD, _BACKWARD)
    if not platforms:
        return lstm_reference(gates_x, reset, w_h, (c0, h0))
    reference = lambda gx, r, w, c, hh: lstm_reference(gx, r, w, (c, hh))
    # Resolved when lowering: the kernel on CPU, the scan on any other platform.
    return lax.platform_dependent(gates_x, reset, w_h, c0, h0, default=reference,
                                  **{p: _lstm_kernel for p in platforms})
