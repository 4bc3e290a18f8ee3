"""Your own C environment, out of tree: build a header against puffjax's installed headers, load it.

    env = puffjax.envs.make("path/to/foo.h", num_envs=1024, threads=2)   # or foo.c

``foo.h`` is written exactly like a first-party env (``envs_c/env_type.h``; template:
``examples/walker.h``) but includes ``"puffjax/env_type.h"``, ``"puffjax/rng.h"`` and
``"puffjax/render.h"``: the copies installed with the package (:func:`include_dir`). Its last
line, ``PUFFJAX_ENV(Foo, foo)`` (the file name as the second argument), defines ``foo_type``.

:func:`build` wraps it in a two-function C file (``puffjax_env_type()`` returns ``&foo_type``,
``puffjax_env_abi()`` the ``PUFFJAX_ENV_ABI`` it was compiled with) and compiles it with the
system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) into a shared library, cached in
the ``c_envs`` subfolder of puffjax's cache (``$PUFFJAX_CACHE_DIR/c_envs``, default
``~/.cache/puffjax/c_envs``: see :func:`puffjax.compile_cache.cache_dir`) by a hash of the
compiler, the flags and the preprocessed source, so any change to the header, to a file it
includes or to puffjax's headers rebuilds it, and nothing else does. The source is preprocessed
once; those very bytes are hashed and compiled, so a file edited meanwhile cannot give a
library that differs from its hash. The folder is private to this user (0700) and each library
is readable by this user alone (0600). A compile error raises :class:`CompileError` with the
compiler's own message (its line numbers point into the header: the preprocessed source keeps
its line markers). :func:`load` opens the library, checks its ABI and returns the ``EnvType``
address that the vector layer (vecenv.c, inside ``puffjax._envs``) steps with its own threads
over the usual zero-copy buffers.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..compile_cache import cache_dir

FLAGS = ("-std=c11", "-O3", "-fPIC", "-Wall", "-Wextra")
CACHE = "c_envs"  # the subfolder of puffjax's cache folder holding the libraries


class CompileError(RuntimeError):
    """The C compiler rejected an environment; the message holds its output."""


def is_c_source(name: str) -> bool:
    """Whether an environment name is a path to a C header or source file."""
    return isinstance(name, str) and name.endswith((".h", ".c"))


def include_dir() -> str:
    """The folder holding ``puffjax/env_type.h``, ``puffjax/rng.h`` and ``puffjax/render.h``."""
    import puffjax

    for root in puffjax.__path__:
        folder = os.path.join(root, "include")
        if os.path.isfile(os.path.join(folder, "puffjax", "env_type.h")):
            return folder
    raise FileNotFoundError("puffjax's C headers (include/puffjax/env_type.h) are not installed next to the "
                            "package: reinstall puffjax (pip install .)")


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise CompileError("no C compiler found: install gcc or clang, or set CC")
    return cc


def _text(output: bytes) -> str:
    return output.decode(errors="replace").strip()


def _compile(cc: str, flags: list, unit: Path, out: Path) -> subprocess.CompletedProcess:
    """Compile the preprocessed C file ``unit`` (``.i``) into the shared library ``out``."""
    return subprocess.run([cc, *flags, "-shared", "-o", str(out), str(unit), "-lm"], capture_output=True)


def _shim(source: Path, type_name: str) -> str:
    return (f'#include "{source}"\n'
            "#ifndef PUFFJAX_ENV_ABI\n"
            '#error "include \\"puffjax/env_type.h\\" in your environment header"\n'
            "#endif\n"
            f"__attribute__((visibility(\"default\"))) const EnvType* puffjax_env_type(void) {{ return &{type_name}; }}\n"
            "__attribute__((visibility(\"default\"))) int puffjax_env_abi(void) { return PUFFJAX_ENV_ABI; }\n")


def build(path: str, cflags: tuple = ()) -> Path:
    """Compile the environment ``path`` (``.h`` or ``.c``) into a cached shared library; its path.
    ``cflags``: extra compiler flags (part of the cache key)."""
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise FileNotFoundError(f"C environment {path!r}: no such file")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", source.stem) or '"' in str(source) or "\n" in str(source):
        raise ValueError(f"C environment {path!r}: the file name must be a C identifier (it starts every "
                         "name the header defines) and the path must not hold quotes or newlines")
    type_name = source.stem + "_type"
    cc = _compiler()
    flags = [*FLAGS, *cflags, f"-I{include_dir()}", f"-I{source.parent}"]
    cache = Path(cache_dir(CACHE))
    pre = subprocess.run([cc, *flags, "-E", "-x", "c", "-"], input=_shim(source, type_name).encode(),
                         capture_output=True)
    if pre.returncode != 0:
        raise CompileError(f"C environment {path}: the preprocessor failed ({cc}):\n{_text(pre.stderr)}")
    unit = pre.stdout  # what is hashed is what is compiled: later edits to the files cannot change it
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([cc, version, *flags, ""]).encode() + unit).hexdigest()[:20]
    out = cache / f"{source.stem}-{key}.so"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(dir=cache) as tmp:  # 0700, in the cache: os.replace stays atomic
        unit_file, tmp_out = Path(tmp) / f"{source.stem}_puffjax.i", Path(tmp) / out.name
        unit_file.write_bytes(unit)
        run = _compile(cc, flags, unit_file, tmp_out)
        if run.returncode != 0:
            stderr = _text(run.stderr)
            hint = ""
            if type_name in stderr and "undeclared" in stderr:
                hint = (f"\n{source.name} must end with PUFFJAX_ENV(Struct, {source.stem}), which defines "
                        f"{type_name} (see puffjax/env_type.h)")
            elif f"{source.stem}_check_state" in stderr:
                hint = (f"\n{source.name} must define const char* {source.stem}_check_state(const Struct* env), "
                        "which checks a saved state before it is restored (see \"Restoring a saved state\" in "
                        "puffjax/env_type.h, and examples/walker.h)")
            raise CompileError(f"C environment {path} does not compile ({cc}):\n{stderr}{hint}")
        os.chmod(tmp_out, 0o600)  # dlopen needs read permission only
        os.replace(tmp_out, out)  # atomic: concurrent builds of the same key are fine
    return out


@dataclass
class CustomEnvType:
    """A loaded out-of-tree environment: keep it referenced while its envs live."""

    path: str  # the source, as given
    library: Path  # the compiled shared library
    handle: ctypes.CDLL
    address: int  # of its EnvType


def load(path: str, cflags: tuple = ()) -> CustomEnvType:
    """:func:`build` ``path`` (if needed), open the library and check its ABI against this
    puffjax's; returns the :class:`CustomEnvType` whose ``address`` ``puffjax._envs`` takes."""
    from .. import _envs

    library = build(path, cflags)
    handle = ctypes.CDLL(str(library))
    handle.puffjax_env_abi.restype = ctypes.c_int
    abi = handle.puffjax_env_abi()
    if abi != _envs.ABI:
        raise RuntimeError(f"C environment {path} was built against puffjax headers of ABI {abi}, this puffjax "
                           f"has ABI {_envs.ABI}: rebuild it (delete {library})")
    handle.puffjax_env_type.restype = ctypes.c_void_p
    return CustomEnvType(path, library, handle, int(handle.puffjax_env_type()))
