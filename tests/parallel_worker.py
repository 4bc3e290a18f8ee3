"""One process of a multi-process test run (tests/test_parallel.py starts two of these).

    python tests/parallel_worker.py --coordinator 127.0.0.1:PORT --process-id I --num-processes 2 \
        --run-dir DIR --out FILE.json [--resume] [--overrides JSON]

Trains CartPole with the given overrides and writes a JSON summary to --out: the SHA-256 of the
final parameters, the logs, the numbers of epochs and agent steps played, this process's own
episode counts and how many process_allgather calls training made.
"""
import argparse
import hashlib
import json

import jax
import numpy as np
from jax.experimental import multihost_utils

import puffjax


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--coordinator")
    p.add_argument("--process-id", type=int)
    p.add_argument("--num-processes", type=int)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overrides", default="{}")
    args = p.parse_args()
    if args.num_processes:
        puffjax.parallel.initialize(args.coordinator, args.num_processes, args.process_id, heartbeat_timeout=10)
    overrides = json.loads(args.overrides)
    if args.resume:
        cfg = puffjax.run_config(args.run_dir, **overrides)
        trainer = puffjax.Trainer(cfg, resume=args.run_dir, dashboard="none")
    else:
        cfg = puffjax.load_config("cartpole", **overrides)
        trainer = puffjax.Trainer(cfg, run_dir=args.run_dir, dashboard="none")
    local_n = []  # this process's own episode counts per epoch, to check the merged logs against
    env_log = trainer.env.log

    def counted_log():
        log = env_log()
        local_n.append(log.get("n", 0))
        return log

    trainer.env.log = counted_log
    gathers = []  # process_allgather calls while training: the collectives outside the jitted programs
    allgather = multihost_utils.process_allgather

    def counted_allgather(*a, **kw):
        gathers.append(1)
        return allgather(*a, **kw)

    multihost_utils.process_allgather = counted_allgather
    history = trainer.train()
    trainer.close()
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(trainer.state.params):
        digest.update(np.ascontiguousarray(puffjax.parallel.to_local(leaf)).tobytes())
    with open(args.out, "w") as f:
        json.dump({"params": digest.hexdigest(), "history": history, "epoch": trainer.epoch,
                   "timesteps": trainer.timesteps, "local_n": local_n, "allgathers": len(gathers)}, f)


if __name__ == "__main__":
    main()
