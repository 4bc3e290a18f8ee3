"""Epoch time against the number of devices the batch is sharded over (data parallel).

    python benchmarks/scaling.py                        # CartPole-sized run on 1, 2, 4 forced CPU devices
    python benchmarks/scaling.py --env breakout --devices 1 2 --epochs 4
    python benchmarks/scaling.py --real                 # the real local devices (e.g. GPUs), 1..N of them

Without ``--real`` every device count runs in its own interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=D``: D "devices" that share this machine's CPU
cores, so the numbers show the sharding's overhead, not a speed-up. The global batch (every
device's agents together) stays the same for every D. Prints, per device count, the median
epoch time (epochs 2+) and its split into rollout (policy steps) and learn (the update).
"""
import argparse
import json
import os
import subprocess
import sys
import textwrap

CHILD = """
import json, statistics, tempfile, puffjax
puffjax.keep_freed_memory()
cfg = puffjax.load_config({env!r}, **{overrides!r})
cfg.train.total_timesteps = {epochs} * cfg.env.num_envs * cfg.train.bptt_horizon
cfg.train.devices, cfg.train.video_frames, cfg.train.data_dir = {devices}, 0, tempfile.mkdtemp()
cfg.train.checkpoint_interval = 10 ** 6
trainer = puffjax.Trainer(cfg, dashboard="none")
logs = trainer.train()[1:]
med = lambda k: statistics.median(l[k] for l in logs)
print(json.dumps({{"devices": trainer.mesh.size, "epoch_s": trainer.geom.batch_size / med("SPS"), "sps": med("SPS"),
                  "rollout_s": med("performance/rollout"), "learn_s": med("performance/learn")}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--devices", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--real", action="store_true", help="use the machine's own devices, not forced CPU ones")
    args, extra = parser.parse_known_args()
    import puffjax
    overrides = puffjax.parse_overrides(extra)
    if args.real:
        import jax
        counts = args.devices or list(range(1, jax.local_device_count() + 1))
    else:
        counts = args.devices or [1, 2, 4]
    print(f"{args.env}, {args.epochs} epochs, {'real' if args.real else 'forced CPU'} devices")
    print(f"{'devices':>7s} {'epoch s':>9s} {'steps/s':>10s} {'rollout s':>10s} {'learn s':>9s}")
    for d in counts:
        env = dict(os.environ)
        if not args.real:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={d}"
        code = textwrap.dedent(CHILD.format(env=args.env, overrides=overrides, epochs=args.epochs,
                                            devices=d if args.real else 0))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
        if p.returncode != 0:
            print(f"{d:7d} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{r['devices']:7d} {r['epoch_s']:9.3f} {r['sps']:10,.0f} {r['rollout_s']:10.3f} {r['learn_s']:9.3f}")


if __name__ == "__main__":
    main()
