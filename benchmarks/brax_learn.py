"""Train a Brax continuous-control task on device with ``puffjax.make_train`` (one jitted call)
and print the mean episode return over the run, the steps, and the wall and CPU time.

    python benchmarks/brax_learn.py [--env inverted_pendulum] [--backend spring] [--steps 300000] [--normalize]
                                    [--train.KEY VALUE ...]

``--normalize`` adds observation and reward normalisation (:data:`NORMALIZE`).
"""
import argparse
import tempfile
import time
import warnings

import jax
import numpy as np

import puffjax
from puffjax.envs.jaxenv import make_env

# A profile for inverted_pendulum: Adam, 64 envs, PPO-style clipping, short horizons.
PROFILE = {"env.num_envs": 64, "train.bptt_horizon": 32, "train.minibatch_size": 512, "train.update_epochs": 4,
           "train.optimizer": "adam", "train.learning_rate": 3e-3, "train.gamma": 0.99, "train.gae_lambda": 0.95,
           "train.clip_coef": 0.2, "train.vf_coef": 0.5, "train.ent_coef": 0.0, "policy.hidden_size": 64}
# --normalize: running observation and reward normalisation, rewards then clipped at 10 (as the continuous profile)
NORMALIZE = {"train.normalize_obs": True, "train.normalize_reward": True, "train.reward_clip": 10.0}


def mean_return(returns, episodes, part: slice) -> float:
    """The mean return of the episodes finished in the epochs ``part`` (NaN when none)."""
    n = episodes[part].sum()
    return (returns * episodes)[part].sum() / n if n else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="inverted_pendulum")
    p.add_argument("--backend", default="spring")
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--normalize", action="store_true", help="normalise observations and rewards")
    args, extra = p.parse_known_args()  # the rest: config overrides (--train.learning-rate 0.001)
    warnings.filterwarnings("ignore", module="brax")
    overrides = {**PROFILE, **(NORMALIZE if args.normalize else {}), **puffjax.parse_overrides(extra),
                 "train.total_timesteps": args.steps, "train.data_dir": tempfile.mkdtemp(prefix="puffjax-brax-")}
    cfg = puffjax.load_config(f"brax:{args.env}", **overrides)
    env = make_env(f"brax:{args.env}", backend=args.backend)
    wall, cpu = time.perf_counter(), time.process_time()
    _, metrics = jax.jit(puffjax.make_train(cfg, env))(jax.random.PRNGKey(args.seed))
    returns, episodes = np.asarray(metrics["env"][:, 0]), np.asarray(metrics["episodes"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    epochs = len(returns)
    for lo in range(0, epochs, max(1, epochs // 10)):
        part = slice(lo, lo + max(1, epochs // 10))
        print(f"epochs {lo + 1}-{min(epochs, lo + max(1, epochs // 10))}: mean return "
              f"{mean_return(returns, episodes, part):.1f} over {int(episodes[part].sum())} episodes")
    first, last = slice(0, max(1, epochs // 10)), slice(epochs - max(1, epochs // 20), None)
    print(f"mean return: first 10% of epochs {mean_return(returns, episodes, first):.1f}, "
          f"last 5% {mean_return(returns, episodes, last):.1f}")
    print(f"brax:{args.env} ({args.backend}{', normalised' if args.normalize else ''}): {args.steps:,} steps, "
          f"{wall:.0f} s wall, {cpu:.0f} s CPU (compile included)")


if __name__ == "__main__":
    main()
