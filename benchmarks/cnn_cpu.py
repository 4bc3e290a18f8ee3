"""The Nature CNN (84x84x4 uint8 frames) on the CPU backend: one epoch of the real update
(:func:`puffjax.update.make_train_epoch`) under each minibatch driver, its compile seconds,
seconds and CPU seconds per epoch and achieved FLOP/s against the machine's matmul peak; and the
training steps/s of the shipped Atari config through puffjax.Trainer.

    python benchmarks/cnn_cpu.py                     # 16 minibatches of 256 frames: the Atari profile's epoch
    python benchmarks/cnn_cpu.py --minibatches 4 --rows 128 --trainer-epochs 0

The epoch is the Atari profile's update (clipped PPO loss, Adam, gradient clipping) on a buffer of
random frames. Drivers: ``loop``: the whole epoch one jitted ``lax.scan``; ``unroll``: the same
with ``unroll=True``; ``host``: one jitted minibatch step called per minibatch from Python (what
``puffjax.Trainer`` uses for CNN policies on CPU, :func:`puffjax.update.minibatch_driver`).
Compile seconds: ``lower().compile()`` of the jitted epoch; for ``host``, its first call (which
compiles its three functions and runs one epoch) less its best epoch. Epoch times are the best of
``--reps``; CPU seconds (all threads of this process) are printed beside wall time, as they are
the steadier of the two on a shared machine. The FLOP count is XLA's cost analysis of the
unrolled epoch (every minibatch inlined); the peak is a 2048x2048 float32 matmul's FLOP/s
measured here.
"""
import argparse
import tempfile
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import puffjax
from puffjax import buffer, parallel
from puffjax.geometry import geometry
from puffjax.models import make_policy
from puffjax.optim import make_optimizer
from puffjax.update import MINIBATCH_DRIVERS, TrainState, make_train_epoch


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


def epoch_inputs(minibatches: int, rows: int):
    """The Atari profile's policy, optimizer and epoch geometry with ``minibatches`` minibatches of
    ``rows`` frames per epoch (4 epochs of passes when ``minibatches`` allows, as the profile),
    its replicated state and a buffer of random frames, on a mesh of this process's first CPU."""
    epochs = 4 if minibatches % 4 == 0 else 1
    cfg = puffjax.load_config("atari:Breakout", **{"train.minibatch_size": rows, "train.update_epochs": epochs,
                                                   "train.batch_size": rows * minibatches // epochs})
    geom = geometry(cfg.train, cfg.env.num_envs)
    policy = make_policy(gymnasium.spaces.Box(0, 255, (84, 84, 4), np.uint8), gymnasium.spaces.Discrete(4),
                         kind="cnn", hidden_size=cfg.policy.hidden_size)
    mesh = parallel.make_mesh(1)
    params = policy.init(jax.random.key(0))
    tx = make_optimizer(cfg.train, geom.total_updates)
    state = parallel.replicate(mesh, TrainState(params, tx.init(params)))
    k = jax.random.split(jax.random.key(1), 4)
    S, H = geom.segments, geom.horizon
    batch = buffer.Batch(obs=jax.random.randint(k[0], (S, H, 84, 84, 4), 0, 256).astype(jnp.uint8),
                         actions=jax.random.randint(k[1], (S, H), 0, 4), logprobs=jnp.full((S, H), -np.log(4.0)),
                         values=jax.random.normal(k[2], (S, H)), rewards=jax.random.bernoulli(k[3], 0.05, (S, H)) * 1.0,
                         episode_starts=jnp.zeros((S, H)), masks=jnp.ones((S, H)))
    batch = jax.device_put(batch, parallel.rows(mesh))
    key = parallel.replicate(mesh, jax.random.PRNGKey(2))
    return cfg, geom, policy, tx, mesh, state, batch, key


def update_drivers(minibatches: int, rows: int, reps: int, drivers: list[str]) -> None:
    cfg, geom, policy, tx, mesh, state, batch, key = epoch_inputs(minibatches, rows)
    args = (state, batch, key, jnp.float32(0))
    peak = matmul_peak(reps)
    flops = None
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; epoch: {geom.minibatches_per_epoch} minibatches x {rows} frames",
          flush=True)
    for driver in drivers:
        epoch = make_train_epoch(policy, tx, geom, cfg.train, mesh, driver)
        if driver == "host":
            first, wall, cpu = timed(epoch, *args, reps=reps)
            compile_s = first - wall
        else:
            t0 = time.perf_counter()
            compiled = epoch.lower(*args).compile()
            compile_s = time.perf_counter() - t0
            if driver == "unroll":
                cost = compiled.cost_analysis()
                flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
            _, wall, cpu = timed(compiled, *args, reps=reps)
        rate = f" | {flops / wall / 1e9:6.1f} GFLOP/s = {flops / wall / peak:5.1%} of peak" if flops else ""
        print(f"{driver:7s} compile {compile_s:6.1f} s | epoch best {wall:6.2f} s wall, {cpu:6.2f} s CPU{rate}",
              flush=True)
    if flops:
        print(f"XLA's cost analysis of the unrolled epoch: {flops / 1e9:.1f} GFLOP")


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
    parser.add_argument("--drivers", nargs="+", default=["unroll", "host", "loop"], choices=MINIBATCH_DRIVERS,
                        help="the minibatch drivers to time, in this order (unroll first: its epoch gives the FLOPs)")
    parser.add_argument("--game", default="atari:Breakout", help="the env of the trainer's steps/s")
    parser.add_argument("--trainer-epochs", type=int, default=3, help="timed trainer epochs (0: none)")
    args = parser.parse_args()
    print(jax.devices(), f"{puffjax.envs.available_cores()} cores")
    update_drivers(args.minibatches, args.rows, args.reps, args.drivers)
    if args.trainer_epochs:
        trainer_sps(args.game, args.trainer_epochs)


if __name__ == "__main__":
    main()
