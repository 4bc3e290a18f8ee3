"""Command line: ``puffjax train breakout --train.learning-rate 0.02 --env.num-envs 1024``.

Any config field is ``--<section>.<field> VALUE`` (dashes or underscores); unknown env keys
become environment options (``--env.frameskip 4``).
"""
from __future__ import annotations

import argparse
import sys


def parse_overrides(tokens: list[str]) -> dict:
    """['--train.learning-rate', '0.02', '--env.frameskip=4'] -> {'train.learning_rate': '0.02', ...}"""
    overrides, i = {}, 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or "." not in tok:
            raise SystemExit(f"puffjax: unexpected argument {tok!r}; config overrides look like "
                             f"--train.learning-rate 0.02")
        key, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens):
                raise SystemExit(f"puffjax: {tok} needs a value")
            value, i = tokens[i + 1], i + 1
        overrides[key.replace("-", "_")] = value
        i += 1
    return overrides


def _train(args, extra: list[str]) -> int:
    from .config import load_config
    from .trainer import Trainer
    try:
        cfg = load_config(args.env, **parse_overrides(extra))
        trainer = Trainer(cfg, run_dir=args.run_dir, resume=args.resume, dashboard=args.dashboard)
    except (ValueError, FileNotFoundError) as e:
        print(f"puffjax: {e}", file=sys.stderr)
        return 2
    print(f"puffjax: training {cfg.env.name} ({trainer.num_params:,} parameters, "
          f"{trainer.geom.total_epochs} epochs of {trainer.geom.batch_size:,} steps) -> {trainer.run_dir}")
    try:
        for _ in trainer.train_iter():
            pass
    except KeyboardInterrupt:
        print("\npuffjax: interrupted; saving a checkpoint", file=sys.stderr)
        trainer.last_checkpoint = trainer.save()
    finally:
        trainer.close()
    print(f"puffjax: checkpoint {trainer.last_checkpoint}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="puffjax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an agent; extra --section.field VALUE options override the config")
    train.add_argument("env", help="environment config name (breakout, pong, squared, cartpole, memory)")
    train.add_argument("--resume", help="checkpoint file or run directory to continue from")
    train.add_argument("--run-dir", help="where metrics and checkpoints go (default: a new dir under train.data_dir)")
    train.add_argument("--dashboard", default="auto", choices=["auto", "rich", "lines", "none"])
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":
        return _train(args, extra)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
