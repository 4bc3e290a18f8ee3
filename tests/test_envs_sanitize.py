"""Build the C environments with AddressSanitizer + UndefinedBehaviorSanitizer
and run the fuzz harness tests/c/fuzz_envs.c (random and adversarial actions,
awkward states, 1 vs 3 threads bit-for-bit). Skipped without a C compiler
with sanitizer support."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_c_core_is_clean_under_asan_and_ubsan(tmp_path):
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "fuzz_envs"
    cmd = [cc, "-std=c11", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'envs_c'}",
           str(ROOT / "tests/c/fuzz_envs.c"), str(ROOT / "envs_c/vecenv.c"), "-lm", "-pthread", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    if build.returncode != 0:
        if "sanitize" in build.stderr or "asan" in build.stderr or "ubsan" in build.stderr:
            pytest.skip(f"compiler lacks sanitizer support: {build.stderr[-300:]}")
        pytest.fail(f"harness failed to compile:\n{build.stderr}")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe), "2000"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-4000:]}"
    assert "fuzz_envs: all good" in run.stdout
