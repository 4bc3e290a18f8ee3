"""Does a shipped config solve its task, and how fast? Trains it on several seeds and prints, per
seed, from which epoch on the logged metric stays at or above the target to the end (steps and
wall time; "held from") and the mean of the last three epochs that logged it. Held, not first
reached: an early epoch ends only short episodes, and on Squared those are the successes.

    python benchmarks/solve.py cartpole --seeds 0-9           # episode_return >= 475
    python benchmarks/solve.py squared --seeds 0-4            # perf >= 0.95
    python benchmarks/solve.py pong --seeds 0                 # perf >= 0.9
    python benchmarks/solve.py breakout --policy.kind mingru  # any --section.field override
    python benchmarks/solve.py gym:HalfCheetah-v5 --seeds 0   # the shipped continuous profile

TARGETS below holds each task's metric and target; --metric and --target change them. Wall
time counts from the trainer's start (compilation included; warm from the compile cache after
the first seed).
"""
import argparse
import statistics
import sys
import tempfile

import puffjax
from puffjax.logger import final_mean, reached

TARGETS = {  # env -> (logged metric, target)
    "cartpole": ("episode_return", 475.0),
    "squared": ("perf", 0.95),
    "pong": ("perf", 0.9),
    "breakout": ("perf", 0.9),
    "memory": ("perf", 0.9),
    "gym:CartPole-v1": ("episode_return", 475.0),
    "gym:Pendulum-v1": ("episode_return", -250.0),  # CleanRL's PPO: -200 to -400 at 1M steps
    "gym:HalfCheetah-v5": ("episode_return", 2000.0),  # CleanRL's ppo_continuous_action: 1500-2500 at 1M
}


def seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", choices=sorted(TARGETS))
    parser.add_argument("--seeds", type=seeds, default=[0], help="e.g. 0-4 or 0,3,7 (default 0)")
    parser.add_argument("--metric", help="the logged environment value (default: the env's, see TARGETS)")
    parser.add_argument("--target", type=float)
    args, extra = parser.parse_known_args()
    metric, target = TARGETS[args.env]
    metric, target = args.metric or metric, args.target if args.target is not None else target
    key = f"environment/{metric}"
    puffjax.keep_freed_memory()
    puffjax.enable_compile_cache()
    overrides = puffjax.parse_overrides(extra)
    data_dir = tempfile.mkdtemp(prefix="puffjax-solve-")
    print(f"{args.env}: {key} >= {target}, overrides {overrides or 'none'}", flush=True)
    finals, held_at = [], []
    for seed in args.seeds:
        cfg = puffjax.load_config(args.env, **{"train.data_dir": data_dir, "train.video_frames": 0,
                                               "train.seed": seed, **overrides})
        trainer = puffjax.Trainer(cfg, dashboard="none")
        history = list(trainer.train_iter())
        trainer.close()
        _, held = reached(history, key, target)
        first = held and (held["agent_steps"], held["uptime"])
        final = final_mean(history, key)
        finals.append(final)
        when = f"held from {first[0] / 1e6:.2f}M steps, {first[1]:.1f} s on" if first else "not held to the end"
        if first:
            held_at.append(first)
        print(f"seed {seed}: {metric} {final:.3f} (mean of the last 3 logged epochs) after "
              f"{trainer.global_step / 1e6:.2f}M steps, {trainer.uptime:.1f} s; target {when}", flush=True)
    print(f"{len(held_at)} of {len(args.seeds)} seeds held {metric} >= {target} to the end; final {metric} "
          f"{min(finals):.3f} to {max(finals):.3f}, median {statistics.median(finals):.3f}")
    if held_at:
        print(f"held from: median {statistics.median(s for s, _ in held_at) / 1e6:.2f}M steps, "
              f"{statistics.median(t for _, t in held_at):.1f} s")


if __name__ == "__main__":
    sys.exit(main())
