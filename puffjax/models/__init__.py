"""Policies: Flax (linen) networks composed as encoder -> core -> action head and value head.

:func:`make_policy` builds a :class:`Policy` for a (per-agent) gymnasium observation and action
space; :func:`policy_from_config` does it from a config's ``policy`` section. The parameters are
a plain nested dict pytree (what checkpoints save); every method of the policy is a pure
function of the parameters and arrays.

Kinds (``policy.kind``): the encoder (:mod:`puffjax.models.encoders`) and the core
(:mod:`puffjax.models.cores`) between it and the heads.

==============  =======  ========================================================
kind            encoder  core
==============  =======  ========================================================
``default``     MLP      ``layers - 1`` more Dense + GELU layers
``lstm``        MLP      ``layers`` LSTM layers (:func:`puffjax.lstm.lstm`)
``mingru``      MLP      ``layers`` minGRU layers (:func:`puffjax.mingru.mingru`)
``cnn``         CNN      as ``default``
``cnn_lstm``    CNN      as ``lstm``
``cnn_mingru``  CNN      as ``mingru``
==============  =======  ========================================================

The MLP encoder is PufferLib's Default policy, ``Dense(hidden)`` + exact GELU on the
flattened observation; any supported observation space works (structured spaces are encoded
by :func:`encode_observation`). The CNN encoder takes an image ``[H, W, C]`` or a grid
``[H, W]``. The action head follows the action space and the value head is scalar or
categorical (:mod:`puffjax.models.heads`).

Initialisation (PufferLib's ``layer_init``): every Dense / Conv kernel is orthogonal, with
gain sqrt(2) for the encoder and feed-forward layers, 0.01 for the action head and 1.0 for the
value head and the recurrent layers; biases are 0, except a categorical value head's (the log
of the HL-Gauss target of 0, so its first estimates are near 0).

Observations are cast to float32; when the observation *space* has dtype uint8 they are also
divided by the space's upper bound (decided from the space, so rollout and training agree
whatever array dtype the buffer holds).
"""

from puffjax.config import POLICY_KINDS as KINDS
from puffjax.config import VALUE_HEADS
from puffjax.models.encoders import encode_observation
from puffjax.models.policy import STAGES, Network, Policy, PolicyOutput, count_params, make_policy, \
    policy_from_config

__all__ = ["PolicyOutput", "Policy", "Network", "make_policy", "policy_from_config", "count_params",
           "encode_observation", "KINDS", "STAGES", "VALUE_HEADS"]
