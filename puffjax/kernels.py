"""The compiled XLA FFI kernels of puffjax, registered with JAX once, at import.

One extension module, ``puffjax._ffi`` (``xla_ext/ffi_module.cc``), holds every handler; its
``registrations()`` maps each platform to ``{target name: handler capsule}``:

=========================  =========  ===================================================
target                     platforms  used by
=========================  =========  ===================================================
``puffjax_puff_advantage``  cpu, CUDA  :func:`puffjax.advantage.puff_advantage`
``puffjax_lstm_forward``    cpu        :func:`puffjax.lstm.lstm`
``puffjax_lstm_backward``   cpu        :func:`puffjax.lstm.lstm` (its ``custom_vjp``)
=========================  =========  ===================================================

The CUDA handler is there only when the extension was built with nvcc. Importing this module
registers every handler the build has (``jax.ffi.register_ffi_target``; this does not start
a JAX backend); nothing registers them again.
"""
from __future__ import annotations

import jax

__all__ = ["ADVANTAGE", "LSTM_BACKWARD", "LSTM_FORWARD", "EXTENSION", "platforms"]

EXTENSION = "puffjax._ffi"
ADVANTAGE = "puffjax_puff_advantage"
LSTM_FORWARD = "puffjax_lstm_forward"
LSTM_BACKWARD = "puffjax_lstm_backward"

try:  # the compiled extension (xla_ext/); optional, every kernel has a pure-JAX reference
    from puffjax import _ffi as _ext

    IMPORT_ERROR: ImportError | None = None
except ImportError as _e:  # pragma: no cover - depends on the build
    _ext = None
    IMPORT_ERROR = _e


def _register() -> dict[str, tuple[str, ...]]:
    """Registers every handler of the extension; returns {target: platforms registered}.

    Platforms are lower case, as ``lax.platform_dependent`` names them ('cpu', 'cuda').
    """
    registered: dict[str, list[str]] = {}
    if _ext is None:
        return {}
    for platform, handlers in _ext.registrations().items():
        for target, capsule in handlers.items():
            jax.ffi.register_ffi_target(target, capsule, platform=platform)
            registered.setdefault(target, []).append(platform.lower())
    return {target: tuple(p) for target, p in registered.items()}


_registered = _register()


def platforms(target: str) -> tuple[str, ...]:
    """The platforms ('cpu', 'cuda'; as ``lax.platform_dependent`` names them) that have a
    registered handler for ``target``; empty without the extension."""
    return _registered.get(target, ())
