"""Epoch time against the number of devices or processes the batch is sharded over (data parallel).

    python benchmarks/scaling.py                        # CartPole-sized run on 1, 2, 4 forced CPU devices
    python benchmarks/scaling.py --env breakout --devices 1 2 --epochs 4
    python benchmarks/scaling.py --real                 # the real local devices (e.g. GPUs), 1..N of them
    python benchmarks/scaling.py --processes 2 --pin --env.num-envs 256   # processes on localhost
    python benchmarks/scaling.py --processes 2 --pin --env breakout --independent  # and unconnected
    python benchmarks/scaling.py --devices 1 --overlap  # each run without, then with train.overlap

Devices (the default): every device count runs in its own interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=D`` (or, with ``--real``, the first D local
devices): without ``--real`` D "devices" share this machine's CPU cores, so the numbers show the
sharding's overhead, not a speed-up. The global batch (every device's agents together) stays the
same for every D. Prints, per device count, the median epoch time (epochs 2+) and its split into
rollout (policy steps) and learn (the update).

Processes (``--processes P``): the config's ``env.num_envs`` is split over P processes on
localhost, one CPU device each, joined by ``jax.distributed`` (gloo). First one process plays
its share, ``num_envs / P`` environments, alone; then P processes play theirs together. With
``--pin`` process i runs on core i only (``taskset``), the lone process on core 0. Prints each
run's median steps/s (epochs 2+), rollout and learn seconds per epoch, the CPU seconds the
processes used over the wall seconds of the run, and the parallel efficiency: P processes'
steps/s over P times the lone process's.

``--independent``: after them, the same processes run at the same time with no
``jax.distributed`` between them (each trains its own share alone), pinned the same way: their
summed steps/s over P times the lone process's is what sharing the machine costs without any
collective, the ceiling of the efficiency above.

``--overlap``: every run above is made twice, with ``train.overlap`` off and on (the next
epoch's rollout played while the update runs), and printed side by side; with overlap the
learn column is the part of the update the rollout did not hide.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

CHILD = """
import json, resource, statistics, sys, tempfile, time, puffjax
start = time.perf_counter()
if {processes} > 1:
    puffjax.parallel.initialize("127.0.0.1:{port}", {processes}, int(sys.argv[1]))
