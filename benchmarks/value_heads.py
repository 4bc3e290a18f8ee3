"""Scalar vs HL-Gauss value head: same environment, config, budget and seeds.

    python benchmarks/value_heads.py breakout --seeds 0 1 --v-min -10 --v-max 220 --symlog
    python benchmarks/value_heads.py pong --seeds 0 1 --v-min -10 --v-max 10
    python benchmarks/value_heads.py cartpole --steps 300_000 --v-min 0 --v-max 100
    python benchmarks/value_heads.py pong --heads hl_gauss --train.learning-rate 0.03  # any override

HL-Gauss as Farebrother et al. (2024) recommend: sigma = 0.75 x bin width (the library's
default), 101 bins over a support that covers the returns, optionally spaced in symlog(return).
--steps defaults to the shipped config's budget. Prints one line per run (final mean perf and
episode return: the mean of the last three logged epochs; where mean perf first reached 0.9 and
from when it held to the end; steps/s; wall time) and the mean over seeds per head.
"""
import argparse
import statistics

import puffjax
from puffjax.logger import final_mean, reached


def when(h):
    return f"{h['agent_steps'] / 1e6:.1f}M/{h['uptime'] / 60:.1f}min" if h else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env")
    parser.add_argument("--steps", type=int, help="total agent steps (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--heads", nargs="+", default=["scalar", "hl_gauss"])
    parser.add_argument("--v-min", type=float, default=-10.0)
    parser.add_argument("--v-max", type=float, default=10.0)
    parser.add_argument("--symlog", action="store_true", help="bins equally spaced in symlog(return)")
    parser.add_argument("--data-dir", default="runs/value_heads")
    args, extra = parser.parse_known_args()
    overrides = puffjax.parse_overrides(extra)
    if args.steps:
        overrides["train.total_timesteps"] = args.steps
    puffjax.keep_freed_memory()
    puffjax.enable_compile_cache()
    support = f"[{args.v_min}, {args.v_max}]{' symlog' if args.symlog else ''}"
    print(f"{args.env}, seeds {args.seeds}, HL-Gauss support {support}, overrides {overrides or 'none'}")
    print(f"{'head':9s} {'seed':>4s} {'perf':>6s} {'return':>8s} {'perf>=0.9 first':>16s} {'held from':>14s} "
          f"{'SPS':>8s} {'min':>5s}  run", flush=True)
    summary = {}
    for head in args.heads:
        for seed in args.seeds:
            cfg = puffjax.load_config(args.env, **{
                "train.seed": seed, "train.data_dir": args.data_dir, "train.video_frames": 0,
                "policy.value_head": head, "policy.v_min": args.v_min, "policy.v_max": args.v_max,
                "policy.symlog": args.symlog, **overrides})
            trainer = puffjax.Trainer(cfg, dashboard="none")
            history = trainer.train()
            trainer.close()
            first, held = reached(history, "environment/perf", 0.9)
            sps = statistics.median(h["SPS"] for h in history[1:]) if len(history) > 1 else float("nan")
            row = (final_mean(history, "environment/perf"), final_mean(history, "environment/episode_return"),
                   history[-1]["uptime"] / 60)
            summary.setdefault(head, []).append(row)
            print(f"{head:9s} {seed:4d} {row[0]:6.3f} {row[1]:8.2f} {when(first):>16s} {when(held):>14s} "
                  f"{sps:8,.0f} {row[2]:5.1f}  {trainer.run_dir}", flush=True)
    print("mean over seeds:")
    for head, rows in summary.items():
        perf, ret, minutes = (statistics.mean(c) for c in zip(*rows))
        print(f"{head:9s} perf {perf:.3f}, return {ret:.2f}, {minutes:.1f} min")


if __name__ == "__main__":
    main()
