"""puffjax: fast C environments and a small, jitted PPO-family trainer in JAX.

Pure pieces you can import without the trainer: :func:`puff_advantage`, the loss functions in
:mod:`puffjax.losses`, the distributional value head in :mod:`puffjax.distributional`, the
action distributions in :mod:`puffjax.distributions`, the LSTM recurrence
``puffjax.lstm.lstm`` (a fused kernel on CPU), :func:`make_policy`, :func:`make_optimizer`.
"""
from . import distributional, distributions, envs, losses, prioritized
from .advantage import puff_advantage, puff_advantage_reference
from .config import Config, load_config
from .evaluate import evaluate
from .models import make_policy
from .optim import make_optimizer
from .trainer import Trainer

__all__ = [
    "Config", "Trainer", "distributional", "distributions", "envs", "evaluate", "load_config", "losses",
    "make_optimizer", "make_policy", "prioritized", "puff_advantage", "puff_advantage_reference",
]
__version__ = "0.1.0"
