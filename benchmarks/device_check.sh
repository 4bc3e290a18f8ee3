#!/usr/bin/env bash
# The GPU check in one command: build puffjax with its CUDA handler against the installed jaxlib,
# run the GPU tests, the advantage and LSTM benchmarks, the steps/s curve over num_envs and a timed
# Breakout run (cold compile cache, then a warm start), and write every log plus summary.json into
# OUT_DIR. Sized for about 7 minutes on one H200, so it can be rerun once in a 15-minute slot.
#
#   benchmarks/device_wheels.sh                 # once, on a machine with network: wheels the GPU
#                                               # machine lacks (gymnasium, ...) into .device_wheels/
#   benchmarks/device_check.sh OUT_DIR          # on the GPU machine ($OUT under the device tool,
#                                               # carrying .device_wheels)
#
# Environment: PYTHON (default /opt/torch/.venv/bin/python3, else python3), CUDA_ARCH (default 90),
# BREAKOUT_SECONDS (time limit of the Breakout run, default 150). Every step has its own time limit
# and a failed step does not stop the others: summary.json records each step's exit status.
set -u
OUT=$(mkdir -p "${1:-${OUT:-device_check_out}}" && cd "${1:-${OUT:-device_check_out}}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-/opt/torch/.venv/bin/python3}
[ -x "$PY" ] || PY=$(command -v python3)
ARCH=${CUDA_ARCH:-90}
WORK=${WORK_DIR:-/tmp/puffjax-device}
STATUS="$OUT/status.txt"
: > "$STATUS"
export PUFFJAX_CACHE_DIR="$WORK/jax-cache"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, record the status
    local name=$1 limit=$2; shift 2
    local start=$(date +%s.%N)
    echo "[$(date +%T)] $name: $*" | tee -a "$OUT/steps.log"
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local took=$(echo "$(date +%s.%N) - $start" | bc)
    echo "$name $rc $took" >> "$STATUS"
    echo "[$(date +%T)] $name: exit $rc after ${took%.*} s" | tee -a "$OUT/steps.log"
}

rm -rf "$WORK" && mkdir -p "$WORK"
step machine 60 bash -c "nvidia-smi; nproc; free -g; $PY -c 'import jax, jaxlib; print(jax.__version__, jaxlib.__version__, jax.devices())'"

# A venv on top of the machine's packages (jax with CUDA, flax, optax, nanobind, ...), plus the
# carried wheels, then puffjax built against the installed jaxlib with the CUDA handler on.
# (A PYTHON that is itself a venv's is used as it is: a dry run on a CPU machine.)
if "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
    VPY=$PY
    step setup 120 true
else
    VPY=$WORK/venv/bin/python
    step setup 120 bash -c "$PY -m venv --system-site-packages $WORK/venv && \
        if ls .device_wheels/*.whl > /dev/null 2>&1; then $VPY -m pip install --no-index --no-deps .device_wheels/*.whl; fi"
fi
step build 240 "$VPY" -m pip install --no-build-isolation --no-deps -e . \
    -Ccmake.define.PUFFJAX_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" -Cbuild-dir="$WORK/build"

step pytest_gpu 150 "$VPY" -m pytest -q -m gpu -p no:cacheprovider tests/test_advantage.py tests/test_lstm.py \
    tests/test_gpu.py tests/test_rollout.py
step advantage 90 "$VPY" benchmarks/advantage.py --sizes 8192,65536 --no-cpu
step lstm 60 "$VPY" benchmarks/lstm.py
# steps/s against the number of environments (the policy's launch overhead amortised)
step sps_curve 150 bash -c "for n in 8192 32768 131072; do echo num_envs \$n; \
    $VPY benchmarks/trainer_sps.py --epochs 3 --env.num-envs \$n --train.minibatch-size \$((n * 4)) || true; done"
# Breakout with the shipped config, from a cold compile cache, stopped after BREAKOUT_SECONDS
rm -rf "$PUFFJAX_CACHE_DIR"
step breakout 600 bash -c "timeout ${BREAKOUT_SECONDS:-150} $VPY examples/train_breakout.py --train.data-dir $WORK/runs \
    --train.video-frames 0 --train.checkpoint-interval 1000; \
    $VPY benchmarks/train_breakout.py --run \$(ls -d $WORK/runs/breakout-* | head -1)"
# the same start with the cache the run above filled: time to the first epoch's end
step warm_start 120 "$VPY" -c "
import time; t = time.time()
import puffjax
puffjax.enable_compile_cache()
cfg = puffjax.load_config('breakout', **{'train.total_timesteps': 524288, 'train.video_frames': 0,
                                         'train.data_dir': '$WORK/warm'})
log = puffjax.Trainer(cfg, dashboard='none').train()[0]
print(f'warm start: first epoch done {time.time() - t:.1f} s after start (epoch {log[\"uptime\"]:.1f} s)')"

"$VPY" benchmarks/device_summary.py "$OUT" > "$OUT/summary.log" 2>&1 || python3 benchmarks/device_summary.py "$OUT"
cat "$OUT/steps.log"
echo "summary: $OUT/summary.json"
