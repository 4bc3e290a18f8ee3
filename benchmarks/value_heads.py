"""Scalar vs HL-Gauss value head: same environment, budget and seeds, final performance.

    python benchmarks/value_heads.py pong --steps 12_000_000 --seeds 0 1 --v-min -10 --v-max 10
    python benchmarks/value_heads.py cartpole --steps 300_000 --v-min 0 --v-max 100

Prints, per head, the mean over seeds of the final mean perf and episode return (the last three
logged epochs of each run) and the wall time.
"""
import argparse
import statistics
import time

import numpy as np

import puffjax


def final(history, key):
    values = [h[key] for h in history if key in h]
    return float(np.mean(values[-3:])) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--v-min", type=float, default=-10.0)
    parser.add_argument("--v-max", type=float, default=10.0)
    parser.add_argument("--data-dir", default="runs/value_heads")
    args = parser.parse_args()
    puffjax.keep_freed_memory()
    print(f"{args.env}, {args.steps:,} steps, seeds {args.seeds}, HL-Gauss support [{args.v_min}, {args.v_max}]")
    print(f"{'head':10s} {'perf':>8s} {'return':>9s} {'minutes':>8s}")
    for head in ("scalar", "hl_gauss"):
        perf, ret, minutes = [], [], []
        for seed in args.seeds:
            cfg = puffjax.load_config(args.env, **{
                "train.total_timesteps": args.steps, "train.seed": seed, "train.data_dir": args.data_dir,
                "train.video_frames": 0, "policy.value_head": head, "policy.v_min": args.v_min,
                "policy.v_max": args.v_max})
            start = time.time()
            trainer = puffjax.Trainer(cfg, dashboard="none")
            history = trainer.train()
            trainer.close()
            minutes.append((time.time() - start) / 60)
            perf.append(final(history, "environment/perf"))
            ret.append(final(history, "environment/episode_return"))
        print(f"{head:10s} {statistics.mean(perf):8.3f} {statistics.mean(ret):9.2f} {statistics.mean(minutes):8.1f}")


if __name__ == "__main__":
    main()
