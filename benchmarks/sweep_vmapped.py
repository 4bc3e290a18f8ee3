"""The same sweep with 1, 8 and 16 trials per jitted call (``puffjax sweep --trials-per-call K``).

Each run is a new study of ``--trials`` trials on a JAX environment (default gymnax CartPole-v1,
its shipped profile) over the default space restricted to the hyperparameters a vmapped call
can vary (:data:`puffjax.sweep.batched.TRACEABLE`), so every K sweeps the same space; one
worker process. Prints one line per K: the sweep's wall time, the CPU seconds of its worker
processes (all threads), its trials by state and the best score.

    python benchmarks/sweep_vmapped.py                          # 16 trials of 100k steps, K = 1, 8, 16
    python benchmarks/sweep_vmapped.py --per-call 1 4 --trials 8 --budget 50000

The studies go to a temporary directory. The samplers are not seeded: each K samples its own
trials, so the best scores differ by what was sampled as well as by chance.
"""
import argparse
import resource
import tempfile
import time

import puffjax
from puffjax.sweep import sweep
from puffjax.sweep.batched import TRACEABLE
from puffjax.sweep.space import default_space


def children_cpu_seconds() -> float:
    """User and system CPU time of this process's finished child processes (the workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def section(env: str, budget: int) -> dict:
    """A ``[sweep]`` section: the default space of ``env``'s config, its traceable parameters only."""
    cfg = puffjax.load_config(env, **{"train.total_timesteps": budget})
    space = {"defaults": False}
    for name, p in default_space(cfg).items():
        if name in TRACEABLE:
            space[name] = {"values": list(p.values)} if p.values is not None else {"low": p.low, "high": p.high,
                                                                                   "log": p.log}
    return space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="gymnax:CartPole-v1")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--budget", type=int, default=100_000, help="agent steps per trial")
    parser.add_argument("--per-call", type=int, nargs="+", default=[1, 8, 16], help="trials per call, one sweep each")
    args = parser.parse_args()
    space = section(args.env, args.budget)
    print(f"{args.env}: {args.trials} trials of {args.budget:,} steps, {len(space) - 1} parameters, one worker")
    with tempfile.TemporaryDirectory() as root:
        for k in args.per_call:
            cpu, start = children_cpu_seconds(), time.perf_counter()
            res = sweep(args.env, args.trials, directory=f"{root}/k{k}", study=f"k{k}", budget=args.budget,
                        space=space, trials_per_call=k, progress=None)
            wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
            states = {}
            for r in res.rows:
                states[r["state"].lower()] = states.get(r["state"].lower(), 0) + 1
            best = res.best["score"] if res.best else float("nan")
            print(f"trials per call {k:>2}: {wall:7.1f} s wall, {cpu:7.1f} CPU s, "
                  f"{', '.join(f'{n} {s}' for s, n in sorted(states.items()))}, best score {best:.4g}", flush=True)


if __name__ == "__main__":
    main()
