"""Observation encoders: a policy network's first stage, ``[N, *obs_shape]`` -> ``[N, hidden]``.

* :class:`MLPEncoder` (PufferLib's Default policy): the observation flattened,
  ``Dense(hidden)`` + exact GELU (``approximate=False``; ReLU or tanh by ``activation``).
* :class:`CNNEncoder`: a small Nature-CNN for images ``[H, W, C]`` (channels last; a 2-D
  ``[H, W]`` grid gets a channel axis). Images whose smaller side is >= 36 use Nature-CNN's
  8x8/4, 4x4/2, 3x3/1 VALID convolutions (32, 64, 64 filters); smaller grids (e.g. 11x11) use
  3x3/1 and 3x3/2 SAME convolutions (32, 64 filters). ReLU after each convolution, then
  flatten, ``Dense(hidden)`` + ReLU.

Parameters: ``encoder`` (the Dense layer) and, for the CNN, ``conv_0``, ``conv_1`` ...; kernels
are orthogonal with gain sqrt(2), biases 0. An encoder built with ``prefix="critic_"`` names its
layers ``critic_encoder``, ``critic_conv_0`` ... (a separate critic's tower).

Observations that are not a plain Box (``Dict``, ``Tuple``, ``Discrete``, ``MultiDiscrete``,
``MultiBinary``) arrive as one flat row (:mod:`puffjax.envs.spaces`); :func:`encode_observation`
turns that row into the MLP encoder's input features.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from puffjax.envs import spaces as _spaces
from puffjax.models.layer_init import ACTIVATION_FNS, SQRT2, conv, dense


class MLPEncoder(nn.Module):
    """``[N, ...]`` -> ``[N, hidden_size]``: flatten, ``Dense(hidden_size)``, then the activation
    (exact GELU by default)."""

    hidden_size: int
    activation: str = "gelu"
    prefix: str = ""

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        return ACTIVATION_FNS[self.activation](dense(self.hidden_size, SQRT2, f"{self.prefix}encoder")(x))


class CNNEncoder(nn.Module):
    """``[N, H, W, C]`` or ``[N, H, W]`` -> ``[N, hidden_size]``: convolutions + ReLU (Nature-CNN's
    for images of side >= 36, two 3x3 ones for smaller grids), flatten, ``Dense(hidden_size)`` + ReLU."""

    hidden_size: int
    prefix: str = ""

    @nn.compact
    def __call__(self, x):
        if x.ndim == 3:  # [N, H, W] grid -> one channel
            x = x[..., None]
        if min(x.shape[1:3]) >= 36:
            convs = ((32, 8, 4, "VALID"), (64, 4, 2, "VALID"), (64, 3, 1, "VALID"))
        else:
            convs = ((32, 3, 1, "SAME"), (64, 3, 2, "SAME"))
        for i, (features, size, stride, padding) in enumerate(convs):
            x = nn.relu(conv(features, size, stride, padding, f"{self.prefix}conv_{i}")(x))
        x = x.reshape(x.shape[0], -1)
        return nn.relu(dense(self.hidden_size, SQRT2, f"{self.prefix}encoder")(x))


def observation_layout(space, cnn_kind: str | None = None):
    """The layout of an observation space (:func:`puffjax.envs.observation_layout`). ``cnn_kind``:
    the policy kind when the encoder is a CNN, which needs an image Box ``[H, W, C]`` or a 2-D
    grid ``[H, W]`` (a ValueError naming that kind otherwise)."""
    layout = _spaces.observation_layout(space)
    if cnn_kind and not (layout.plain and len(layout.row_shape) in (2, 3)):
        raise ValueError(f"kind={cnn_kind!r} needs an image observation Box [H, W, C] or a 2-D grid [H, W], "
                         f"got {space}")
    return layout


def encode_observation(layout, rows):
    """The MLP encoder's input for a flattened (structured) observation: float32
    ``[..., features]``, each leaf in order: a Box as its values (uint8 Boxes divided by their
    upper bound), ``Discrete`` / ``MultiDiscrete`` elements one-hot (``value - start`` over
    ``n``), ``MultiBinary`` as 0/1. Jittable; ``layout``: :func:`puffjax.envs.observation_layout`."""
    x = jnp.asarray(rows)
    parts = []
    for leaf in layout.leaves:
        seg = x[..., leaf.offset:leaf.offset + leaf.size]
        if leaf.kind in ("discrete", "multi_discrete"):
            idx = seg.astype(jnp.int32) - np.asarray(leaf.start, np.int32)
            if len(set(leaf.nvec)) == 1:
                parts.append(jax.nn.one_hot(idx, leaf.nvec[0], dtype=jnp.float32).reshape(*idx.shape[:-1], -1))
            else:
                parts += [jax.nn.one_hot(idx[..., j], n, dtype=jnp.float32) for j, n in enumerate(leaf.nvec)]
        else:
            seg = seg.astype(jnp.float32)
            if leaf.dtype == "uint8" and leaf.high > 0:
                seg = seg * (1.0 / leaf.high)
            parts.append(seg)
    return jnp.concatenate(parts, axis=-1)
