"""Tests of puffjax.kernels: one extension, every handler registered once, one fallback policy.

The policy (puffjax/kernels.py): a RuntimeWarning, once, exactly when a kernel puffjax ships
for the platform in use is missing from the installation (no extension at all, or a CUDA
build made without nvcc); silently the reference where puffjax has no kernel by design.
Every fallback must give the pure-JAX reference's result.
"""
import ctypes
import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest

from puffjax import kernels
from puffjax.advantage import puff_advantage, puff_advantage_reference
from puffjax.lstm import has_kernel, lstm, lstm_reference
from puffjax.mingru import has_kernel as has_mingru_kernel
from puffjax.mingru import mingru, mingru_sequential

HP = dict(gamma=0.99, gae_lambda=0.95, rho_clip=1.0, c_clip=1.0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(kernels, "_warned", set())


def _advantage_case(seed=0, S=5, H=9):
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=(S, H)).astype(np.float32) for _ in range(2)]
    x.append((rng.random((S, H)) < 0.2).astype(np.float32))
    x.append(rng.uniform(0.2, 3, (S, H)).astype(np.float32))
    return x


def _lstm_case(seed=0, B=4, T=5, H=16):
    rng = np.random.default_rng(seed)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)
    return f32(B, T, 4 * H), rng.random((B, T)) < 0.2, f32(H, 4 * H) / 4, f32(B, H), f32(B, H)


def _run_advantage():
    x = _advantage_case()
    got = jax.jit(lambda *a: puff_advantage(*a, **HP))(*x)
    np.testing.assert_allclose(got, puff_advantage_reference(*x, **HP), rtol=1e-5, atol=1e-6)


def _run_lstm():
    gx, reset, w, c0, h0 = _lstm_case()
    # A fresh function each time: jax.jit(lstm) would reuse an earlier trace (and warning).
    hs, (c, h) = jax.jit(lambda *a: lstm(*a))(gx, reset, w, (c0, h0))
    want_hs, (want_c, _) = lstm_reference(gx, reset, w, (c0, h0))
    np.testing.assert_allclose(hs, want_hs, atol=2e-6)
    np.testing.assert_allclose(c, want_c, atol=5e-6)


def _mingru_case(seed=0, B=4, T=5, H=8):
    rng = np.random.default_rng(seed)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)
    return f32(B, T, H), f32(B, T, H), rng.random((B, T)) < 0.2, f32(B, H)


def _run_mingru():
    z, c, reset, h0 = _mingru_case()
    hs, h = jax.jit(lambda *a: mingru(*a))(z, c, reset, h0)
    want_hs, _ = mingru_sequential(z, c, reset, h0)
    np.testing.assert_allclose(hs, want_hs, atol=2e-6)


RUN = {"puff_advantage": _run_advantage, "lstm": _run_lstm, "mingru": _run_mingru}


def _without_extension(monkeypatch):
    """puffjax.kernels as it is when `from puffjax import _ffi` fails."""
    monkeypatch.setattr(kernels, "_ext", None)
    monkeypatch.setattr(kernels, "IMPORT_ERROR", ImportError("No module named 'puffjax._ffi'"))
    monkeypatch.setattr(kernels, "_registered", {})


def _runtime_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]


# ----------------------------------------------------------------------------
# The extension and its registrations


def test_extension_registers_every_shipped_cpu_handler():
    from puffjax import _ffi

    regs = _ffi.registrations()
    assert set(regs) <= {"cpu", "CUDA"}
    assert set(regs["cpu"]) == {kernels.ADVANTAGE, kernels.LSTM_FORWARD, kernels.LSTM_BACKWARD,
                                kernels.MINGRU_FORWARD, kernels.MINGRU_BACKWARD}
    assert set(regs.get("CUDA", {})) <= {kernels.ADVANTAGE}
    major, minor = _ffi.ffi_api_version
    assert isinstance(major, int) and isinstance(minor, int)
    for platform, handlers in regs.items():
        for target in handlers:
            assert platform.lower() in kernels.platforms(target)
            assert platform.lower() in kernels.SHIPPED[target]
    assert has_kernel() and has_mingru_kernel()


