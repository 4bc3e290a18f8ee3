#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (it has no network) into .device_wheels/ (git-ignored),
# for benchmarks/device_check.sh: CPython 3.12, manylinux x86-64 or pure Python, no dependencies
# resolved (the machine already has numpy and the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device_wheels
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .device_wheels gymnasium cloudpickle farama-notifications typing-extensions
ls -l .device_wheels
