"""The policy: an encoder -> core -> heads network behind a small functional boundary.

:class:`Network` composes the three stages (:mod:`puffjax.models.encoders`,
:mod:`puffjax.models.cores`, :mod:`puffjax.models.heads`) into one Flax module whose parameters
are a flat dict keyed by layer (``encoder``, ``conv_0``, ``dense_1``, ``lstm``, ``actor``,
``value``, ``log_std`` ...). :class:`Policy` wraps it: every method is a pure function of the
parameters and arrays. :func:`make_policy` picks the stages for a kind and a pair of spaces.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from puffjax import actions as _actions
from puffjax import value_head as _vh
from puffjax.config import ACTIVATIONS, CRITICS, VALUE_HEADS, policy_kind
from puffjax.models import cores, encoders, heads


class PolicyOutput(NamedTuple):
    """What a policy returns (a pytree).

    action_params: the action head's output for ``policy.dist`` (logits
      ``[..., n]``; tuple of logits; ``(mean, log_std)`` each ``[..., d]``; or both of the last two).
    value: ``[...]`` float32 value (the expected value for the categorical heads).
    value_logits: ``[..., num_bins]`` for the categorical heads, ``None`` for scalar.
    """

    action_params: Any
    value: jax.Array
    value_logits: jax.Array | None


class Network(nn.Module):
    """``obs [B, T, *obs_shape]`` (preprocessed float32), ``carry``, ``reset [B, T]`` ->
    ``(PolicyOutput [B, T], carry)``: the encoder on every observation, the core over time, then
    the action and value heads. The stages share this module's parameter scope, so their layers
    sit side by side in one flat parameter dict.

    With a separate critic (``critic_obs_encoder`` and ``critic_core`` set, feed-forward cores only)
    the value head reads its own tower (layers ``critic_encoder``, ``critic_dense_1`` ...) and the
    action head the first, so the actor's and the critic's features share no parameters."""

    obs_encoder: nn.Module  # [N, *obs_shape] -> [N, H]
    core: nn.Module  # (carry, [B, T, H], reset) -> (carry, [B, T, H])
    action_head: nn.Module  # [B, T, H] -> action params
    value_head: nn.Module  # [B, T, H] -> (value, value logits or None)
    critic_obs_encoder: nn.Module | None = None  # a separate critic's tower, or None: the heads share one
    critic_core: nn.Module | None = None

    def setup(self):
        for stage in (self.obs_encoder, self.core, self.action_head, self.value_head, self.critic_obs_encoder,
                      self.critic_core):
            if stage is not None:
                nn.share_scope(self, stage)

    def _tower(self, encoder, core, obs, carry, reset):
        b, t = obs.shape[:2]
        x = encoder(obs.reshape((b * t,) + obs.shape[2:]))
        return core(carry, x.reshape(b, t, -1), reset)

    def __call__(self, obs, carry, reset):
        carry, x = self._tower(self.obs_encoder, self.core, obs, carry, reset)
        action_params = self.action_head(x)
        if self.critic_obs_encoder is not None:
            _, x = self._tower(self.critic_obs_encoder, self.critic_core, obs, (), reset)
        value, value_logits = self.value_head(x)
        return PolicyOutput(action_params, value, value_logits), carry


@dataclasses.dataclass(frozen=True, eq=False)
class Policy:
    """A policy: a static description plus pure functions of a parameter pytree.

    The parameters are a plain nested dict (what checkpoints save). The object is immutable and
    hashes by identity, so it can be closed over inside ``jax.jit`` or be a static argument.
    Build one with :func:`make_policy`. Attributes: ``net`` (the :class:`Network`), ``dist`` (the
    action distribution, see :mod:`puffjax.actions`), ``support``
    (:class:`puffjax.value_head.Support` for the categorical value heads, else None),
    ``is_recurrent``, ``layers`` (recurrent layers, 0 for a feed-forward policy), ``kind``,
    ``value_head``, ``hidden_size``, ``critic`` and ``activation`` (:func:`make_policy`'s), ``obs_shape``, ``obs_dtype``, ``obs_layout`` (how the
    observation row flattens the space: ``obs_layout.unflatten`` gives a custom network the
    structure back); ``cache`` holds jitted functions built for this policy (e.g. evaluation
    steps), so they live and die with it.

    Carry and resets: ``step`` zeroes the carry rows whose ``reset`` flag is set *before*
    processing that observation; ``unroll`` starts from a zero carry and does the same before
    every time step ``t`` where ``reset[:, t]`` is set, so an episode boundary inside a segment
    starts from a fresh carry. ``step`` is ``unroll``'s computation for one time step, so the
    two agree by construction.
    """

    net: Network
    dist: Any
    support: Any
    is_recurrent: bool
    layers: int
    kind: str
    value_head: str
    hidden_size: int
    obs_shape: tuple[int, ...]
    obs_dtype: Any
    obs_scale: float  # uint8 observations are divided by the space's upper bound
    obs_layout: Any = None  # puffjax.envs.spaces.Layout
    critic: str = "shared"  # "separate": the value head has its own encoder and layers
    activation: str = "gelu"  # the MLP encoder's and feed-forward layers' activation
    cache: dict = dataclasses.field(default_factory=dict, repr=False)

    # -- helpers -----------------------------------------------------------
    def preprocess(self, obs):
        """The network's input: float32; uint8 observations are scaled into [0, 1] by the space's
        upper bound (1/255 for images, 1/2 for a grid of 0/1/2 cell codes); a structured space's
        row becomes :func:`puffjax.models.encode_observation`'s features."""
        if not self.obs_layout.plain:
            return encoders.encode_observation(self.obs_layout, obs)
        x = jnp.asarray(obs).astype(jnp.float32)
        return x * self.obs_scale if self.obs_scale != 1.0 else x

    def initial_carry(self, batch_size: int):
        """Zero carry for ``batch_size`` rows: one state per recurrent layer, ``(c, h)`` (LSTM)
        or ``h`` (minGRU), each ``[B, hidden]``; ``()`` for a feed-forward policy."""
        return self.net.core.initial_carry(batch_size)

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


