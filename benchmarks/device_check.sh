#!/usr/bin/env bash
# Measure puffjax on one CUDA GPU and write every log plus summary.json into OUT_DIR:
#
#   1. build puffjax against the installed jaxlib with the CUDA advantage handler (sm_$CUDA_ARCH);
#   2. the GPU tests (pytest -m gpu): the CUDA advantage against NumPy and the CPU handler under
#      jit, vmap and shard_map, the recurrent policy, the overlapped rollout, a training run whose
#      checkpoint a CPU loads;
#   3. the advantage against the memory-bandwidth floor (benchmarks/advantage.py) and the
#      recurrences (benchmarks/lstm.py);
#   4. training steps/s at 8192, 32768 and 131072 environments (benchmarks/trainer_sps.py);
#   5. Breakout with the shipped config from a cold compile cache, stopped after BREAKOUT_SECONDS
#      and summarised (benchmarks/train_breakout.py --run), then the time to the first epoch of a
#      warm start.
#
# Every step has its own time limit and a failed step does not stop the others: summary.json
# (written by benchmarks/device_summary.py) records each step's exit status and seconds. Expected
# run time: about 7 minutes.
#
#   benchmarks/device_check.sh OUT_DIR                       # python3 from PATH
#   PYTHON=/path/to/python benchmarks/device_check.sh OUT_DIR
#
# The interpreter ($PYTHON, else python3 on PATH) must import jax with CUDA, flax and optax. Unless
# it is a virtual environment's own, the script makes a virtual environment on top of it
# (--system-site-packages) in WORK_DIR and installs the wheels in .device_wheels/ there, if any
# (benchmarks/device_wheels.sh downloads them, for a GPU machine without network).
#
# Environment: PYTHON, CUDA_ARCH (default 90), BREAKOUT_SECONDS (default 150), WORK_DIR (build,
# compile cache and runs; default /tmp/puffjax-device, deleted at the start).
set -u
OUT=$(mkdir -p "${1:-device_check_out}" && cd "${1:-device_check_out}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
    "$PY" -c "import jax" > /dev/null 2>&1 || {
        echo "device_check.sh: PYTHON=$PY cannot import jax; point PYTHON at an interpreter that has jax" >&2
        exit 2; }
elif command -v python3 > /dev/null && python3 -c "import jax" > /dev/null 2>&1; then
    PY=$(command -v python3)
else
    echo "device_check.sh: python3 on PATH cannot import jax; set PYTHON to an interpreter that has jax" >&2
    exit 2
fi
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

# A virtual environment on top of the interpreter's packages (jax with CUDA, flax, optax, nanobind,
# ...) plus the wheels in .device_wheels/, then puffjax built against the installed jaxlib with the
# CUDA handler on. An interpreter that is a virtual environment's own is used as it is (on a
# machine without a GPU the GPU tests skip and the rest runs on the CPU).
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

"$VPY" benchmarks/device_summary.py "$OUT" > "$OUT/summary.log" 2>&1 || "$PY" benchmarks/device_summary.py "$OUT"
cat "$OUT/steps.log"
echo "summary: $OUT/summary.json"
