#!/usr/bin/env bash
# Download the wheels that benchmarks/device_check.sh installs on a GPU machine without network:
# gymnasium and its small pure-Python dependencies (the machine is expected to have numpy, jax,
# flax and optax already). Run it on a machine with network, from anywhere; the wheels go to
# .device_wheels/ at the repository root (git-ignored), which device_check.sh picks up.
#
#   benchmarks/device_wheels.sh
#
# Environment: PYTHON (the pip to download with; default python3), WHEEL_PYTHON (the target
# machine's Python version, default 3.12). Wheels are for manylinux x86-64 or pure Python, with
# no dependencies resolved.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device_wheels
"${PYTHON:-python3}" -m pip download --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .device_wheels gymnasium cloudpickle farama-notifications typing-extensions
ls -l .device_wheels
