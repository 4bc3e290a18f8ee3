"""The compiled XLA FFI kernels of puffjax, registered with JAX once, at import.

One extension module, ``puffjax._ffi`` (``xla_ext/ffi_module.cc``), holds every handler; its
``registrations()`` maps each platform to ``{target name: handler capsule}``:

- ``puffjax_puff_advantage`` (cpu, CUDA): :func:`puffjax.advantage.puff_advantage`;
- ``puffjax_lstm_forward``, ``puffjax_lstm_backward`` (cpu): :func:`puffjax.lstm.lstm` and
  its ``custom_vjp``;
- ``puffjax_mingru_forward``, ``puffjax_mingru_backward`` (cpu): :func:`puffjax.mingru.mingru`
  and its ``custom_vjp``.

The CUDA handler is there only when the extension was built with nvcc. Importing this module
registers every handler the build has (``jax.ffi.register_ffi_target``; this does not start
a JAX backend); nothing registers them again.

Fallback policy, the same for every kernel. Every fallback is the function's pure-JAX
reference (:func:`~puffjax.advantage.puff_advantage_reference`,
:func:`~puffjax.lstm.lstm_reference`, :func:`~puffjax.mingru.mingru_sequential`): the same
computation, the one the kernels are tested against, only slower. A warning is given exactly
when a kernel that puffjax ships for the platform in use is missing from this installation,
once, saying why and how to build it:

1. The extension is missing (never built, or a broken or partial build): one
   ``RuntimeWarning`` per process, naming ``puffjax._ffi``, the import error and the build
   command; then the references.
2. puffjax ships a kernel for the platform but this build lacks it (the CUDA advantage from a
   build made without nvcc): one ``RuntimeWarning`` per function and platform, with the
   rebuild command; then the reference.
3. puffjax has no kernel there by design: the reference, silently. That is the LSTM and the
   minGRU on GPUs, for float64 or for H not a multiple of 16 (LSTM) or 8 (minGRU), and every
   function on TPU, ROCm or any other platform.

"The platform in use" is JAX's default backend when the function is traced. The branch itself
is chosen by ``lax.platform_dependent`` when lowering, so a function compiled for another
device still gets that device's kernel where there is one, and the reference elsewhere.
"""
from __future__ import annotations

import warnings

import jax

__all__ = ["ADVANTAGE", "EXTENSION", "LSTM_BACKWARD", "LSTM_FORWARD", "MINGRU_BACKWARD", "MINGRU_FORWARD",
           "SHIPPED", "default_platform", "kernel_platforms", "platforms"]

EXTENSION = "puffjax._ffi"
ADVANTAGE = "puffjax_puff_advantage"
LSTM_FORWARD = "puffjax_lstm_forward"
LSTM_BACKWARD = "puffjax_lstm_backward"
MINGRU_FORWARD = "puffjax_mingru_forward"
MINGRU_BACKWARD = "puffjax_mingru_backward"

# The platforms a complete build has a handler for, by target (lax.platform_dependent names).
SHIPPED = {ADVANTAGE: ("cpu", "cuda"), LSTM_FORWARD: ("cpu",), LSTM_BACKWARD: ("cpu",),
           MINGRU_FORWARD: ("cpu",), MINGRU_BACKWARD: ("cpu",)}

BUILD_HINT = (
    "Build it with `pip install --no-build-isolation -e .` (or `cmake -S . -B build && "
    "cmake --build build && cmake --install build --prefix .`); for the CUDA handler nvcc "
    "must be on PATH (force it with `pip install . -Ccmake.define.PUFFJAX_CUDA=ON`)."
)

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


def default_platform() -> str:
    """The default backend's platform as ``lax.platform_dependent`` names it ('gpu' -> 'cuda')."""
    backend = jax.default_backend()
    if backend == "gpu":
        for platform in ("cuda", "rocm"):
            try:
                jax.devices(platform)
                return platform
            except RuntimeError:
                pass
    return backend


_warned: set[tuple[str, ...]] = set()


def _warn_once(key: tuple[str, ...], message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        # 1 = here, 2 = kernel_platforms, 3 = puff_advantage / lstm / mingru, 4 = their caller.
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def kernel_platforms(fn: str, *targets: str) -> tuple[str, ...]:
    """The platforms on which ``fn`` can run its kernel (every one of ``targets`` registered):
    the branches ``fn`` gives ``lax.platform_dependent``, the reference being the default.

    Applies the fallback policy (see the module docstring) for the platform in use: warns,
    once, if puffjax ships a kernel for it and this installation lacks it.
    """
    have = [p for p in platforms(targets[0]) if all(p in platforms(t) for t in targets[1:])]
    platform = default_platform()
    if platform not in have and all(platform in SHIPPED[t] for t in targets):
        if _ext is None:
            _warn_once(("extension",),
                       f"puffjax: the extension {EXTENSION} could not be imported "
                       f"({IMPORT_ERROR}): puff_advantage, lstm and mingru run as their pure-JAX "
                       f"references (the same computation, slower). {BUILD_HINT}")
        else:
            why = " (it was built without nvcc)" if platform == "cuda" else ""
            _warn_once(("platform", fn, platform),
                       f"{fn}: this build of {EXTENSION} has no FFI handler for platform "
                       f"'{platform}'{why}: using the pure-JAX reference (same results, "
                       f"slower). {BUILD_HINT}")
    return tuple(have)