# kind -> (encoder, recurrent layer of the core; None: a feed-forward core)
STAGES = {
    "default": (encoders.MLPEncoder, None),
    "lstm": (encoders.MLPEncoder, cores.LSTM),
    "mingru": (encoders.MLPEncoder, cores.MinGRU),
    "cnn": (encoders.CNNEncoder, None),
    "cnn_lstm": (encoders.CNNEncoder, cores.LSTM),
    "cnn_mingru": (encoders.CNNEncoder, cores.MinGRU),
}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"make_policy: {name} must be a positive integer, got {value!r}")
    return int(value)


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
    critic: str = "shared",
    activation: str = "gelu",
) -> Policy:
    """Build a :class:`Policy` for per-agent gymnasium spaces.

    The kind picks the encoder and the core: ``"default"`` (MLP encoder), ``"lstm"`` and
    ``"mingru"`` (MLP encoder, then LSTM or minGRU layers), ``"cnn"``, ``"cnn_lstm"`` and
    ``"cnn_mingru"`` (the same on a CNN encoder). The action space picks the action head, and
    ``value_head`` the value head (:mod:`puffjax.models.heads`).

    Args:
      observation_space: any space :func:`puffjax.envs.observation_layout` supports for the
        MLP kinds (a Box of any shape; Dict, Tuple, Discrete, MultiDiscrete and MultiBinary
        spaces are one-hot / flattened by :func:`puffjax.models.encode_observation`); an image
        Box ``[H, W, C]`` or a grid ``[H, W]`` for the CNN kinds.
      action_space: any space :func:`puffjax.actions.for_space` supports (``Discrete``,
        ``MultiDiscrete``, ``MultiBinary``, float ``Box``, and Dict / Tuple of those).
      kind: one of :data:`puffjax.config.POLICY_KINDS`; a renamed kind (``"recurrent"``,
        ``"cnn_recurrent"``) is taken under its new name with a FutureWarning.
      hidden_size: the encoder's output width and the core's width (the recurrent state size).
      layers: recurrent layers (recurrent kinds), or Dense layers counting the encoder's
        (feed-forward kinds: ``layers - 1`` more ``Dense(hidden_size)`` + GELU).
      value_head: ``"scalar"``, ``"hl_gauss"`` or ``"two_hot"``.
      num_bins, v_min, v_max, symlog: the categorical heads' support (ignored for scalar).
      critic: ``"shared"`` (the action and value heads read one trunk, PufferLib's way) or
        ``"separate"`` (the value head reads its own encoder and dense layers of the same
        shape, as CleanRL's and PureJaxRL's actor-critics do; feed-forward kinds only).
      activation: ``"gelu"`` (exact), ``"relu"`` or ``"tanh"``, after the MLP encoder and each
        feed-forward dense layer (the CNN's convolutions and its encoder layer keep ReLU).

    Raises:
      TypeError / ValueError naming the unsupported space or bad argument.
    """
    kind = policy_kind(kind, "make_policy: kind")
    if value_head not in VALUE_HEADS:
        raise ValueError(f"make_policy: value_head must be one of {VALUE_HEADS}, got {value_head!r}")
    hidden_size = _positive_int("hidden_size", hidden_size)
    encoder, layer = STAGES[kind]
    layout = encoders.observation_layout(observation_space, kind if encoder is encoders.CNNEncoder else None)
    dist = _actions.for_space(action_space)
    support = None if value_head == "scalar" else _vh.make_support(v_min, v_max, num_bins, symlog=symlog)
    layers = _positive_int("layers", layers)
    if critic not in CRITICS:
        raise ValueError(f"make_policy: critic must be one of {CRITICS}, got {critic!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"make_policy: activation must be one of {ACTIVATIONS}, got {activation!r}")
    if critic == "separate" and layer is not None:
        raise ValueError(f"make_policy: critic='separate' needs a feed-forward kind (default, cnn), got {kind!r}")

    def tower(prefix=""):
        enc = (encoders.MLPEncoder(hidden_size, activation, prefix) if encoder is encoders.MLPEncoder
               else encoder(hidden_size, prefix))
        core = (cores.FeedForward(hidden_size, layers, activation, prefix) if layer is None
                else cores.Recurrent(layer, hidden_size, layers))
        return enc, core

    obs_encoder, core = tower()
    critic_encoder, critic_core = tower("critic_") if critic == "separate" else (None, None)
    net = Network(
        obs_encoder=obs_encoder,
        core=core,
        action_head=heads.action_head(dist),
        value_head=heads.value_head(support),
        critic_obs_encoder=critic_encoder,
        critic_core=critic_core,
    )
    return Policy(
        net=net,
        dist=dist,
        support=support,
        is_recurrent=layer is not None,
        layers=0 if layer is None else layers,
        kind=kind,
        value_head=value_head,
        hidden_size=hidden_size,
        obs_shape=layout.row_shape,
        obs_dtype=layout.dtype,
        obs_scale=1.0 / layout.leaves[0].high if layout.plain and layout.dtype == np.uint8 else 1.0,
        obs_layout=layout,
        critic=critic,
        activation=activation,
    )


def policy_from_config(policy_cfg, observation_space, action_space) -> Policy:
    """:func:`make_policy` from a config's ``policy`` section (:class:`puffjax.config.PolicyConfig`)."""
    p = policy_cfg
    return make_policy(observation_space, action_space, kind=p.kind, hidden_size=p.hidden_size, layers=p.layers,
                       value_head=p.value_head, num_bins=p.num_bins, v_min=p.v_min, v_max=p.v_max,
                       symlog=p.symlog, critic=p.critic, activation=p.activation)
