"""puffjax: fast C environments and a small, jitted PPO-family trainer in JAX.

Pure pieces you can import without the trainer: :func:`puff_advantage`, the loss functions in
:mod:`puffjax.losses`, the categorical value head in :mod:`puffjax.value_head`, the action
distributions in :mod:`puffjax.actions`, the LSTM recurrence ``puffjax.lstm.lstm`` (a fused
kernel on CPU), :func:`make_policy`, :func:`make_optimizer`, prioritized replay in
:mod:`puffjax.prioritized`. Hyperparameter sweeps on Optuna: :func:`sweep` (``puffjax sweep``).
Learning curves of run directories: :func:`puffjax.plot.plot_runs` (matplotlib is imported
when it draws, not with puffjax).
"""
from . import actions, envs, losses, parallel, plot, prioritized, value_head
from .advantage import puff_advantage, puff_advantage_reference
from .compile_cache import enable_compile_cache
from .config import Config, load_config, load_config_file, parse_overrides, run_config
from .evaluate import evaluate
from .finite import NonFiniteError
from .heap import keep_freed_memory
from .models import make_policy
from .ondevice import OnDevice, make_train
from .optim import make_optimizer
from .sweep import sweep
from .trainer import Trainer
from .update import Hyper

__all__ = [
    "Config", "Hyper", "NonFiniteError", "OnDevice", "Trainer", "actions", "enable_compile_cache", "envs", "evaluate", "keep_freed_memory",
    "load_config", "load_config_file", "losses", "make_optimizer", "make_train", "make_policy", "parallel", "parse_overrides", "plot",
    "prioritized", "puff_advantage", "puff_advantage_reference", "run_config", "sweep", "value_head",
]
__version__ = "0.1.0"
