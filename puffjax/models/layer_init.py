"""PufferLib's ``layer_init`` for Flax (orthogonal kernels scaled by a gain, zero biases) and the
hidden layers' activations."""

from __future__ import annotations

import math

import flax.linen as nn

SQRT2 = math.sqrt(2.0)  # the gain of hidden layers (PufferLib's default)
orthogonal = nn.initializers.orthogonal
zeros = nn.initializers.zeros_init()

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
