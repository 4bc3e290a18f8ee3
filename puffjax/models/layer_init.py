"""PufferLib's ``layer_init`` for Flax (orthogonal kernels scaled by a gain, zero biases) and the
hidden layers' activations."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

SQRT2 = math.sqrt(2.0)  # the gain of hidden layers (PufferLib's default)
zeros = nn.initializers.zeros_init()


@jax.custom_batching.custom_vmap
def _qr(a):
    q, r = jnp.linalg.qr(a)
    return q, r


@_qr.def_vmap
def _qr_one_at_a_time(axis_size, in_batched, a):
    """A batch of QR factorisations as a loop of single ones. XLA's CPU runtime runs a batched QR
    (LAPACK through jaxlib) on its intra-op thread pool and blocks a pool thread until the batch
    is done; two such QRs started at once on a pool of two threads wait on each other for good.
    ``jax.vmap`` over seeds batches every layer's QR at initialisation, so each is a loop."""
    del axis_size, in_batched
    return jax.lax.map(_qr, a), (True, True)


def orthogonal(scale: float = 1.0):
    """``jax.nn.initializers.orthogonal(scale)``, the same values for the same key and shape,
    whose QR factorisations stay one matrix at a time under ``jax.vmap``."""
    def init(key, shape, dtype=jnp.float32):
        n_rows, n_cols = math.prod(shape) // shape[-1], shape[-1]
        z = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), dtype)
        q, r = _qr(z)
        q = q * jnp.sign(jnp.diagonal(r))[None, :]
        q = q.T if n_rows < n_cols else q
        return jnp.asarray(scale, dtype) * q.reshape(shape)
    return init

# policy.activation (its names: puffjax.config.ACTIVATIONS) -> the function after the MLP
# encoder's and the feed-forward core's Dense layers (exact GELU, as PufferLib's Default policy;
# ReLU and tanh, as CleanRL and PureJaxRL use them).
ACTIVATION_FNS = {
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "relu": nn.relu,
    "tanh": nn.tanh,
}


def dense(features: int, gain: float, name: str, bias_init=zeros) -> nn.Dense:
    """``Dense(features)`` with an orthogonal kernel of ``gain`` and a zero (or ``bias_init``) bias."""
    return nn.Dense(features, kernel_init=orthogonal(gain), bias_init=bias_init, name=name)


def conv(features: int, size: int, stride: int, padding: str, name: str) -> nn.Conv:
    """A square ``Conv`` with an orthogonal kernel of gain sqrt(2) and a zero bias."""
    return nn.Conv(features, (size, size), (stride, stride), padding=padding, kernel_init=orthogonal(SQRT2),
                   bias_init=zeros, name=name)
