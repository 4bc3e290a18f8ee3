"""The Nature CNN (84x84x4 uint8 frames) on the CPU backend: its update under plain jit, inside
a rolled lax.scan and inside an unrolled one; the achieved FLOP/s against the machine's matmul
peak; and the training steps/s of the shipped Atari config through puffjax.Trainer.

    python benchmarks/cnn_cpu.py                     # 16 minibatches of 256 frames (CleanRL's epoch x 4)
    python benchmarks/cnn_cpu.py --minibatches 4 --trainer-epochs 0

Each minibatch is a gradient of a PPO-sized loss (the policy's logits and value) and an Adam step.
``jit``: one jitted minibatch step called from a Python loop; ``scan rolled``: all minibatches in
one jitted ``lax.scan``; ``scan unrolled``: the same with ``unroll=True`` (what the update does for
CNN policies on CPU, :func:`puffjax.update.minibatch_unroll`). Times are the best of ``--reps``
after a compiling call; CPU seconds (all threads of this process) are printed beside wall time,
as they are the steadier of the two on a shared machine. The FLOP count is XLA's cost analysis of
one minibatch step; the peak is a 2048x2048 float32 matmul's FLOP/s measured here.
"""
import argparse
import tempfile
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax

import puffjax
from puffjax.models import make_policy


def timed(fn, *args, reps: int):
    """(first call's wall s, best wall s, best CPU s) of ``fn(*args)``."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return first, min(walls), min(cpus)


def matmul_peak(reps: int) -> float:
    n = 2048
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    _, wall, _ = timed(f, a, reps=reps)
    return 2 * n ** 3 / wall


def update_modes(minibatches: int, rows: int, reps: int) -> None:
    policy = make_policy(gymnasium.spaces.Box(0, 255, (84, 84, 4), np.uint8), gymnasium.spaces.Discrete(6),
                         kind="cnn", hidden_size=512)
    params = policy.init(jax.random.key(0))
    tx = optax.adam(2.5e-4, eps=1e-5)
    obs = jax.random.randint(jax.random.key(1), (minibatches, rows, 1, 84, 84, 4), 0, 256).astype(jnp.uint8)

    def loss(p, o):
        out = policy.unroll(p, o)
        return (out.value ** 2).mean() - jax.nn.log_softmax(out.action_params).mean()

    def step(state, o):
        p, s = state
        updates, s = tx.update(jax.grad(loss)(p, o), s, p)
        return (optax.apply_updates(p, updates), s), None

    state = (params, tx.init(params))
    one = jax.jit(lambda st, o: step(st, o)[0])
    flops = one.lower(state, obs[0]).compile().cost_analysis()
    flops = (flops[0] if isinstance(flops, list) else flops)["flops"] * minibatches

    def loop(st, os):
        for i in range(minibatches):
            st = one(st, os[i])
        return st

    modes = {"jit": loop}
    for name, unroll in (("scan rolled", 1), ("scan unrolled", True)):
        modes[name] = jax.jit(lambda st, os, u=unroll: jax.lax.scan(step, st, os, unroll=u)[0])
    peak = matmul_peak(reps)
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; update: {minibatches} minibatches x {rows} frames, "
          f"{flops / 1e9:.1f} GFLOP")
    base = None
    for name, fn in modes.items():
        first, wall, cpu = timed(fn, state, obs, reps=reps)
        base = base or wall
        print(f"{name:14s} first call {first:6.1f} s | best {wall:6.2f} s wall ({wall / base:4.2f}x jit), "
              f"{cpu:6.2f} s CPU | {flops / wall / 1e9:6.1f} GFLOP/s = {flops / wall / peak:5.1%} of peak")


def trainer_sps(game: str, epochs: int) -> None:
    cfg = puffjax.load_config(game, **{"train.data_dir": tempfile.mkdtemp(prefix="puffjax-bench-"),
                                       "train.video_frames": 0, "train.checkpoint_interval": 10_000})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    it = trainer.train_iter()
    next(it)  # compiles
    for epoch in range(2, epochs + 2):
        c0 = time.process_time()
        log = next(it)
        phases = ", ".join(f"{k.split('/')[1]} {v:.2f}s" for k, v in log.items() if k.startswith("performance/"))
        print(f"{game} epoch {epoch}: {log['SPS']:7,.0f} steps/s, {time.process_time() - c0:6.2f} CPU s ({phases})",
              flush=True)
    trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minibatches", type=int, default=16)
    parser.add_argument("--rows", type=int, default=256, help="frames per minibatch")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--game", default="atari:Breakout", help="the env of the trainer's steps/s")
    parser.add_argument("--trainer-epochs", type=int, default=3, help="timed trainer epochs (0: none)")
    args = parser.parse_args()
    print(jax.devices(), f"{puffjax.envs.available_cores()} cores")
    update_modes(args.minibatches, args.rows, args.reps)
    if args.trainer_epochs:
        trainer_sps(args.game, args.trainer_epochs)


if __name__ == "__main__":
    main()
