"""Policies: Flax (linen) networks behind a small functional boundary.

``make_policy`` builds a :class:`Policy` for a (per-agent) gymnasium observation
and action space. The policy's parameters are a plain nested dict pytree (what
checkpoints save); every method is a pure function of ``params`` and arrays, so
the :class:`Policy` object itself can be closed over inside ``jax.jit`` (it is
immutable and hashes by identity, so it may also be a static argument).

Architectures (``kind``):

* ``"default"``: PufferLib's Default policy. The observation is flattened,
  ``Dense(obs -> hidden)`` + exact GELU (``approximate=False``).
* ``"recurrent"``: the default encoder, then an LSTM (``hidden`` units, gates i, f, g, o in
  PufferLib's fused layout; the recurrence is :func:`puffjax.lstm.lstm`) between the
  encoder and the heads.
* ``"cnn"``: a small Nature-CNN encoder for image observations ``[H, W, C]``
  (channels last; a 2-D ``[H, W]`` grid gets a channel axis). Images whose
  smaller side is >= 36 use Nature-CNN's 8x8/4, 4x4/2, 3x3/1 VALID convolutions
  (32, 64, 64 filters); smaller grids (e.g. 11x11) use 3x3/1 and 3x3/2 SAME
  convolutions (32, 64 filters). ReLU after each conv, then flatten,
  ``Dense(hidden)`` + ReLU.
* ``"cnn_recurrent"``: the CNN encoder followed by the LSTM.
* ``"mingru"`` / ``"cnn_mingru"``: the MLP or CNN encoder, then a minimal GRU
  (:func:`puffjax.mingru.mingru`: gates from the input only, a parallel scan over time).

``layers`` sets the depth after the encoder: recurrent kinds stack ``layers`` recurrent layers
of ``hidden`` units; feed-forward kinds add ``layers - 1`` more ``Dense(hidden)`` + GELU layers
(``layers = 1``: the encoder alone).

Heads, on the ``hidden`` features:

* action head: ``Dense(hidden -> n)`` logits (Discrete), ``Dense(hidden ->
  sum(nvec))`` split into a tuple of logits (MultiDiscrete/MultiBinary), or the
  Gaussian mean ``Dense(hidden -> d)`` plus a state-independent learned
  ``log_std`` parameter ``[d]`` initialised to 0 (Box);
* value head: ``Dense(hidden -> 1)`` (``value_head="scalar"``) or
  ``Dense(hidden -> num_bins)`` logits over :func:`puffjax.value_head.make_support`
  (``"hl_gauss"`` or ``"two_hot"``: the categorical heads, which differ only in the target
  their loss uses), whose expected value is ``value``.

Initialisation (as PufferLib's ``layer_init``): every Dense/Conv kernel is
orthogonal with all biases 0; gains are sqrt(2) for the encoder layers (PufferLib's
``layer_init`` default), 0.01 for the action head, 1.0 for the value head. One exception: a
categorical value head's bias is the log of the HL-Gauss target of 0, so that its first
estimate is near 0, as the scalar head's is, not the middle of the support. The
LSTM's kernels (input and recurrent) are orthogonal with gain 1.0 and its bias is
0, as PufferLib initialises its ``nn.LSTM``.

Observations are cast to float32; when the observation *space* has dtype uint8 the
observation is also scaled by 1/255 (decided from the space, so rollout and
training always agree whatever array dtype the buffer holds).

Any other observation space (``Dict``, ``Tuple``, ``Discrete``, ``MultiDiscrete``,
``MultiBinary``) arrives as one flat row (:mod:`puffjax.envs.spaces`); the default encoder's
input is then :func:`encode_observation` of it (Box leaves as values, discrete leaves one-hot),
so the "default" and "recurrent" kinds take any supported space. ``policy.obs_layout.unflatten``
gives a custom network the structure back (jittable).

Carry and resets: the LSTM carry is ``(c, h)``, each ``[B, hidden]``
(``()`` for feed-forward policies). ``step`` zeroes the carry rows whose
``reset`` flag is set *before* processing that observation; ``unroll`` starts
from a zero carry and does the same before every time step ``t`` where
``reset[:, t]`` is set, so an episode boundary inside a segment starts from a
fresh carry (unlike PufferLib 3.0). ``step`` is literally ``unroll``'s scan run
for one time step, so the two agree by construction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from puffjax import actions as _actions
from puffjax.envs import spaces as _spaces
from puffjax import value_head as _vh
from puffjax.config import POLICY_KINDS as KINDS
from puffjax.config import VALUE_HEADS
from puffjax.lstm import lstm
from puffjax.mingru import mingru

__all__ = ["PolicyOutput", "Policy", "make_policy", "policy_from_config", "count_params", "KINDS",
           "VALUE_HEADS"]

_orth = nn.initializers.orthogonal
_zeros = nn.initializers.zeros_init()
_SQRT2 = math.sqrt(2.0)


class PolicyOutput(NamedTuple):
    """What a policy returns (a pytree).

    action_params: the action head's output for ``policy.dist`` (logits
      ``[..., n]``; tuple of logits; or ``(mean, log_std)`` each ``[..., d]``).
    value: ``[...]`` float32 scalar value (the expected value for hl_gauss).
    value_logits: ``[..., num_bins]`` for hl_gauss, ``None`` for scalar.
    """

    action_params: Any
    value: jax.Array
    value_logits: jax.Array | None


class _LSTM(nn.Module):
    """An LSTM over ``[B, T, in]`` with fused gate matrices (PufferLib's layout: one (in, 4H)
    input kernel, one (H, 4H) recurrent kernel, gates i, f, g, o), zeroing the carry rows
    whose reset flag is set before each step.

    The input projection of all T steps is one large matmul outside the time loop; the
    recurrence is :func:`puffjax.lstm.lstm` (a fused kernel on CPU, ``lax.scan`` elsewhere).
    """

    features: int

    @nn.compact
    def __call__(self, carry, x, reset):
        b, t, _ = x.shape
        h4 = 4 * self.features
        w_x = self.param("kernel_x", _orth(1.0), (x.shape[-1], h4))
        w_h = self.param("kernel_h", _orth(1.0), (self.features, h4))
        bias = self.param("bias", _zeros, (h4,))
        gates_x = (x.reshape(b * t, -1) @ w_x + bias).reshape(b, t, h4)
        hs, carry = lstm(gates_x, reset, w_h, carry)
        return carry, hs


class _MinGRU(nn.Module):
    """A minimal GRU over ``[B, T, in]``: one (in, 2H) kernel gives the gate and candidate
    pre-activations of all T steps in one matmul; the recurrence is :func:`puffjax.mingru.mingru`.
    The carry is ``h [B, H]``, zeroed on the rows whose reset flag is set before each step."""

    features: int

    @nn.compact
    def __call__(self, carry, x, reset):
        b, t, _ = x.shape
        proj = nn.Dense(2 * self.features, kernel_init=_orth(1.0), bias_init=_zeros, name="proj")(
            x.reshape(b * t, -1)).reshape(b, t, 2 * self.features)
        z, candidate = jnp.split(proj, 2, axis=-1)
        hs, h = mingru(z, candidate, reset, carry)
        return h, hs


_RECURRENT_LAYERS = {"lstm": _LSTM, "mingru": _MinGRU}


def _centred_value_bias(support):
    """Bias init of a categorical value head: the log of the HL-Gauss target of 0 (floored at 1e-6).

    A zero bias would make the first value estimate the support's middle (105 for [-10, 220]),
    every terminal TD error about -105, and the policy collapse before the critic recovers. This
    bias starts the head near 0, as the scalar head starts (0 is clipped into the support).
    """
    def init(key, shape, dtype=jnp.float32):
        del key
        probs = _vh.hl_gauss_target(jnp.zeros(()), support)
        return jnp.log(jnp.maximum(probs, 1e-6)).astype(dtype).reshape(shape)
    return init


class _Net(nn.Module):
    """The network on preprocessed float32 inputs ``[B, T, *obs_shape]``."""

    obs_shape: tuple[int, ...]
    encoder: str  # "mlp" | "cnn"
    recurrent: str  # "" | "lstm" | "mingru"
    layers: int  # recurrent layers; feed-forward: dense layers, the encoder's included
    hidden_size: int
    action_kind: str  # "categorical" | "multi" | "gaussian" | "mixed"
    num_action_params: int
    nvec: tuple[int, ...]
    value_bins: int  # 1 for a scalar head
    support: Any  # value_head.Support or None

    @nn.compact
    def __call__(self, obs, carry, reset):
        b, t = obs.shape[:2]
        x = obs.reshape((b * t,) + tuple(self.obs_shape))
        if self.encoder == "mlp":
            x = x.reshape(b * t, -1)
            x = nn.Dense(self.hidden_size, kernel_init=_orth(_SQRT2), bias_init=_zeros, name="encoder")(x)
            x = nn.gelu(x, approximate=False)
        else:
            if x.ndim == 3:  # [N, H, W] grid -> one channel
                x = x[..., None]
            if min(x.shape[1:3]) >= 36:
                convs = ((32, 8, 4, "VALID"), (64, 4, 2, "VALID"), (64, 3, 1, "VALID"))
            else:
                convs = ((32, 3, 1, "SAME"), (64, 3, 2, "SAME"))
            for i, (f, k, s, pad) in enumerate(convs):
                x = nn.Conv(f, (k, k), (s, s), padding=pad, kernel_init=_orth(_SQRT2),
                            bias_init=_zeros, name=f"conv_{i}")(x)
                x = nn.relu(x)
            x = x.reshape(b * t, -1)
            x = nn.Dense(self.hidden_size, kernel_init=_orth(_SQRT2), bias_init=_zeros, name="encoder")(x)
            x = nn.relu(x)
        for i in range(1, 1 if self.recurrent else self.layers):  # a deeper feed-forward network
            x = nn.Dense(self.hidden_size, kernel_init=_orth(_SQRT2), bias_init=_zeros, name=f"dense_{i}")(x)
            x = nn.gelu(x, approximate=False)
        x = x.reshape(b, t, self.hidden_size)

        if self.recurrent:  # the carry holds one state per layer
            layer = _RECURRENT_LAYERS[self.recurrent]
            states = []
            for i, state in enumerate(carry):
                name = self.recurrent if i == 0 else f"{self.recurrent}_{i}"  # layer 0 keeps its old name
                state, x = layer(self.hidden_size, name=name)(state, x, reset)
                states.append(state)
            carry = tuple(states)

        head = nn.Dense(self.num_action_params, kernel_init=_orth(0.01), bias_init=_zeros, name="actor")(x)
        if self.action_kind == "categorical":
            action_params = head
        elif self.action_kind == "multi":
            idx = np.cumsum(self.nvec)[:-1].tolist()
            action_params = tuple(jnp.split(head, idx, axis=-1))
        elif self.action_kind == "mixed":
            k = int(sum(self.nvec))
            idx = np.cumsum(self.nvec)[:-1].tolist()
            mean = head[..., k:]
            log_std = self.param("log_std", _zeros, (mean.shape[-1],), jnp.float32)
            action_params = (tuple(jnp.split(head[..., :k], idx, axis=-1)), (mean, jnp.broadcast_to(log_std, mean.shape)))
        else:
            log_std = self.param("log_std", _zeros, (self.num_action_params,), jnp.float32)
            action_params = (head, jnp.broadcast_to(log_std, head.shape))

        value_bias = _zeros if self.support is None else _centred_value_bias(self.support)
        v = nn.Dense(self.value_bins, kernel_init=_orth(1.0), bias_init=value_bias, name="value")(x)
        if self.support is None:
            out = PolicyOutput(action_params, v[..., 0], None)
        else:
            out = PolicyOutput(action_params, _vh.expected_value(v, self.support), v)
        return out, carry


@dataclasses.dataclass(frozen=True, eq=False)
class Policy:
    """A policy: static description + pure functions of a parameter pytree.

    Use :func:`make_policy` to build one. Attributes: ``dist`` (the action
    distribution, see :mod:`puffjax.actions`), ``support``
    (:class:`puffjax.value_head.Support` for the categorical value heads, else None),
    ``is_recurrent``, ``kind``, ``value_head``, ``hidden_size``,
    ``obs_shape``, ``obs_dtype``; ``cache`` holds jitted functions built for this
    policy (e.g. evaluation steps), so they live and die with it.
    """

    net: _Net
    dist: Any
    support: Any
    is_recurrent: bool
    recurrence: str  # "" | "lstm" | "mingru"
    layers: int
    kind: str
    value_head: str
    hidden_size: int
    obs_shape: tuple[int, ...]
    obs_dtype: Any
    obs_scale: float  # uint8 observations are divided by the space's upper bound
    obs_layout: Any = None  # puffjax.envs.spaces.Layout: how the observation row flattens the space
    cache: dict = dataclasses.field(default_factory=dict, repr=False)

    # -- helpers -----------------------------------------------------------
    def preprocess(self, obs):
        """Cast to float32; uint8 observations are scaled into [0, 1] by the space's upper
        bound (1/255 for images, 1/2 for a grid of 0/1/2 cell codes)."""
        if not self.obs_layout.plain:
            return encode_observation(self.obs_layout, obs)
        x = jnp.asarray(obs).astype(jnp.float32)
        return x * self.obs_scale if self.obs_scale != 1.0 else x

    def initial_carry(self, batch_size: int):
        """Zero carry for ``batch_size`` rows: one state per recurrent layer, ``(c, h)`` (LSTM)
        or ``h`` (minGRU), each ``[B, hidden]``; ``()`` for a feed-forward policy."""
        z = jnp.zeros((batch_size, self.hidden_size), jnp.float32)
        return tuple((z, z) if self.recurrence == "lstm" else z for _ in range(self.layers if self.is_recurrent else 0))

    def init(self, key):
        """Fresh parameters (a plain nested dict pytree)."""
        return jax.jit(self._init)(key)

    def _init(self, key):
        obs = self.preprocess(jnp.zeros((1, 1) + self.obs_shape, self.obs_dtype))
        reset = jnp.zeros((1, 1), bool)
        variables = self.net.init(key, obs, self.initial_carry(1), reset)
        return dict(variables["params"])

    def apply(self, params, obs, carry, reset):
        """Core: ``obs [B, T, *obs_shape]``, ``reset [B, T]`` -> ``(PolicyOutput [B, T], carry)``."""
        obs = self.preprocess(obs)
        b, t = obs.shape[:2]
        if reset is None:
            reset = jnp.zeros((b, t), bool)
        reset = jnp.asarray(reset).astype(bool)
        return self.net.apply({"params": params}, obs, carry, reset)

    # -- the contract ------------------------------------------------------
    def step(self, params, obs, carry, reset=None):
        """Rollout step: ``obs [B, *obs_shape]``, ``reset [B]`` bool.

        Zeroes the carry rows where ``reset`` is True, then processes ``obs``.
        Returns ``(PolicyOutput with [B] leading dims, new carry)``.
        """
        reset = None if reset is None else jnp.asarray(reset)[:, None]
        out, carry = self.apply(params, jnp.asarray(obs)[:, None], carry, reset)
        return jax.tree.map(lambda x: x[:, 0], out), carry

    def act(self, params, obs, carry, reset, key, deterministic: bool = False, agent_ids=None):
        """One acting step: :meth:`step`, then an action per row (or the distribution's mode
        when ``deterministic``). Returns ``(out, action, carry, next_key)``;
        ``self.dist.to_env_action(action)`` is what the environment takes.

        Row r samples with ``fold_in(sub, agent_ids[r])`` where ``next_key, sub = split(key)``
        (``agent_ids`` default ``0 .. B-1``): an agent's action depends on its own id, not on
        which rows share the call, so the rollout may step its agents in groups, on any number
        of devices, and draw exactly what one call over all of them draws."""
        out, carry = self.step(params, obs, carry, reset)
        next_key, sub = jax.random.split(key)
        if deterministic:
            return out, self.dist.mode(out.action_params), carry, next_key
        ids = jnp.arange(jnp.shape(obs)[0]) if agent_ids is None else agent_ids
        keys = jax.vmap(jax.random.fold_in, (None, 0))(sub, ids)
        action = jax.vmap(self.dist.sample)(keys, out.action_params)
        return out, action, carry, next_key

    def unroll(self, params, obs, reset=None, carry=None):
        """Training forward: ``obs [B, T, *obs_shape]``, ``reset [B, T]``.

        Starts from ``carry`` (default: zeros) and zeroes it before step ``t``
        where ``reset[:, t]``. Returns a PolicyOutput with ``[B, T]`` leading dims.
        """
        if carry is None:
            carry = self.initial_carry(jnp.shape(obs)[0])
        out, _ = self.apply(params, obs, carry, reset)
        return out


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params)))


def _obs_info(space, kind):
    """(layout, network input shape) of an observation space; cnn kinds need an image Box."""
    layout = _spaces.observation_layout(space)
    if kind.startswith("cnn") and not (layout.plain and len(layout.row_shape) in (2, 3)):
        raise ValueError(
            f"kind={kind!r} needs an image observation Box [H, W, C] or a 2-D grid [H, W], "
            f"got {space}")
    return layout, layout.row_shape if layout.plain else (_encoded_size(layout),)


def _encoded_size(layout) -> int:
    return sum(sum(leaf.nvec) if leaf.kind in ("discrete", "multi_discrete") else leaf.size for leaf in layout.leaves)


def encode_observation(layout, rows):
    """The default encoder's input for a flattened (structured) observation: float32
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


