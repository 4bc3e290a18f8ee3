"""The acceptance benchmark: train Breakout with the shipped config and summarise the run.

    python benchmarks/train_breakout.py                 # train (30M steps), then summarise
    python benchmarks/train_breakout.py --run RUN_DIR   # summarise an existing run directory

Prints mean SPS, the time split, the wall time and steps to mean perf >= 0.9 (score >= 778),
and the score at 25M, 50M and 75M steps, from the run's metrics.jsonl.
"""
import argparse
import statistics
import sys

from puffjax.logger import read_metrics, reached


def summarise(rows: list[dict]) -> None:
    sps = [r["SPS"] for r in rows[1:]] or [rows[0]["SPS"]]  # epoch 1 includes compilation
    total = rows[-1]
    print(f"epochs {total['epoch']}, steps {total['agent_steps']:,}, wall {total['uptime'] / 60:.1f} min")
    print(f"first epoch {rows[0]['uptime']:.1f} s (compilation included)")
    print(f"SPS: mean {statistics.mean(sps):,.0f}, median {statistics.median(sps):,.0f} (epochs 2+)")
    phases = sorted({k for r in rows for k in r if k.startswith("performance/")})
    spent = {k.split("/")[1]: sum(r.get(k, 0.0) for r in rows) for k in phases}
    whole = sum(spent.values()) or 1.0
    print("time split: " + ", ".join(f"{k} {100 * v / whole:.0f}%" for k, v in spent.items()))
    solved, _ = reached(rows, "environment/perf", 0.9)
    if solved:
        print(f"perf >= 0.9 at {solved['agent_steps'] / 1e6:.1f}M steps after {solved['uptime'] / 60:.1f} min "
              f"(score {solved['environment/score']:.0f})")
    else:
        best = max((r.get("environment/perf") or 0) for r in rows)
        print(f"perf >= 0.9 not reached (best mean perf {best:.3f})")
    for mark in (25e6, 50e6, 75e6):
        row = next((r for r in rows if r["agent_steps"] >= mark and "environment/score" in r), None)
        if row:
            print(f"score at {mark / 1e6:.0f}M steps: {row['environment/score']:.1f} "
                  f"(perf {row['environment/perf']:.3f}, {row['uptime'] / 60:.1f} min)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="an existing run directory to summarise instead of training")
    args, extra = parser.parse_known_args()
    if args.run is None:
        import puffjax
        puffjax.keep_freed_memory()
        trainer = puffjax.Trainer(puffjax.load_config("breakout", **puffjax.parse_overrides(extra)))
        for _ in trainer.train_iter():
            pass
        trainer.close()
        args.run = trainer.run_dir
    print(f"run {args.run}")
    summarise(read_metrics(args.run))


if __name__ == "__main__":
    sys.exit(main())
