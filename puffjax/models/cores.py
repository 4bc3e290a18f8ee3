"""Cores: the stage between a policy's encoder and its heads, ``(carry, x [B, T, H], reset [B, T])
-> (carry, y [B, T, H])``.

* :class:`FeedForward`: ``layers - 1`` more ``Dense(H)`` + exact GELU (or ReLU, tanh) layers on
  each time step (none for ``layers = 1``); the carry is ``()``.
* :class:`Recurrent` of :class:`LSTM` or :class:`MinGRU` layers: ``layers`` recurrent layers of
  ``H`` units, each feeding the next; the carry holds one state per layer.

A recurrent layer zeroes the state rows whose ``reset`` flag is set before it processes that
time step, so an episode boundary inside a segment starts from a fresh state. Each core's
``initial_carry(batch_size)`` is its zero carry.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from puffjax.lstm import lstm
from puffjax.mingru import mingru
from puffjax.models.layer_init import ACTIVATION_FNS, SQRT2, dense, orthogonal, zeros


class FeedForward(nn.Module):
    """``layers - 1`` ``Dense(features)`` + activation layers (exact GELU by default; parameters
    ``dense_1``, ``dense_2`` ..., or ``critic_dense_1`` ... with ``prefix="critic_"``;
    orthogonal gain sqrt(2), zero bias) on every time step; no carry."""

    features: int
    layers: int
    activation: str = "gelu"
    prefix: str = ""

    def initial_carry(self, batch_size: int):
        del batch_size
        return ()

    @nn.compact
    def __call__(self, carry, x, reset):
        del reset
        b, t, _ = x.shape
        x = x.reshape(b * t, -1)
        for i in range(1, self.layers):
            x = ACTIVATION_FNS[self.activation](dense(self.features, SQRT2, f"{self.prefix}dense_{i}")(x))
        return carry, x.reshape(b, t, self.features)


class LSTM(nn.Module):
    """One LSTM layer over ``[B, T, in]`` with fused gate matrices (PufferLib's layout: one
    ``kernel_x`` (in, 4H), one ``kernel_h`` (H, 4H), one ``bias`` (4H), gates i, f, g, o; kernels
    orthogonal with gain 1, bias 0, as PufferLib initialises its ``nn.LSTM``). The state is
    ``(c, h)``, each ``[B, H]``.

    The input projection of all T steps is one matmul outside the time loop; the recurrence is
    :func:`puffjax.lstm.lstm` (a fused kernel on CPU, ``lax.scan`` elsewhere).
    """

    features: int
    prefix = "lstm"  # the parameters of layer i are named lstm, lstm_1, lstm_2 ...

    @staticmethod
    def zero_state(batch_size: int, features: int):
        z = jnp.zeros((batch_size, features), jnp.float32)
        return z, z

    @nn.compact
    def __call__(self, state, x, reset):
        b, t, _ = x.shape
        h4 = 4 * self.features
        w_x = self.param("kernel_x", orthogonal(1.0), (x.shape[-1], h4))
        w_h = self.param("kernel_h", orthogonal(1.0), (self.features, h4))
        bias = self.param("bias", zeros, (h4,))
        gates_x = (x.reshape(b * t, -1) @ w_x + bias).reshape(b, t, h4)
        hs, state = lstm(gates_x, reset, w_h, state)
        return state, hs


class MinGRU(nn.Module):
    """One minimal GRU layer over ``[B, T, in]``: ``proj``, one (in, 2H) Dense (orthogonal gain 1,
    zero bias), gives the gate and candidate pre-activations of all T steps in one matmul; the
    recurrence is :func:`puffjax.mingru.mingru` (gates from the input only, a parallel scan over
    time). The state is ``h [B, H]``."""

    features: int
    prefix = "mingru"  # the parameters of layer i are named mingru, mingru_1, mingru_2 ...

    @staticmethod
    def zero_state(batch_size: int, features: int):
        return jnp.zeros((batch_size, features), jnp.float32)

    @nn.compact
    def __call__(self, state, x, reset):
        b, t, _ = x.shape
        proj = dense(2 * self.features, 1.0, "proj")(x.reshape(b * t, -1)).reshape(b, t, 2 * self.features)
        z, candidate = jnp.split(proj, 2, axis=-1)
        hs, state = mingru(z, candidate, reset, state)
        return state, hs


class Recurrent(nn.Module):
    """``layers`` recurrent layers of the class ``layer`` (:class:`LSTM` or :class:`MinGRU`), each
    of ``features`` units feeding the next. The carry is a tuple of one state per layer."""

    layer: Any
    features: int
    layers: int

    def initial_carry(self, batch_size: int):
        return tuple(self.layer.zero_state(batch_size, self.features) for _ in range(self.layers))

    @nn.compact
    def __call__(self, carry, x, reset):
        states = []
        for i in range(self.layers):
            name = self.layer.prefix if i == 0 else f"{self.layer.prefix}_{i}"
            state, x = self.layer(self.features, name=name)(carry[i], x, reset)
            states.append(state)
        return tuple(states), x
