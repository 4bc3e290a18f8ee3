"""Python envs: the serial loop vs worker processes vs gymnasium's AsyncVectorEnv.

Three envs: "slow", a toy env doing 1 ms of CPU work (a busy loop) per step; "waiting", the
same env sleeping 1 ms per step instead (a step that waits on something else, e.g. a simulator,
so its speed-up does not need free cores); and CartPole-v1.
For each: N envs stepped with random actions by

* puffjax serial    ``from_gymnasium(..., workers=0)`` (one loop in this process)
* puffjax workers   ``from_gymnasium(..., workers=W)`` (W processes over shared memory)
* gymnasium Async   ``gymnasium.vector.AsyncVectorEnv`` (one process per env, pipes +
                    shared memory, its default auto-reset), same N

and prints agent steps per second (median of --repeats timed runs of --seconds each; start-up
is not timed). On a machine with C cores, the slow env can at best gain min(W, C)x.

    python benchmarks/workers.py [--envs 8] [--workers 2 4] [--seconds 2] [--repeats 3]
"""
import argparse
import os
import time

import gymnasium as gym
import numpy as np

from puffjax import envs


class Slow(gym.Env):
    """1 ms of CPU work per step; episodes of 100 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (8,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(8, np.float32), {}

    def step(self, action):
        end = time.perf_counter() + 1e-3
        while time.perf_counter() < end:
            pass
        self.t += 1
        return np.full(8, self.t / 100, np.float32), 1.0, False, self.t >= 100, {}


class Waiting(Slow):
    """1 ms of waiting (sleep) per step."""

    def step(self, action):
        time.sleep(1e-3)
        self.t += 1
        return np.full(8, self.t / 100, np.float32), 1.0, False, self.t >= 100, {}


def cartpole():
    return gym.make("CartPole-v1")


def rate(step, num_envs, seconds, repeats):
    acts = np.random.default_rng(0).integers(0, 2, (64, num_envs)).astype(np.int32)
    for k in range(5):
        step(acts[k])
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < 0.2:
        step(acts[k & 63])
        k += 1
    steps = max(5, int(k * seconds / (time.perf_counter() - t)))
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for k in range(steps):
            step(acts[k & 63])
        rates.append(steps * num_envs / (time.perf_counter() - t))
    return float(np.median(rates))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="*", default=[2, 4, 8])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"agent steps/s, {a.envs} envs, {cores} CPU cores, median of {a.repeats} x {a.seconds:g} s, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, fn in (("slow (1 ms of CPU work per step)", Slow), ("waiting (1 ms sleep per step)", Waiting),
                     ("CartPole-v1", cartpole)):
        results = []
        serial = envs.from_gymnasium(fn, num_envs=a.envs)
        base = rate(serial.step, a.envs, a.seconds, a.repeats)
        serial.close()
        results.append(("puffjax serial", base))
        for w in a.workers:
            env = envs.from_gymnasium(fn, num_envs=a.envs, workers=w)
            results.append((f"puffjax workers={w}", rate(env.step, a.envs, a.seconds, a.repeats)))
            env.close()
        vec = gym.vector.AsyncVectorEnv([fn] * a.envs)
        vec.reset(seed=0)
        results.append((f"gymnasium AsyncVectorEnv ({a.envs} processes)",
                        rate(lambda act: vec.step(act), a.envs, a.seconds, a.repeats)))
        vec.close()
        print(f"\n{name}")
        for label, r in results:
            print(f"  {label:<42} {r:>12,.0f}  ({r / base:.2f}x serial)", flush=True)


if __name__ == "__main__":
    main()
