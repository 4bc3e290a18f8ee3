"""Whole training runs on a gymnax environment as one jitted function (:func:`puffjax.make_train`):
several seeds from one ``jax.vmap(train)(keys)`` call. Prints, as one JSON line, the return per
seed at the end (the mean over the episodes finished in the last ``--tail`` of the steps), the
compile and run wall times, the process's CPU seconds (all threads) and the steps per second of
all seeds together, without and with compilation.

    python benchmarks/jax_train.py gymnax:CartPole-v1 --seeds 16            # its profile: 500k steps
    python benchmarks/jax_train.py gymnax:Breakout-MinAtar --seeds 1 --steps 2000000
    python benchmarks/jax_train.py gymnax:CartPole-v1 --train.learning_rate 0.005   # any override

The config is the environment's shipped profile (``puffjax/configs/gymnax_<ID>.toml``) with the
``--section.field value`` overrides; ``--steps`` sets ``train.total_timesteps``.
"""
import argparse
import json
import resource
import time

import jax
import numpy as np

import puffjax
from puffjax.config import parse_overrides


def cpu_seconds() -> float:
    """User and system CPU time of this process so far (every thread XLA runs)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tail_returns(metrics: dict, epochs: int) -> np.ndarray:
    """Per seed: the mean episode return over the episodes finished in the last ``epochs`` epochs
    (``metrics`` from a vmapped ``train``: ``env`` [seeds, epochs, fields], ``episodes``
    [seeds, epochs]); NaN for a seed that finished none."""
    means = np.asarray(metrics["env"])[:, -epochs:, 0]
    counts = np.asarray(metrics["episodes"])[:, -epochs:]
    total = counts.sum(1)
    return np.where(total > 0, (means * counts).sum(1) / np.maximum(total, 1), np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", help="a gymnax environment, e.g. gymnax:CartPole-v1")
    parser.add_argument("--seeds", type=int, default=16, help="runs in the one vmapped call (keys split from --key)")
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--steps", type=int, help="train.total_timesteps per seed (default: the profile's)")
    parser.add_argument("--tail", type=float, default=0.1, help="fraction of the steps whose episodes give the return")
    args, rest = parser.parse_known_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if not 0 < args.tail <= 1:
        parser.error(f"--tail must be in (0, 1], got {args.tail}")
    try:
        overrides = parse_overrides(rest)
        if args.steps is not None:
            overrides["train.total_timesteps"] = args.steps
        cfg = puffjax.load_config(args.env, **overrides)
        env = puffjax.envs.make(args.env, **cfg.env.options)
    except ValueError as e:
        parser.error(str(e))

    start, cpu0 = time.perf_counter(), cpu_seconds()
    ondevice = puffjax.OnDevice(cfg, env)
    keys = jax.random.split(jax.random.PRNGKey(args.key), args.seeds)
    compiled = jax.jit(jax.vmap(ondevice.train)).lower(keys).compile()
    compiled_at, cpu1 = time.perf_counter(), cpu_seconds()
    _, metrics = jax.block_until_ready(compiled(keys))
    end, cpu2 = time.perf_counter(), cpu_seconds()

    geom = ondevice.geom
    steps = geom.total_epochs * geom.batch_size
    epochs = max(1, round(geom.total_epochs * args.tail))
    returns = tail_returns(metrics, epochs)
    run, wall = end - compiled_at, end - start
    print(json.dumps({
        "side": "puffjax", "env": args.env, "seeds": args.seeds, "steps_per_seed": steps,
        "returns": [round(float(r), 1) for r in returns], "median_return": round(float(np.nanmedian(returns)), 1),
        "compile_s": round(compiled_at - start, 1), "run_s": round(run, 1), "wall_s": round(wall, 1),
        "cpu_s": round(cpu2 - cpu0, 1), "cpu_run_s": round(cpu2 - cpu1, 1),
        "sps": round(args.seeds * steps / run), "sps_with_compile": round(args.seeds * steps / wall),
        "non_finite": bool(metrics["health"] and not np.asarray(metrics["health"]["params_finite"]).all()),
    }))


if __name__ == "__main__":
    main()
