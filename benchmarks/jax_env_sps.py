"""Trainer throughput on a JAX environment, side by side in one process (the shipped CartPole config).

    python benchmarks/jax_env_sps.py                 # Trainer: on device vs host-stepped vs C cartpole
    python benchmarks/jax_env_sps.py --loop          # OnDevice: one call per epoch vs one scan of all
    python benchmarks/jax_env_sps.py --epochs 20 --train.batch-size 4096   # any override

The default builds three trainers with the same config: ``gymnax:CartPole-v1`` on device (the
Trainer's path for a JAX env), the same JaxVecEnv stepped from the host (the env hidden behind a
proxy, so the trainer takes it for any host vector env), and the C ``cartpole``. Their epochs
alternate so all see the same machine load; it prints steps/s and CPU seconds per epoch (this
process, all threads). ``--loop`` times ``OnDevice.epoch`` called once per epoch from Python
(reading its metrics each time, as the trainer does) against ``OnDevice.train``, the same epochs
as one ``lax.scan``: the cost of returning to the host every epoch, which is the most a host
callback inside one long scan could save.
"""
import argparse
import statistics
import tempfile
import time

import jax

import puffjax


class HostStepped:
    """A vector env seen through attribute access only: the Trainer steps it from the host."""

    def __init__(self, env):
        object.__setattr__(self, "_env", env)

    def __getattr__(self, name):
        return getattr(self._env, name)

    def __setattr__(self, name, value):
        setattr(self._env, name, value)


def trainers(args, overrides, data_dir):
    def cfg(name):
        return puffjax.load_config("cartpole", **{"env.name": name, "train.data_dir": data_dir,
                                                   "train.video_frames": 0, "train.checkpoint_interval": 100_000,
                                                   **overrides})
    c = cfg("gymnax:CartPole-v1")
    host_env = HostStepped(puffjax.envs.make("gymnax:CartPole-v1", num_envs=c.env.num_envs, seed=c.train.seed))
    return {"on device": puffjax.Trainer(c, dashboard="none"),
            "host-stepped": puffjax.Trainer(c, env=host_env, dashboard="none"),
            "C cartpole": puffjax.Trainer(cfg("cartpole"), dashboard="none")}


def compare_trainers(args, overrides):
    runs = {name: (t, t.train_iter()) for name, t in trainers(args, overrides, tempfile.mkdtemp()).items()}
    for _, it in runs.values():
        next(it)  # compiles and plays epoch 1
    sps = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(2, args.epochs + 1):
        for name, (_, it) in runs.items():
            c0 = time.process_time()
            log = next(it)
            cpu[name].append(time.process_time() - c0)
            sps[name].append(log["SPS"])
    for name, (trainer, _) in runs.items():
        print(f"{name:13s} median {statistics.median(sps[name]):10,.0f} steps/s, "
              f"{statistics.mean(cpu[name]):.3f} CPU s per epoch ({trainer.geom.batch_size:,} steps; epochs "
              f"2-{args.epochs})")
        trainer.close()


def compare_loop(args, overrides):
    env = puffjax.envs.jaxenv.make_env("gymnax:CartPole-v1")
    batch = puffjax.OnDevice(puffjax.load_config("cartpole", **overrides), env).geom.batch_size
    cfg = puffjax.load_config("cartpole", **{**overrides, "train.total_timesteps": batch * args.epochs})
    ondevice = puffjax.OnDevice(cfg, env)
    key = jax.random.PRNGKey(0)
    runner = ondevice.init(key)
    jax.device_get(ondevice.epoch(runner)[1])  # compile
    jax.device_get(ondevice.train(key)[1])
    for _ in range(3):
        w, c = time.perf_counter(), time.process_time()
        r = runner
        for _ in range(args.epochs):
            r, metrics = ondevice.epoch(r)
            jax.device_get(metrics)
        loop = (time.perf_counter() - w, time.process_time() - c)
        w, c = time.perf_counter(), time.process_time()
        jax.device_get(ondevice.train(key)[1])
        scan = (time.perf_counter() - w, time.process_time() - c)
        steps = batch * args.epochs
        print(f"{args.epochs} epochs of {batch:,} steps: host loop {steps / loop[0]:,.0f} steps/s ({loop[1]:.2f} CPU s), "
              f"one scan {steps / scan[0]:,.0f} steps/s ({scan[1]:.2f} CPU s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--loop", action="store_true", help="OnDevice: a host loop of epochs vs one scan")
    args, extra = parser.parse_known_args()
    puffjax.keep_freed_memory()
    overrides = puffjax.parse_overrides(extra)
    (compare_loop if args.loop else compare_trainers)(args, overrides)


if __name__ == "__main__":
    main()
