"""Build the C environments with AddressSanitizer + UndefinedBehaviorSanitizer
and run the fuzz harness tests/c/fuzz_envs.c (random and adversarial actions,
awkward states, 1 vs 3 threads bit-for-bit, random and crafted snapshots
given to vec_set_state: refused whole or restored and stepped safely).
Skipped without a C compiler with sanitizer support.

The build is plain gcc, no CMake: envs_c/gen_registry.py writes the registry
header (env_registry.h, see envs_c/env_type.h) into the build folder first,
as CMake does. The second test adds a throwaway environment header to a copy
of envs_c/envs/ and builds that, to show that a new environment is one header
and nothing else."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _compiler():
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    return cc


def _build(cc, root, out_dir, flags):
    """Generate root/envs_c's registry into out_dir and compile the harness
    there; returns (executable, compiler result)."""
    registry = out_dir / "env_registry.h"
    subprocess.run([sys.executable, str(root / "envs_c/gen_registry.py"), str(registry)], check=True)
    exe = out_dir / "fuzz_envs"
    cmd = [cc, "-std=c11", *flags, "-Wall", "-Wextra", "-Werror", f"-I{root / 'envs_c'}", f"-I{out_dir}",
           str(root / "tests/c/fuzz_envs.c"), str(root / "envs_c/vecenv.c"), "-lm", "-pthread", "-o", str(exe)]
    return exe, subprocess.run(cmd, capture_output=True, text=True)


def test_c_core_is_clean_under_asan_and_ubsan(tmp_path):
    exe, build = _build(_compiler(), ROOT, tmp_path, SANITIZE)
    if build.returncode != 0:
        if "sanitize" in build.stderr or "asan" in build.stderr or "ubsan" in build.stderr:
            pytest.skip(f"compiler lacks sanitizer support: {build.stderr[-300:]}")
        pytest.fail(f"harness failed to compile:\n{build.stderr}")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe), "2000"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-4000:]}"
    assert "fuzz_envs: all good" in run.stdout


def test_a_new_environment_is_one_header(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "envs_c", copy / "envs_c", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests/c", copy / "tests/c")
    shutil.copy(ROOT / "tests/c/coin.h", copy / "envs_c/envs/coin.h")
    exe, build = _build(_compiler(), copy, tmp_path, ["-O1"])
    assert build.returncode == 0, f"harness failed to compile:\n{build.stderr}"
    assert "&coin_type," in (tmp_path / "env_registry.h").read_text()
    run = subprocess.run([str(exe), "300"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-4000:]}"
    # The harness steps every registered type: the new one too, with episodes ending, and feeds it
    # crafted snapshots, some of which its coin_check_state refuses.
    coin = [line.split() for line in run.stdout.splitlines() if line.startswith("coin ") and "agents=" in line]
    assert len(coin) == 3 and all(int(words[-1].split("=")[1]) > 0 for words in coin), run.stdout
    snapshots = [line for line in run.stdout.splitlines() if line.startswith("coin ") and "snapshots:" in line]
    assert len(snapshots) == 3 and all(" 0 refused" not in line for line in snapshots), run.stdout
    assert "fuzz_envs: all good" in run.stdout


def test_every_registered_environment_is_a_header_of_its_name():
    import puffjax.envs as envs

    headers = sorted(p.stem for p in (ROOT / "envs_c/envs").glob("*.h"))
    assert envs.names() == headers