def test_every_handler_registered_once_at_import():
    # A fresh interpreter counts the registrations made by importing puffjax and using both
    # kernels: each (target, platform) of the extension exactly once, all before first use.
    script = textwrap.dedent("""
        import collections, json
        import jax, jax.ffi
        calls = collections.Counter()
        original = jax.ffi.register_ffi_target
        def counting(name, fn, platform="cpu", *args, **kwargs):
            calls[f"{name}@{platform}"] += 1
            return original(name, fn, platform, *args, **kwargs)
        jax.ffi.register_ffi_target = counting
        import numpy as np
        import puffjax, puffjax.lstm
        at_import = dict(calls)
        x = np.ones((3, 4), np.float32)
        puffjax.puff_advantage(x, x, 0 * x, x, gamma=0.9, gae_lambda=0.9, rho_clip=1.0,
                               c_clip=1.0)
        g = np.zeros((2, 3, 64), np.float32); z = np.zeros((2, 16), np.float32)
        jax.grad(lambda g: puffjax.lstm.lstm(g, np.zeros((2, 3), bool),
                                             np.zeros((16, 64), np.float32), (z, z))[0].sum())(g)
        import puffjax.mingru
        jax.grad(lambda z: puffjax.mingru.mingru(z, z, np.zeros((2, 3), bool), z[:, 0])[0].sum())(
            np.zeros((2, 3, 8), np.float32))
        from puffjax import _ffi
        expected = {f"{t}@{p}": 1 for p, h in _ffi.registrations().items() for t in h}
        print(json.dumps({"at_import": at_import, "after_use": dict(calls),
                          "expected": expected}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["at_import"] == result["expected"]
    assert result["after_use"] == result["expected"]


class _ExtensionBase(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("type", ctypes.c_int), ("next", ctypes.c_void_p)]


class _ApiVersion(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("major_version", ctypes.c_int), ("minor_version", ctypes.c_int)]


class _Metadata(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("api_version", _ApiVersion), ("traits", ctypes.c_uint32),
                ("state_type_id", ctypes.c_int64)]


class _MetadataExtension(ctypes.Structure):
    _fields_ = [("extension_base", _ExtensionBase), ("metadata", ctypes.POINTER(_Metadata))]


class _List(ctypes.Structure):  # XLA_FFI_Args and XLA_FFI_Rets
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("size", ctypes.c_int64),
                ("types", ctypes.c_void_p), ("items", ctypes.c_void_p)]


class _Attrs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("size", ctypes.c_int64),
                ("types", ctypes.c_void_p), ("names", ctypes.c_void_p), ("attrs", ctypes.c_void_p)]


class _CallFrame(ctypes.Structure):  # up to `attrs`: XLA_FFI_CallFrame_STRUCT_SIZE
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("api", ctypes.c_void_p),
                ("ctx", ctypes.c_void_p), ("stage", ctypes.c_int), ("args", _List), ("rets", _List),
                ("attrs", _Attrs), ("future", ctypes.c_void_p)]


COMMAND_BUFFER_COMPATIBLE = 1  # XLA_FFI_HANDLER_TRAITS_COMMAND_BUFFER_COMPATIBLE


def _metadata(capsule) -> _Metadata:
    """A handler's metadata (FFI version and traits), asked for as XLA asks: a call whose frame
    carries the metadata extension, which the handler answers without running."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    handler = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(get_pointer(capsule, get_name(capsule)))
    metadata = _Metadata(struct_size=ctypes.sizeof(_Metadata))
    extension = _MetadataExtension(_ExtensionBase(ctypes.sizeof(_MetadataExtension), 1, None),
                                   ctypes.pointer(metadata))
    frame = _CallFrame(struct_size=_CallFrame.future.offset,
                       extension_start=ctypes.cast(ctypes.pointer(extension), ctypes.c_void_p))
    assert handler(ctypes.addressof(frame)) is None  # no error
    return metadata


def test_only_the_cuda_handler_is_command_buffer_compatible():
    """The CUDA advantage only launches a kernel on XLA's stream, so XLA may capture it in a CUDA
    graph; the CPU handlers declare no traits."""
    from puffjax import _ffi

    regs = _ffi.registrations()
    for target, capsule in regs["cpu"].items():
        metadata = _metadata(capsule)
        assert (metadata.api_version.major_version, metadata.api_version.minor_version) == _ffi.ffi_api_version
        assert metadata.traits == 0, target
    if "CUDA" not in regs:
        pytest.skip("built without nvcc: no CUDA handler")
    assert _metadata(regs["CUDA"][kernels.ADVANTAGE]).traits == COMMAND_BUFFER_COMPATIBLE


# ----------------------------------------------------------------------------
# Fallback policy


@pytest.mark.parametrize("first", ["puff_advantage", "lstm", "mingru"])
def test_without_extension_one_warning_then_references(monkeypatch, first):
    if kernels.default_platform() != "cpu":
        pytest.skip("needs the CPU backend")
    _without_extension(monkeypatch)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        RUN[first]()
    messages = _runtime_warnings(record)
    assert len(messages) == 1, messages  # whichever kernel is asked for first warns
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for name in RUN:
            RUN[name]()
    assert not _runtime_warnings(record)  # and only once for the process
    assert "puffjax._ffi could not be imported" in messages[0]
    assert "No module named 'puffjax._ffi'" in messages[0]
    assert "pip install" in messages[0] and "puff_advantage, lstm and mingru" in messages[0]
    x = _advantage_case()
    assert "custom_call" not in jax.jit(lambda *a: puff_advantage(*a, **HP)).lower(*x).as_text()
    gx, reset, w, c0, h0 = _lstm_case()
    text = jax.jit(lambda *a: lstm(*a)).lower(gx, reset, w, (c0, h0)).as_text()
    assert "custom_call" not in text
    assert "custom_call" not in jax.jit(lambda *a: mingru(*a)).lower(*_mingru_case()).as_text()


def test_without_extension_for_real():
    # A fresh interpreter in which `from puffjax import _ffi` fails, as with a partial build.
    script = textwrap.dedent("""
        import json, sys, warnings
        sys.modules["puffjax._ffi"] = None  # makes the import raise ImportError
        warnings.simplefilter("always")
        import jax, numpy as np
        from puffjax import kernels
        from puffjax.advantage import puff_advantage, puff_advantage_reference
        from puffjax.lstm import has_kernel, lstm, lstm_reference
        from puffjax.mingru import mingru, mingru_sequential
        rng = np.random.default_rng(0)
        x = [rng.normal(size=(4, 6)).astype(np.float32) for _ in range(4)]
        hp = dict(gamma=0.9, gae_lambda=0.8, rho_clip=1.0, c_clip=1.0)
        gx = rng.normal(size=(3, 4, 64)).astype(np.float32)
        reset = np.zeros((3, 4), bool); w = np.zeros((16, 64), np.float32)
        z = np.zeros((3, 16), np.float32)
        with warnings.catch_warnings(record=True) as first:  # the LSTM first, then both
            warnings.simplefilter("always")
            h = [np.asarray(lstm(gx, reset, w, (z, z))[0])]
        with warnings.catch_warnings(record=True) as later:
            warnings.simplefilter("always")
            h.append(np.asarray(lstm(gx, reset, w, (z, z))[0]))
            a = [np.asarray(puff_advantage(*x, **hp)) for _ in range(2)]
            m = np.asarray(mingru(gx[..., :8], gx[..., 8:16], reset, z[:, :8])[0])
        print(json.dumps({
            "warnings": [str(r.message) for r in first if r.category is RuntimeWarning],
            "later": [str(r.message) for r in later if r.category is RuntimeWarning],
            "has_kernel": has_kernel(),
            "advantage_error": float(np.abs(a[1] - puff_advantage_reference(*x, **hp)).max()),
            "lstm_error": float(np.abs(h[1] - lstm_reference(gx, reset, w, (z, z))[0]).max()),
            "mingru_error": float(np.abs(m - mingru_sequential(gx[..., :8], gx[..., 8:16], reset, z[:, :8])[0]).max()),
        }))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["warnings"]) == 1 and not result["later"], result
    assert "puffjax._ffi could not be imported" in result["warnings"][0]
    assert not result["has_kernel"]
    assert result["advantage_error"] <= 1e-6 and result["lstm_error"] <= 1e-6 and result["mingru_error"] <= 1e-5


def test_build_without_cuda_warns_for_the_advantage_only(monkeypatch):
    # A GPU with an extension built without nvcc: the advantage has a CUDA kernel in a
    # complete build (one warning), the LSTM has none by design (silent).
    cpu_only = {t: ("cpu",) for t in kernels.SHIPPED}
    monkeypatch.setattr(kernels, "_registered", cpu_only)
    monkeypatch.setattr(kernels, "default_platform", lambda: "cuda")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            RUN["lstm"]()
            RUN["mingru"]()
            RUN["puff_advantage"]()
    messages = _runtime_warnings(record)
    assert len(messages) == 1, messages
    assert messages[0].startswith("puff_advantage: ")
    assert "no FFI handler for platform 'cuda' (it was built without nvcc)" in messages[0]


@pytest.mark.parametrize("extension", ["present", "missing"])
@pytest.mark.parametrize("platform", ["tpu", "rocm", "METAL"])
def test_no_kernel_by_design_is_silent(monkeypatch, extension, platform):
    if extension == "missing":
        _without_extension(monkeypatch)
    monkeypatch.setattr(kernels, "default_platform", lambda: platform)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        RUN["puff_advantage"]()
        RUN["lstm"]()
        RUN["mingru"]()


def test_lstm_shapes_without_a_kernel_are_silent(monkeypatch):
    # H not a multiple of 16 has no kernel even on CPU: no warning, even without the extension.
    _without_extension(monkeypatch)
    gx, reset, w, c0, h0 = _lstm_case(H=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        hs, _ = lstm(gx, reset, w, (c0, h0))
    np.testing.assert_allclose(hs, lstm_reference(gx, reset, w, (c0, h0))[0], atol=1e-6)
