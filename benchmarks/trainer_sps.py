"""Trainer throughput on a shipped Breakout config: steps/s of a few epochs (the first compiles).

    python benchmarks/trainer_sps.py                     # 6 epochs, mean steps/s of epochs 2+
    python benchmarks/trainer_sps.py --config breakout_lstm   # PufferLib's config (LSTM, 8192 agents)
    python benchmarks/trainer_sps.py --compare guard     # the non-finite guard's cost, side by side
    python benchmarks/trainer_sps.py --compare groups    # the overlapped rollout against one group
    python benchmarks/trainer_sps.py --env.num-envs 16384 --train.minibatch-size 65536   # any override

``--compare X`` builds a second trainer in this process with one switch flipped: ``guard`` sets
``train.check_finite = false`` (no non-finite checks), ``groups`` sets ``train.rollout_groups = 1``
(the rollout steps all agents as one group: no overlap of the environments with the policy).
The two trainers' epochs alternate so both see the same machine load; the script prints both
means and the median of the per-pair differences, in steps/s and in CPU seconds per epoch (the
steadier of the two when other jobs share the machine).
"""
import argparse
import statistics
import tempfile
import time

import puffjax

COMPARE = {  # --compare X: (the second trainer's name, its overrides)
    "guard": ("unguarded", {"train.check_finite": False}),
    "groups": ("one group", {"train.rollout_groups": 1}),
}


def make_trainer(config: str, data_dir: str, overrides: dict):
    cfg = puffjax.load_config(config, **{"train.data_dir": data_dir, "train.video_frames": 0,
                                             "train.checkpoint_interval": 10_000, **overrides})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    return trainer, trainer.train_iter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--compare", choices=sorted(COMPARE))
    parser.add_argument("--config", default="breakout", help="a shipped Breakout config (default breakout)")
    args, extra = parser.parse_known_args()
    puffjax.keep_freed_memory()
    overrides = puffjax.parse_overrides(extra)
    data_dir = tempfile.mkdtemp(prefix="puffjax-bench-")
    runs = {"as shipped": make_trainer(args.config, data_dir, overrides)}
    next(runs["as shipped"][1])  # compiles and plays epoch 1
    if args.compare:
        name, switch = COMPARE[args.compare]
        runs[name] = make_trainer(args.config, data_dir, {**overrides, **switch})
        next(runs[name][1])
    sps = {name: [] for name in runs}
    cpu = {name: [] for name in runs}  # CPU seconds this process spent per epoch (all its threads)
    for epoch in range(2, args.epochs + 1):
        for name, (trainer, it) in runs.items():
            c0 = time.process_time()
            log = next(it)
            cpu[name].append(time.process_time() - c0)
            sps[name].append(log["SPS"])
            phases = ", ".join(f"{k.split('/')[1]} {v:.2f}s" for k, v in log.items() if k.startswith("performance/"))
            print(f"epoch {epoch} {name:11s} {log['SPS']:10,.0f} steps/s, {cpu[name][-1]:6.2f} CPU s ({phases})",
                  flush=True)
    for name, values in sps.items():
        print(f"{name}: mean {statistics.mean(values):,.0f} steps/s, median {statistics.median(values):,.0f} "
              f"(epochs 2-{args.epochs}, {runs[name][0].geom.batch_size:,} steps each, "
              f"{runs[name][0].groups} rollout group(s))")
    if args.compare:  # epochs played back to back form pairs: their ratio cancels slow drifts in load
        other = [n for n in sps if n != "as shipped"][0]
        pairs = [100 * (o - s) / o for s, o in zip(sps["as shipped"], sps[other])]
        print(f"as shipped vs {other}: median {-statistics.median(pairs):+.2f}% steps/s over {len(pairs)} epoch "
              f"pairs (pairs from {-max(pairs):+.1f}% to {-min(pairs):+.1f}%)")
        # CPU time is what the work costs, whatever else the machine runs: the steadier measure
        # where other jobs share the cores (on an idle machine both tell the same story).
        cpu_pairs = [100 * (s - o) / o for s, o in zip(cpu["as shipped"], cpu[other])]
        print(f"as shipped vs {other}: median {statistics.median(cpu_pairs):+.2f}% CPU seconds per epoch "
              f"(pairs from {min(cpu_pairs):+.1f}% to {max(cpu_pairs):+.1f}%; mean "
              f"{statistics.mean(cpu['as shipped']):.2f} vs {statistics.mean(cpu[other]):.2f} CPU s)")
    for trainer, _ in runs.values():
        trainer.close()


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"total {time.time() - start:.0f} s")
