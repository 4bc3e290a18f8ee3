"""Trainer throughput on the shipped Breakout config: steps/s of a few epochs (the first compiles).

    python benchmarks/trainer_sps.py                     # 6 epochs, mean steps/s of epochs 2+
    python benchmarks/trainer_sps.py --compare-guard     # the non-finite guard's cost, side by side

``--compare-guard`` builds two trainers in this process, one with the guard's checks replaced by
no-ops (only here, by patching puffjax.finite while each trainer compiles), and alternates their
epochs so both see the same machine load. It prints both means and the median of the per-pair
differences.
"""
import argparse
import statistics
import tempfile
import time

import jax.numpy as jnp

import puffjax
from puffjax import finite


def make_trainer(data_dir: str, overrides: dict):
    cfg = puffjax.load_config("breakout", **{"train.data_dir": data_dir, "train.video_frames": 0,
                                             "train.checkpoint_interval": 10_000, **overrides})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    return trainer, trainer.train_iter()


def unguarded():
    """Swap the guard's jitted checks for no-ops; returns a function that restores them."""
    saved = finite.record, finite.all_finite
    finite.record = lambda seen, *args: seen
    finite.all_finite = lambda tree: jnp.bool_(True)

    def restore():
        finite.record, finite.all_finite = saved
    return restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--compare-guard", action="store_true")
    args, extra = parser.parse_known_args()
    puffjax.keep_freed_memory()
    overrides = puffjax.parse_overrides(extra)
    data_dir = tempfile.mkdtemp(prefix="puffjax-bench-")
    runs = {"guarded": make_trainer(data_dir, overrides)}
    if args.compare_guard:
        restore = unguarded()
        runs["unguarded"] = make_trainer(data_dir, overrides)
        next(runs["unguarded"][1])  # compiles (and plays epoch 1) without the checks
        restore()
    sps = {name: [] for name in runs}
    next(runs["guarded"][1])
    for epoch in range(2, args.epochs + 1):
        for name, (trainer, it) in runs.items():
            log = next(it)
            sps[name].append(log["SPS"])
            print(f"epoch {epoch} {name:9s} {log['SPS']:10,.0f} steps/s", flush=True)
    for name, values in sps.items():
        print(f"{name}: mean {statistics.mean(values):,.0f} steps/s, median {statistics.median(values):,.0f} "
              f"(epochs 2-{args.epochs}, {runs[name][0].geom.batch_size:,} steps each)")
    if args.compare_guard:  # epochs played back to back form pairs: their ratio cancels slow drifts in load
        pairs = [100 * (u - g) / u for g, u in zip(sps["guarded"], sps["unguarded"])]
        print(f"guard cost: median {statistics.median(pairs):+.2f}% of steps/s over {len(pairs)} epoch pairs "
              f"(pairs from {min(pairs):+.1f}% to {max(pairs):+.1f}%)")
    for trainer, _ in runs.values():
        trainer.close()


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"total {time.time() - start:.0f} s")
