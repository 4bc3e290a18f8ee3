"""Command line: ``puffjax train breakout --train.learning-rate 0.02 --env.num-envs 1024``
(or ``gym:CartPole-v1``, ``mymodule:make_env``, ``path/to/env.h``: see :func:`puffjax.envs.make`),
``puffjax train --config best.toml``, ``puffjax eval breakout --checkpoint RUN_DIR --video out.mp4``,
``puffjax plot RUN_DIR ... -o curves.png``, ``puffjax sweep cartpole --trials 30 --export best.toml``.

Any config field is ``--<section>.<field> VALUE`` (dashes or underscores); unknown env keys
become environment options (``--env.frameskip 4``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings


def _user_errors() -> tuple:
    """The exceptions that report a user's mistake (a bad value, file, environment or its
    options), printed as one ``puffjax:`` line with exit status 2."""
    from .envs import EnvError, StepTimeoutError, WorkerDiedError
    from .envs.custom_c import CompileError
    return (ValueError, OverflowError, MemoryError, OSError, ImportError, CompileError, EnvError, StepTimeoutError,
            WorkerDiedError)


def _error(e: BaseException) -> int:
    """Print ``e`` as one ``puffjax:`` line and return 2: an OSError as its file and reason, a
    message of several paragraphs (an env worker's traceback after the error) as its first."""
    text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.strerror and e.filename:
        text = f"{e.filename}: {e.strerror}"
    elif isinstance(e, MemoryError):
        text = f"out of memory ({text})"
    first = text.strip().split("\n\n")[0]
    print(f"puffjax: {' '.join(first.split())}", file=sys.stderr)
    return 2


def _import_from_cwd() -> None:
    """``module:factory`` environments are found in the current directory too (as ``python -m``
    finds them)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _env_options(extra: list[str]) -> dict:
    """``--env.KEY VALUE`` options of ``eval``: the environment's options, on top of the checkpoint's."""
    from .config import EnvConfig, parse_overrides, parse_value
    options = {}
    for key, value in parse_overrides(extra).items():
        section, _, name = key.partition(".")
        if section != "env" or not name:
            raise ValueError(f"eval takes environment options (--env.KEY VALUE), not --{key}")
        if name.startswith("options."):
            name = name[len("options."):]
        if name in {f.name for f in dataclasses.fields(EnvConfig)}:
            raise ValueError(f"eval plays the checkpoint's env.{name}; --env.{name} is not an environment option"
                             + (" (use --num-envs)" if name == "num_envs" else ""))
        options[name] = parse_value(value)
    return options


def _train(args, extra: list[str]) -> int:
    from . import parallel
    from .config import load_config, load_config_file, parse_overrides, run_config
    from .finite import NonFiniteError
    from .compile_cache import enable_compile_cache
    from .heap import keep_freed_memory
    keep_freed_memory()  # process-wide settings: fine for the CLI's own process
    try:
        if args.compile_cache != "none":
            enable_compile_cache(args.compile_cache)
        if args.distributed or args.coordinator is not None:
            parallel.initialize(args.coordinator, args.num_processes, args.process_id,
                                heartbeat_timeout=args.heartbeat_timeout)
    except (ValueError, RuntimeError) as e:
        print(f"puffjax: {e}", file=sys.stderr)
        return 2
    import jax

    from .checkpoint import load_raw
    from .preflight import check_env_memory, check_writable_dir
    from .trainer import Trainer
    _import_from_cwd()
    try:
        overrides = parse_overrides(extra)
        if args.resume and args.config:
            raise ValueError("--resume continues a run with its own config; it takes no --config file")
        if args.resume:  # continue with the run's own config; the command line's overrides on top
            args.resume = load_raw(args.resume)["path"]  # the checkpoint, chosen once (a warning if any was skipped)
            named = {} if args.env is None else {"env.name": args.env}  # must be the run's environment
            cfg = run_config(args.resume, **{**overrides, **named})
        elif args.config:
            cfg = load_config_file(args.config, **overrides)
            if args.env is not None and args.env != cfg.env.name:
                raise ValueError(f"{args.config} is a {cfg.env.name} config, not {args.env}")
        elif args.env is None:
            raise ValueError("name an environment to train (e.g. puffjax train breakout), a --config file, "
                             "or --resume a run")
        else:
            cfg = load_config(args.env, **overrides)
        if args.run_dir is not None:
            check_writable_dir(args.run_dir, "--run-dir")
        elif args.resume is None:
            check_writable_dir(cfg.train.data_dir, "train.data_dir")
        if not args.resume:
            check_env_memory(cfg.env.name, cfg.env.num_envs, cfg.env.options)
        trainer = Trainer(cfg, run_dir=args.run_dir, resume=args.resume, dashboard=args.dashboard,
                          trust_checkpoint=args.trust_checkpoint)
    except _user_errors() as e:
        return _error(e)
    g = trainer.geom
    if trainer.finished:
        trainer.close()
        print(f"puffjax: {trainer.run_dir} is already complete ({trainer.epoch} of {g.total_epochs} epochs, "
              f"{trainer.global_step:,} steps); raise --train.total-timesteps to train on")
        print(f"puffjax: checkpoint {trainer.last_checkpoint}")
        return 0
    start = f" from epoch {trainer.epoch}" if trainer.resumed_from else ""
    if jax.process_count() > 1:
        start += f", process {jax.process_index()} of {jax.process_count()}"
    print(f"puffjax: training {cfg.env.name} ({trainer.num_params:,} parameters, "
          f"{g.total_epochs} epochs of {g.batch_size:,} steps{start}) -> {trainer.run_dir}")
    try:
        for _ in trainer.train_iter():
            pass
    except KeyboardInterrupt:
        print("\npuffjax: interrupted; saving a checkpoint", file=sys.stderr)
        trainer.last_checkpoint = trainer.save()
    except (NonFiniteError, parallel.PeerLostError) as e:
        print(f"puffjax: {e}", file=sys.stderr)
        last = trainer.last_checkpoint
        print(f"puffjax: last good checkpoint {last}" if last else "puffjax: no checkpoint was written",
              file=sys.stderr)
        return 1
    except _user_errors() as e:  # a full disk, a failing environment...
        code = _error(e)
        last = trainer.last_checkpoint
        print(f"puffjax: last good checkpoint {last}" if last else "puffjax: no checkpoint was written",
              file=sys.stderr)
        return code
    finally:
        trainer.close()
    print(f"puffjax: checkpoint {trainer.last_checkpoint}")
    return 0


def _eval(args, extra: list[str]) -> int:
    from .evaluate import evaluate
    _import_from_cwd()
    try:
        result = evaluate(args.checkpoint, env=args.env, episodes=args.episodes, video=args.video,
                          deterministic=args.deterministic, seed=args.seed, num_envs=args.num_envs,
                          video_frames=args.video_frames, fps=args.fps, env_options=_env_options(extra))
    except _user_errors() as e:
        return _error(e)
    print(result)
    return 0


def _plot(args) -> int:
    from .plot import plot_runs
    try:
        plot_runs(args.run_dirs, args.output, x=args.x, title=args.title)
    except (ValueError, FileNotFoundError) as e:
        print(f"puffjax: {e}", file=sys.stderr)
        return 2
    print(f"puffjax: wrote {args.output}")
    return 0


def _sweep(args, extra: list[str]) -> int:
    from .config import parse_overrides
    from .sweep import STORAGE_ENV, sweep
    storage = args.storage or os.environ.get(STORAGE_ENV) or None
    _import_from_cwd()
    try:
        result = sweep(args.env, args.trials, config_file=args.config, storage=storage, study=args.study,
                       directory=args.dir, workers=args.workers, metric=args.metric, cost=args.cost,
                       objective=args.objective, budget=args.budget, overrides=parse_overrides(extra),
                       export=args.export, export_trial=args.export_trial, trials_per_call=args.trials_per_call)
    except _user_errors() as e:
        return _error(e)
    except KeyboardInterrupt:
        print("puffjax: sweep interrupted; the study is consistent: run the same command to continue it",
              file=sys.stderr)
        return 130
    print(result.table())
    print(f"puffjax: {len(result.rows)} trials in {result.storage}; this run took {result.seconds / 60:.1f} min; "
          f"reports in {result.directory} (trials.csv, pareto.csv, pareto.png)")
    if args.export:
        print(f"puffjax: wrote {args.export} (puffjax train --config {args.export})")
    return 0


def _steps(text: str) -> int:
    from .config import parse_value
    return parse_value(text, int, "--budget")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="puffjax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train", help="train an agent; extra --section.field VALUE options override the config",
        usage="puffjax train [ENV] [--config FILE] [--resume RUN] [--run-dir DIR] [--dashboard MODE] "
              "[--section.field VALUE ...]",
        description="ENV: a shipped environment config (breakout, pong, squared, cartpole, memory, snake), "
                    "gym:ID (any registered gymnasium id), module:factory (a Python function returning a "
                    "gymnasium or PettingZoo Parallel env; found from the current directory too), or "
                    "path/to/env.h (your own C env); gym:ID and module:factory start from a shipped profile "
                    "(continuous or gym, chosen by the action space), a C file from the defaults. Optional "
                    "with --config or --resume. Any config field is --section.field VALUE (--env.workers W: "
                    "Python envs in W processes; other --env.KEY VALUE: the env's options or keyword arguments).")
    train.add_argument("--config", help="a config file (the format of puffjax/configs/*.toml, e.g. one "
                       "exported by puffjax sweep); --section.field overrides apply on top")
    train.add_argument("--resume", help="checkpoint file or run directory to continue from, with the config "
                       "stored in it (--section.field overrides apply on top)")
    train.add_argument("--trust-checkpoint", action="store_true",
                       help="with --resume: load the pickled state of Python environments that the checkpoint holds "
                            "(train.save_python_env_state). Unpickling runs code from the file: only for checkpoints "
                            "you made yourself or trust. Without it such environments are re-seeded")
    train.add_argument("--run-dir", help="where metrics and checkpoints go (default: a new dir under train.data_dir)")
    train.add_argument("--dashboard", default="auto", choices=["auto", "rich", "lines", "none"])
    train.add_argument("--compile-cache", default=None, metavar="DIR",
                       help="JAX's persistent compilation cache (default ~/.cache/puffjax/jax or "
                            "$PUFFJAX_CACHE_DIR/jax; 'none' turns it off)")
    dist = train.add_argument_group("several processes (jax.distributed)")
    dist.add_argument("--distributed", action="store_true",
                      help="join a multi-process run, the cluster detected by JAX (SLURM, Open MPI)")
    dist.add_argument("--distributed.coordinator", dest="coordinator", metavar="HOST:PORT",
                      help="or explicitly: process 0's address (with --distributed.num-processes and "
                           "--distributed.process-id)")
    dist.add_argument("--distributed.num-processes", dest="num_processes", type=int, metavar="N")
    dist.add_argument("--distributed.process-id", dest="process_id", type=int, metavar="I")
    dist.add_argument("--distributed.heartbeat-timeout", dest="heartbeat_timeout", type=int, default=30,
                      metavar="S", help="seconds without a heartbeat before a process counts as lost (30)")
    ev = sub.add_parser("eval", help="play a checkpoint: per-episode and mean stats, optionally a video")
    ev.add_argument("env", help="environment name, any form train takes (must match the checkpoint's); "
                    "--env.KEY VALUE options go to the environment on top of the checkpoint's (e.g. "
                    "--env.render-mode rgb_array)")
    ev.add_argument("--checkpoint", required=True, help="checkpoint file, checkpoints/ dir or run dir (its latest)")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--video", help="write environment 0's frames to this .mp4 or .gif")
    ev.add_argument("--video-frames", type=int, default=1000, help="at most this many video frames")
    ev.add_argument("--fps", type=int, default=30)
    ev.add_argument("--deterministic", action="store_true", help="take the most likely action, not a sample")
    ev.add_argument("--num-envs", type=int, default=None, help="environments played at once (default min(episodes, 8))")
    ev.add_argument("--seed", type=int, default=0)
    pl = sub.add_parser("plot", help="learning curves of one or more run directories, on one figure")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("-o", "--output", default="curves.png", help="image file (default curves.png)")
    pl.add_argument("--x", default="both", choices=["steps", "time", "both"],
                    help="x axis: agent steps, wall time, or both (two rows)")
    pl.add_argument("--title")
    sw = sub.add_parser(
        "sweep", help="hyperparameter sweep on Optuna: score against cost, Pareto front, best config",
        usage="puffjax sweep [ENV] [--config FILE] --trials N [--storage URL] [--study NAME] [--dir DIR] "
              "[--workers W] [--trials-per-call K] [--metric KEY] [--cost time|steps] [--objective pareto|score] "
              "[--budget STEPS] [--export FILE.toml [--export-trial N]] [--section.field VALUE ...]",
        description="Runs trials until the study holds N of them (again: continues it). The search space is "
                    "the config file's [sweep] section, or the default space. --section.field options change "
                    "the base config. See the puffjax.sweep package.")
    sw.add_argument("--config", help="a config file to sweep around (its [sweep] section is the search space)")
    sw.add_argument("--trials", type=int, required=True, help="trials the study holds when done (interrupted "
                    "ones excluded); 0: only report (and --export)")
    sw.add_argument("--storage", help="SQLAlchemy URL of the study's database (default: "
                    "$PUFFJAX_SWEEP_STORAGE, which keeps a password off the command line, else sqlite in --dir); "
                    "workers on several machines share a study through one PostgreSQL or MySQL URL; shown with "
                    "its password hidden")
    sw.add_argument("--study", help="study name (default: the environment's name)")
    sw.add_argument("--dir", help="the sweep's directory: database, trial runs, reports (default sweeps/STUDY)")
    sw.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1), each "
                    "on its own share of the CPU cores")
    sw.add_argument("--trials-per-call", type=int, default=1, metavar="K", help="on a JAX environment: each worker "
                    "trains K trials together in one vmapped call (default 1); the space may then hold only "
                    "hyperparameters such as train.learning_rate, train.gamma, train.ent_coef")
    sw.add_argument("--metric", help="the logged value to maximize (default environment/perf)")
    sw.add_argument("--cost", choices=["time", "steps"], help="a trial's cost: training seconds (default) or "
                    "agent steps")
    sw.add_argument("--objective", choices=["pareto", "score"], help="pareto (default): maximize the score and "
                    "minimize the cost; score: the score alone")
    sw.add_argument("--budget", type=_steps, help="agent steps per trial at most (default: the config's "
                    "train.total_timesteps); trials train between a quarter of it and all of it")
    sw.add_argument("--export", help="write the best trial's config to this .toml (puffjax train --config FILE)")
    sw.add_argument("--export-trial", type=int, help="export this trial instead of the best (e.g. a cheaper "
                    "point of the Pareto front)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # The environment of `train` and `sweep` is an optional first word: taken out by hand, since an
    # optional positional would swallow the value of an unknown --section.field option.
    env = None
    if argv[:1] in (["train"], ["sweep"]) and len(argv) > 1 and not argv[1].startswith("-"):
        env = argv.pop(1)
    args, extra = parser.parse_known_args(argv)
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.showwarning = _one_line_warning
        return _run(parser, args, env, extra)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning on the command line: one line, without the source line that raised it."""
    print(f"puffjax: warning: {message}", file=sys.stderr if file is None else file)


def _run(parser, args, env, extra: list[str]) -> int:
    if args.command in ("train", "sweep"):
        args.env = env
        return (_train if args.command == "train" else _sweep)(args, extra)
    if args.command == "eval":
        return _eval(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "plot":
        return _plot(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
