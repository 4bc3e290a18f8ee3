"""Agent-steps per second of the C environments, driven from Python.

For each environment, 1024 and 4096 envs, on 1 thread and on all threads:
random actions are generated up front (64 arrays, reused in turn), then only
`env.step(actions)` is timed (it includes copying the actions into the env's
buffer). Prints one table; the median of --repeats timed runs is reported.

    python benchmarks/env_sps.py [--seconds 1.0] [--repeats 3] [--envs breakout pong]
"""
import argparse
import os
import time

import numpy as np

import puffjax.envs as envs


def measure(name, num_envs, threads, seconds, repeats, **options):
    env = envs.make(name, num_envs=num_envs, threads=threads, seed=0, **options)
    env.reset()
    rng = np.random.default_rng(0)
    n = env.action_space.n
    acts = rng.integers(0, n, (64, num_envs), dtype=np.int32)
    for k in range(20):  # warm up: caches, page faults, thread wake-up
        env.step(acts[k % 64])
    # Size one timed run to about `seconds`.
    t = time.perf_counter()
    k = 0
    while time.perf_counter() - t < 0.1:
        env.step(acts[k % 64])
        k += 1
    steps = max(10, int(k * seconds / (time.perf_counter() - t)))
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for k in range(steps):
            env.step(acts[k & 63])
        rates.append(steps * num_envs / (time.perf_counter() - t))
    env.close()
    return float(np.median(rates))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--envs", nargs="*", default=envs.names())
    p.add_argument("--sizes", nargs="*", type=int, default=[1024, 4096])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count(), help="the 'all threads' count")
    args = p.parse_args()
    thread_counts = sorted({1, args.threads})
    header = f"{'env':<10}{'num_envs':>9}" + "".join(f"{f'{t} thread' + ('s' if t > 1 else ''):>14}" for t in thread_counts)
    print(f"agent-steps/s (millions), {os.cpu_count()} CPUs, median of {args.repeats} x {args.seconds:g} s")
    print(header)
    for name in args.envs:
        for size in args.sizes:
            row = f"{name:<10}{size:>9}"
            for t in thread_counts:
                row += f"{measure(name, size, t, args.seconds, args.repeats) / 1e6:>13.2f}M"
            print(row, flush=True)


if __name__ == "__main__":
    main()
