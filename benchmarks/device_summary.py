"""Summarise the logs that benchmarks/device_check.sh wrote into OUT_DIR as OUT_DIR/summary.json,
and print it: each step's exit status and seconds, the GPU's name, the GPU test counts, the
advantage's GPU timings (and its 65536 x 64 time over the bandwidth floor), the recurrences'
timings, steps/s per num_envs, the Breakout run (steps/s, steps and minutes to mean perf 0.9,
best perf, time split, first epoch) and the warm start's time to the first epoch. A number whose
log is missing or lacks it is null.

    python benchmarks/device_summary.py OUT_DIR
"""
import json
import os
import re
import sys


def read(out: str, name: str) -> str:
    path = os.path.join(out, f"{name}.log")
    return open(path, errors="replace").read() if os.path.exists(path) else ""


def find(pattern: str, text: str, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1).replace(",", "")) if m else None


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/device_summary.py OUT_DIR (the folder device_check.sh wrote)")
    out = sys.argv[1]
    if not os.path.isfile(os.path.join(out, "status.txt")):
        sys.exit(f"device_summary.py: {out} has no status.txt; run benchmarks/device_check.sh {out} first")
    summary: dict = {"steps": {}}
    for line in open(os.path.join(out, "status.txt")):
        name, rc, seconds = line.split()
        summary["steps"][name] = {"exit": int(rc), "seconds": round(float(seconds), 1)}
    machine = read(out, "machine")
    summary["gpu"] = find(r"\|\s+\d+\s+(NVIDIA [^|]+?)\s{2,}", machine, str)
    tests = read(out, "pytest_gpu")
    summary["gpu_tests"] = {k: find(rf"(\d+) {k}", tests, int) for k in ("passed", "failed", "skipped", "error")}
    adv = read(out, "advantage")
    gpu_part = adv[adv.find("\nGPU"):] if "\nGPU" in adv else ""
    summary["advantage_gpu"] = [line.strip() for line in gpu_part.splitlines() if line.strip()]
    summary["advantage_65536x64_over_floor"] = find(r"65536 x 64 \|[^|]*\|[^|]*\|\s*([\d.]+)x", gpu_part)
    summary["lstm"] = [line.strip() for line in read(out, "lstm").splitlines()
                       if re.match(r"\s*(jax|shape|\d+ x)", line)]
    curve = read(out, "sps_curve")
    summary["sps_by_num_envs"] = {
        int(n): find(r"as shipped: mean ([\d,]+)", block)
        for n, block in re.findall(r"num_envs (\d+)\n(.*?)(?=num_envs \d+\n|\Z)", curve, re.S)}
    run = read(out, "breakout")
    summary["breakout"] = {
        "sps_mean": find(r"SPS: mean ([\d,]+)", run),
        "perf_0.9_steps_M": find(r"perf >= 0\.9 at ([\d.]+)M steps", run),
        "perf_0.9_minutes": find(r"perf >= 0\.9 at [\d.]+M steps after ([\d.]+) min", run),
        "best_perf": find(r"best mean perf ([\d.]+)", run),
        "time_split": find(r"time split: (.*)", run, str),
        "wall_minutes": find(r"wall ([\d.]+) min", run),
        "first_epoch_s": find(r"first epoch ([\d.]+) s", run),
    }
    summary["warm_start_first_epoch_s"] = find(r"first epoch done ([\d.]+) s", read(out, "warm_start"))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