def make_policy(
    observation_space,
    action_space,
    *,
    kind: str = "default",
    hidden_size: int = 128,
    layers: int = 1,
    value_head: str = "scalar",
    num_bins: int = 101,
    v_min: float = -10.0,
    v_max: float = 10.0,
    symlog: bool = False,
) -> Policy:
    """Build a :class:`Policy` for per-agent gymnasium spaces.

    Args:
      observation_space: ``Box`` (any shape for default/recurrent; ``[H, W, C]``
        or ``[H, W]`` for cnn kinds) or ``MultiBinary``.
      action_space: ``Discrete``, ``MultiDiscrete``, ``MultiBinary`` or float ``Box``.
      kind: one of ``"default"``, ``"recurrent"``, ``"cnn"``, ``"cnn_recurrent"``.
      hidden_size: encoder width (and recurrent state size).
      layers: recurrent layers (recurrent kinds), or dense layers counting the encoder's
        (feed-forward kinds).
      value_head: ``"scalar"``, ``"hl_gauss"`` or ``"two_hot"``.
      num_bins, v_min, v_max, symlog: the categorical heads' support (ignored for scalar).

    Raises:
      TypeError / ValueError naming the unsupported space or bad argument.
    """
    if kind not in KINDS:
        raise ValueError(f"make_policy: kind must be one of {KINDS}, got {kind!r}")
    if value_head not in VALUE_HEADS:
        raise ValueError(f"make_policy: value_head must be one of {VALUE_HEADS}, got {value_head!r}")
    if isinstance(hidden_size, bool) or int(hidden_size) != hidden_size or hidden_size < 1:
        raise ValueError(f"make_policy: hidden_size must be a positive integer, got {hidden_size!r}")
    hidden_size = int(hidden_size)
    layout, net_shape = _obs_info(observation_space, kind)
    dist = _actions.for_space(action_space)

    if isinstance(dist, _actions.Categorical):
        action_kind, nvec = "categorical", ()
    elif isinstance(dist, _actions.MultiCategorical):
        action_kind, nvec = "multi", tuple(dist.nvec)
    elif isinstance(dist, _actions.Mixed):
        action_kind, nvec = "mixed", tuple(dist.discrete.nvec)
    else:
        action_kind, nvec = "gaussian", ()

    if value_head != "scalar":
        support = _vh.make_support(v_min, v_max, num_bins, symlog=symlog)
        value_bins = support.num_bins
    else:
        support, value_bins = None, 1

    if isinstance(layers, bool) or int(layers) != layers or layers < 1:
        raise ValueError(f"make_policy: layers must be a positive integer, got {layers!r}")
    recurrence = {"recurrent": "lstm", "cnn_recurrent": "lstm", "mingru": "mingru", "cnn_mingru": "mingru"}.get(kind, "")
    recurrent = bool(recurrence)
    net = _Net(
        obs_shape=net_shape,
        encoder="cnn" if kind.startswith("cnn") else "mlp",
        recurrent=recurrence,
        layers=int(layers),
        hidden_size=hidden_size,
        action_kind=action_kind,
        num_action_params=dist.num_params,
        nvec=nvec,
        value_bins=value_bins,
        support=support,
    )
    return Policy(
        net=net,
        dist=dist,
        support=support,
        is_recurrent=recurrent,
        recurrence=recurrence,
        layers=int(layers) if recurrent else 0,
        kind=kind,
        value_head=value_head,
        hidden_size=hidden_size,
        obs_shape=layout.row_shape,
        obs_dtype=layout.dtype,
        obs_scale=1.0 / layout.leaves[0].high if layout.plain and layout.dtype == np.uint8 else 1.0,
        obs_layout=layout,
    )


def policy_from_config(policy_cfg, observation_space, action_space) -> Policy:
    """:func:`make_policy` from a config's ``policy`` section (:class:`puffjax.config.PolicyConfig`)."""
    p = policy_cfg
    return make_policy(observation_space, action_space, kind=p.kind, hidden_size=p.hidden_size, layers=p.layers,
                       value_head=p.value_head, num_bins=p.num_bins, v_min=p.v_min, v_max=p.v_max,
                       symlog=p.symlog)