puffjax.keep_freed_memory()
cfg = puffjax.load_config({env!r}, **{overrides!r})
cfg.env.num_envs //= {share}  # this process's share of the environments
cfg.train.total_timesteps = {epochs} * {processes} * cfg.env.num_envs * cfg.train.bptt_horizon
cfg.train.devices, cfg.train.video_frames, cfg.train.data_dir = {devices}, 0, tempfile.mkdtemp()
cfg.train.checkpoint_interval = 10 ** 6
trainer = puffjax.Trainer(cfg, dashboard="none")
logs = trainer.train()[1:]
med = lambda k: statistics.median(l[k] for l in logs if k in l)  # overlap: the last epoch plays no rollout
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"devices": trainer.mesh.size, "epoch_s": trainer.geom.batch_size / med("SPS"), "sps": med("SPS"),
                  "rollout_s": med("performance/rollout"), "learn_s": med("performance/learn"),
                  "cpu_s": use.ru_utime + use.ru_stime, "wall_s": time.perf_counter() - start}}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_processes(code: str, processes: int, pin: bool, timeout: float) -> list[dict]:
    """Start ``processes`` interpreters running ``code`` (process i gets argument i, and core i
    with ``pin``); their JSON results, or a RuntimeError with the first failure's last line."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(processes):
            cmd = (["taskset", "-c", str(i)] if pin else []) + [sys.executable, "-c", code, str(i)]
            out, err = open(os.path.join(tmp, f"{i}.out"), "w+"), open(os.path.join(tmp, f"{i}.err"), "w+")
            procs.append((subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True), out, err))
        deadline, results = time.monotonic() + timeout, []
        try:
            for p, out, err in procs:
                code_ = p.wait(timeout=max(1.0, deadline - time.monotonic()))
                out.seek(0), err.seek(0)
                text, error = out.read(), err.read().strip()
                if code_ != 0:
                    raise RuntimeError(error.splitlines()[-1] if error else f"exit status {code_}")
                results.append(json.loads(text.strip().splitlines()[-1]))
        finally:
            for p, _, _ in procs:
                if p.poll() is None:
                    os.killpg(p.pid, 9)
                    p.wait()
    return results


def processes_main(args, overrides) -> None:
    """One process with its share of the environments, then ``args.processes`` together."""
    import puffjax
    total = puffjax.load_config(args.env, **overrides).env.num_envs
    if total % args.processes:
        raise SystemExit(f"env.num_envs {total} does not split evenly over {args.processes} processes")
    if args.pin and args.processes > len(os.sched_getaffinity(0)):
        raise SystemExit(f"--pin needs {args.processes} cores, this process may use {len(os.sched_getaffinity(0))}")
    print(f"{args.env}, {total} envs split over {args.processes} processes, {args.epochs} epochs"
          f"{', one core each (taskset)' if args.pin else ''}")
    print(f"{'processes':>9s} {'envs each':>9s} {'overlap':>7s} {'steps/s':>10s} {'rollout s':>10s} {'learn s':>9s} "
          f"{'CPU s':>8s} {'wall s':>8s}")
    sps = {}
    for overlap in _overlaps(args):
        for p in (1, args.processes):
            o = {**overrides, "train.overlap": overlap}
            code = textwrap.dedent(CHILD.format(env=args.env, overrides=o, epochs=args.epochs, devices=0,
                                                processes=p, share=args.processes, port=_free_port()))
            try:
                rs = _run_processes(code, p, args.pin, 3600)
            except RuntimeError as e:
                print(f"{p:9d} failed: {e}")
                return
            r = rs[0]  # process 0's log counts every process's steps
            sps[p, overlap] = r["sps"]
            print(f"{p:9d} {total // args.processes:9d} {'on' if overlap else 'off':>7s} {r['sps']:10,.0f} "
                  f"{r['rollout_s']:10.3f} {r['learn_s']:9.3f} {sum(x['cpu_s'] for x in rs):8.1f} "
                  f"{max(x['wall_s'] for x in rs):8.1f}")
    for overlap in _overlaps(args):
        print(f"parallel efficiency{' with overlap' if overlap else ''}: "
              f"{sps[args.processes, overlap] / (args.processes * sps[1, overlap]):.2f} "
              f"({args.processes} processes' steps/s over {args.processes} x one process's)")
    if args.independent:
        # the same processes with no collective between them: what sharing the machine alone costs
        code = textwrap.dedent(CHILD.format(env=args.env, overrides={**overrides, "train.overlap": False},
                                            epochs=args.epochs, devices=0, processes=1, share=args.processes,
                                            port=_free_port()))
        rs = _run_processes(code, args.processes, args.pin, 3600)
        together = sum(r["sps"] for r in rs)
        print(f"{args.processes:9d} {total // args.processes:9d} {'alone':>7s} {together:10,.0f} "
              f"{statistics.median(r['rollout_s'] for r in rs):10.3f} {statistics.median(r['learn_s'] for r in rs):9.3f} "
              f"{sum(r['cpu_s'] for r in rs):8.1f} {max(r['wall_s'] for r in rs):8.1f}")
        print(f"independent processes: {together / (args.processes * sps[1, False]):.2f} ({args.processes} "
              f"unconnected processes' summed steps/s over {args.processes} x one process's: the machine's ceiling)")


def _overlaps(args) -> tuple[bool, ...]:
    """The ``train.overlap`` settings to run: off, and on too with ``--overlap``."""
    return (False, True) if args.overlap else (False,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--devices", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--real", action="store_true", help="use the machine's own devices, not forced CPU ones")
    parser.add_argument("--processes", type=int, default=0,
                        help="compare one process with this many on localhost (instead of devices)")
    parser.add_argument("--pin", action="store_true", help="with --processes: process i on core i only")
    parser.add_argument("--independent", action="store_true",
                        help="with --processes: also run the processes at the same time without jax.distributed "
                             "(each its own run): the steps/s the machine allows without any collective")
    parser.add_argument("--overlap", action="store_true",
                        help="run each setting with train.overlap off and on (acting during the update)")
    args, extra = parser.parse_known_args()
    import puffjax
    overrides = puffjax.parse_overrides(extra)
    if args.pin and not args.processes:
        parser.error("--pin goes with --processes")
    if args.processes:
        if args.processes < 2:
            parser.error(f"--processes must be at least 2, got {args.processes}")
        processes_main(args, overrides)
        return
    if args.real:
        import jax
        counts = args.devices or list(range(1, jax.local_device_count() + 1))
    else:
        counts = args.devices or [1, 2, 4]
    print(f"{args.env}, {args.epochs} epochs, {'real' if args.real else 'forced CPU'} devices")
    print(f"{'devices':>7s} {'overlap':>7s} {'epoch s':>9s} {'steps/s':>10s} {'rollout s':>10s} {'learn s':>9s} "
          f"{'CPU s':>8s} {'wall s':>8s}")
    for d in counts:
        env = dict(os.environ)
        if not args.real:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={d}"
        for overlap in _overlaps(args):
            code = textwrap.dedent(CHILD.format(env=args.env, overrides={**overrides, "train.overlap": overlap},
                                                epochs=args.epochs, devices=d if args.real else 0, processes=1,
                                                share=1, port=0))
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
            if p.returncode != 0:
                print(f"{d:7d} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{r['devices']:7d} {'on' if overlap else 'off':>7s} {r['epoch_s']:9.3f} {r['sps']:10,.0f} "
                  f"{r['rollout_s']:10.3f} {r['learn_s']:9.3f} {r['cpu_s']:8.1f} {r['wall_s']:8.1f}")


if __name__ == "__main__":
    main()
