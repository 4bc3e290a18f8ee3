"""puffjax sweep: the search space, config files, and tiny CartPole sweeps run through the CLI.

Every sweep that starts worker processes runs as `python -m puffjax sweep` in its own session,
killed as a group if it outlives its timeout, so no test can hang or leave processes behind.
Trials whose configs repeat share the test session's persistent JAX compilation cache.
"""
import contextlib
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

import puffjax
from puffjax.config import load_config, load_config_file, write_config
from puffjax.geometry import fit_geometry, geometry
from puffjax.sweep import REPORT_POINTS, result, sweep
from puffjax.sweep.prune import median_stops
from puffjax.sweep.space import default_space, space_from_section, validate_space
from puffjax.sweep.study import STORAGE_ENV, redact_url
from puffjax.sweep.supervisor import worker_command, worker_env

TINY = ["--env.num-envs", "16", "--train.bptt-horizon", "16", "--train.minibatch-size", "128",
        "--policy.hidden-size", "16"]
FIXED = {"defaults": False, "train.ent_coef": {"values": [0.0]}}  # every trial the same config: cache hits


@pytest.fixture(scope="module")
def jax_cache():
    """The session's compilation cache (tests/conftest.py): the folder ``puffjax train`` uses
    by default too, so a run of an exported config finds the programs its trial compiled."""
    return os.environ["JAX_COMPILATION_CACHE_DIR"]


def cli_sweep(tmp_path, jax_cache, *args, timeout=150, wait=True):
    """Start `puffjax sweep` in its own session (cwd tmp_path); with ``wait``, its (rc, output)."""
    return python(tmp_path, jax_cache, "-m", "puffjax", "sweep", *args, timeout=timeout, wait=wait)


def python(tmp_path, jax_cache, *args, timeout=150, wait=True):
    """Start `python ARGS` in its own session (cwd tmp_path); with ``wait``, its (rc, output)."""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": jax_cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    p = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if not wait:
        return p
    return finish(p, timeout)


def finish(p, timeout):
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"the sweep did not finish within {timeout} s:\n{out}")
    return p.returncode, out


def space_file(tmp_path, section: dict, name="tiny.toml"):
    """A config file: the tiny CartPole and a [sweep] section."""
    cfg = load_config("cartpole", **{"env.num_envs": 16, "train.bptt_horizon": 16, "train.minibatch_size": 128,
                                     "policy.hidden_size": 16, "train.total_timesteps": 1024})
    path = tmp_path / name
    write_config(cfg, str(path))
    lines = ["", "[sweep]"] + [f"{json.dumps(k)} = {_inline(v)}" for k, v in section.items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return str(path)


def _inline(v):
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_inline(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def trials_of(directory, study="tiny"):
    s = optuna.load_study(study_name=study, storage=f"sqlite:///{directory}/study.db")
    return s.get_trials()


# ---------------------------------------------------------------------------- no training
def test_space_section_forms_and_defaults():
    cfg = load_config("cartpole")
    space = space_from_section({"train": {"gamma": {"low": 0.95, "high": 0.999}},
                                "train.update_epochs": {"low": 1, "high": 3},
                                "env.max_steps": {"values": [200, 500]},
                                "train.prio_alpha": False}, cfg)
    assert space["train.gamma"].low == 0.95 and not space["train.gamma"].int
    assert space["train.update_epochs"].int and space["env.max_steps"].values == (200, 500)
    assert "train.prio_alpha" not in space and "train.learning_rate" in space
    validate_space(space, cfg)
    only = space_from_section({"defaults": False, "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}, cfg)
    assert list(only) == ["train.learning_rate"] and only["train.learning_rate"].log


@pytest.mark.parametrize("name", puffjax.config.available())
def test_default_space_is_legal_for_every_shipped_config(name):
    cfg = load_config(name)
    space = default_space(cfg)
    validate_space(space, cfg)
    assert {"train.learning_rate", "train.gamma", "train.gae_lambda", "train.clip_coef", "train.vf_coef",
            "train.ent_coef", "train.minibatch_size", "train.bptt_horizon", "env.num_envs", "train.update_epochs",
            "train.prio_alpha", "train.prio_beta0", "train.vtrace_rho_clip", "train.vtrace_c_clip"} <= set(space)


@pytest.mark.parametrize("section, message", [
    ({"train.gamma": {"low": 0.9, "high": 1.5}}, "train.gamma: high 1.5 is not a legal value"),
    ({"train.learning_rate": {"low": 0.0, "high": 0.1}}, "train.learning_rate: low 0.0 is not a legal value"),
    ({"train.prio_beta0": {"values": [0.5, 2.0]}}, "train.prio_beta0: value 2.0 is not a legal value"),
    ({"env.max_steps": {"low": 0, "high": 500}}, "env.max_steps: low 0 is not a legal value"),
    ({"train.ent_coef": {"low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
    ({"train.nope": {"low": 1, "high": 2}}, "train.nope.*no such field"),
    ({"policy.symlog": {"low": 0, "high": 1}}, "bool field takes values"),
    ({"train.update_epochs": {"low": 1.5, "high": 4}}, "int field needs integer low and high"),
    ({"train.gamma": {"low": 0.99, "high": 0.9}}, "must be below high"),
    ({"train.gamma": {"low": 0.9, "hi": 0.99}}, "unknown key"),
    ({"train.total_timesteps": {"low": 1000, "high": 10_000_000}}, "above the budget"),
    ({"env.name": {"values": ["pong"]}}, "cannot be swept"),
])
def test_bad_space_is_an_error_naming_the_parameter(section, message):
    cfg = load_config("cartpole")
    with pytest.raises(ValueError, match=message):
        validate_space(space_from_section(section, cfg), cfg)


def test_fit_geometry_repairs_or_rejects():
    cfg = load_config("cartpole", **{"env.num_envs": 700, "train.bptt_horizon": 37, "train.minibatch_size": 3000})
    with pytest.raises(ValueError):
        geometry(cfg.train, 700)
    assert fit_geometry(cfg.train, 700) == ["train.minibatch_size: 3000 -> 2590"]
    assert geometry(cfg.train, 700).minibatch_segments == 70
    big = load_config("cartpole", **{"train.bptt_horizon": 32, "train.minibatch_size": 1 << 20, "train.max_minibatch_size": 1000})
    assert fit_geometry(big.train, 256) == ["train.minibatch_size: 1048576 -> 8192",
                                            "train.max_minibatch_size: 1000 -> 512"]
    assert geometry(big.train, 256).accumulation_steps == 16
    short = load_config("cartpole", **{"train.total_timesteps": 100, "train.bptt_horizon": 32})
    with pytest.raises(ValueError, match="no epoch would run"):
        fit_geometry(short.train, 256)  # no budget given: nothing to raise it to
    assert fit_geometry(short.train, 256, budget=8192) == ["train.total_timesteps: 100 -> 8192"]
    short.train.total_timesteps = 100
    with pytest.raises(ValueError, match="no epoch would run"):
        fit_geometry(short.train, 256, budget=8000)  # one batch (8192 steps) is over the budget


def test_train_config_flag_errors(tmp_path, capsys):
    from puffjax.cli import main
    path = str(tmp_path / "c.toml")
    write_config(load_config("cartpole"), path)
    assert main(["train", "pong", "--config", path]) == 2
    assert "is a cartpole config, not pong" in capsys.readouterr().err
    assert main(["train", "--config", path, "--resume", str(tmp_path)]) == 2
    assert "takes no --config" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--config", path, "--train.gamma", "2"]) == 2
    assert "train.gamma" in capsys.readouterr().err


def test_bad_sweep_arguments(tmp_path):
    with pytest.raises(ValueError, match="cost must be one of"):
        sweep("cartpole", 1, cost="money", directory=str(tmp_path))
    with pytest.raises(ValueError, match="name an environment"):
        sweep(None, 1, directory=str(tmp_path))
    with pytest.raises(ValueError, match="train.gamma: high 2.0"):
        sweep("cartpole", 1, directory=str(tmp_path), space={"train.gamma": {"low": 0.9, "high": 2.0}})


@pytest.mark.parametrize("url, shown", [
    ("postgresql://user:PASSWORD@host/db", "postgresql://user:***@host/db"),
    ("postgresql+psycopg2://user:PASSWORD@host:5432/db", "postgresql+psycopg2://user:***@host:5432/db"),
    ("mysql+pymysql://root:PASSWORD@127.0.0.1:3306/optuna?charset=utf8mb4",
     "mysql+pymysql://root:***@127.0.0.1:3306/optuna?charset=utf8mb4"),
    ("postgresql://:PASSWORD@host/db", "postgresql://:***@host/db"),  # no user name
    ("postgresql://user:P%40SS%2FWORD@host/db", "postgresql://user:***@host/db"),  # percent-encoded
    ("postgresql://user:P@SS/WO?RD@host/db", "postgresql://user:***@host/db"),  # raw '@', '/', '?' in it
    ("postgresql://user:PASSWORD@[::1]:5432/db", "postgresql://user:***@[::1]:5432/db"),
    ("postgresql://user@host/db?password=PASSWORD&sslmode=require",
     "postgresql://user@host/db?password=***&sslmode=require"),
    ("mysql://user@host/db?charset=utf8&passwd=PASSWORD", "mysql://user@host/db?charset=utf8&passwd=***"),
    ("postgresql://u:PASSWORD@host/db?sslpassword=PASSWORD", "postgresql://u:***@host/db?sslpassword=***"),
    ("mssql+pyodbc://user:PASSWORD@dsn", "mssql+pyodbc://user:***@dsn"),
    # no password: unchanged
    ("sqlite:///study.db", "sqlite:///study.db"),
    ("sqlite:////home/me/sweeps/a:b@c/study.db", "sqlite:////home/me/sweeps/a:b@c/study.db"),
    ("sqlite://", "sqlite://"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("postgresql://host:5432/db", "postgresql://host:5432/db"),
    ("postgresql:///db?host=/var/run/postgresql", "postgresql:///db?host=/var/run/postgresql"),
])
def test_redact_url_hides_passwords_only(url, shown):
    assert redact_url(url) == shown
    assert "PASSWORD" not in redact_url(url) and "P@SS" not in redact_url(url)


def test_workers_get_the_storage_url_in_their_environment_not_their_command_line(tmp_path):
    url = "postgresql://user:PASSWORD@db.example/sweeps"
    cmd = worker_command("study", str(tmp_path), 5, {0, 1})
    assert not any("PASSWORD" in a or "postgresql" in a for a in cmd)
    assert cmd[1:] == ["-m", "puffjax.sweep.worker", "--study", "study", "--dir", str(tmp_path), "--trials", "5",
                       "--cpus", "0,1", "--parent", str(os.getpid())]
    env = worker_env(url, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", STORAGE_ENV: url}
    # a worker without it says where the URL goes
    p = subprocess.run([sys.executable, "-m", "puffjax.sweep.worker", *cmd[3:]], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != STORAGE_ENV}, timeout=120)
    assert p.returncode == 2 and f"environment variable {STORAGE_ENV}, which is not set" in p.stderr


def test_a_storage_password_is_never_shown(tmp_path, monkeypatch, capsys):
    """Progress lines, results, errors and files show the storage URL with its password hidden.
    The PostgreSQL URL is served by an SQLite file; no worker is started."""
    from puffjax.cli import main
    from puffjax.sweep import study as study_module
    package = sys.modules["puffjax.sweep"]  # the attribute puffjax.sweep is the function
    url, sqlite = "postgresql://user:hunter2@db.example/sweeps", f"sqlite:///{tmp_path}/study.db"
    open_storage = study_module.open_storage
    monkeypatch.setattr(study_module, "open_storage", lambda u: open_storage(sqlite if u == url else u))
    started = []
    monkeypatch.setattr(package, "run_workers", lambda s, store, storage, *a: started.append(storage))
    path = space_file(tmp_path, FIXED)
    res = sweep(config_file=path, trials=1, storage=url, directory=str(tmp_path), progress=print)
    assert started == [url]  # handed on as it is (to the workers' environment)
    assert res.storage == "postgresql://user:***@db.example/sweeps" and "hunter2" not in repr(res) + res.table()
    out = capsys.readouterr().out
    assert "study 'tiny' (postgresql://user:***@db.example/sweeps): 0 of 1 trials done" in out
    with pytest.raises(ValueError, match=r"no study 'other' in postgresql://user:\*\*\*@db") as error:
        result(url, "other")
    assert "hunter2" not in str(error.value)
    with pytest.raises(ValueError, match="metric: 'environment/perf' in the study") as error:
        sweep(config_file=path, trials=0, storage=url, directory=str(tmp_path), metric="environment/score")
    assert "hunter2" not in str(error.value)
    with pytest.raises(ValueError, match=r"storage 'nonsense://user:\*\*\*@host' is not a database URL") as error:
        sweep(config_file=path, trials=0, storage="nonsense://user:hunter2@host", directory=str(tmp_path))
    assert "hunter2" not in str(error.value)
    monkeypatch.setenv(STORAGE_ENV, url)  # the CLI's default storage, off its command line
    assert main(["sweep", "--config", path, "--trials", "0", "--dir", str(tmp_path), "--study", "other"]) == 0
    assert main(["sweep", "--config", path, "--trials", "0", "--dir", str(tmp_path), "--export", "x.toml"]) == 2
    out = capsys.readouterr()
    assert "(postgresql://user:***@db.example/sweeps): 0 trials" in out.out and "has no completed" in out.err
    assert "hunter2" not in out.out + out.err
    assert not [f for f in tmp_path.rglob("*") if f.is_file() and b"hunter2" in f.read_bytes()]


def test_median_rule_by_hand():
    completed = [[[100, 0.1], [200, 0.2]], [[100, 0.5], [200, 0.6]], [[100, 0.3]], [[100, 0.9], [200, 0.8]],
                 [[100, 0.7], [200, 0.4]]]
    # at step 100 the completed trials hold 0.1 0.5 0.3 0.9 0.7: median 0.5
    assert median_stops([[100, 0.45]], completed, warmup=100)
    assert not median_stops([[100, 0.5]], completed, warmup=100)  # not below it
    assert not median_stops([[50, 0.55], [100, 0.1]], completed, warmup=100)  # the best so far counts
    # at step 200 four of them hold 0.2 0.6 0.8 0.4: median (0.4 + 0.6) / 2 = 0.5
    assert median_stops([[200, 0.49]], completed, warmup=100)
    assert not median_stops([[200, 0.51]], completed, warmup=100)
    assert not median_stops([[100, 0.0]], completed, warmup=101)  # still warming up
    assert not median_stops([[300, 0.0]], completed, warmup=0)  # no completed trial reached step 300
    assert not median_stops([[100, 0.0]], completed[:4], warmup=0)  # 4 of the 5 start-up trials
    assert median_stops([[100, 0.0]], completed[:4], warmup=0, startup=4)
    assert median_stops([[100, 0.35]], completed[:4] + [[]], warmup=0)  # a curveless trial counts, median 0.4
    assert not median_stops([[100, 0.0]], [], warmup=0, startup=0)


def test_median_rule_matches_optunas_median_pruner():
    """The rule decides as Optuna's MedianPruner on a single-objective study whose trials
    reported their curves as intermediate values."""
    import random
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng, steps, decisions = random.Random(0), [10 * s for s in range(1, 11)], set()
    for _ in range(60):
        completed = [[[s, rng.random()] for s in steps if rng.random() < 0.8] for _ in range(rng.randint(0, 8))]
        study = optuna.create_study(direction="maximize",
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30))
        for c in completed:
            study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values={s: v for s, v in c}))
        trial, curve = study.ask(), []
        for s in steps:
            if rng.random() < 0.3:
                continue
            curve.append([s, rng.random()])
            trial.report(curve[-1][1], s)
            ours = median_stops(curve, completed, warmup=30)
            assert ours == trial.should_prune(), (curve, completed)
            decisions.add(ours)
    assert decisions == {True, False}


# ---------------------------------------------------------------------------- sweeps
def test_tiny_sweep_exports_a_config_that_trains_and_resumes(tmp_path, jax_cache):
    out_dir = tmp_path / "sweeps" / "cartpole"
    # budget 2048: the default space's largest batch (4 x 16 envs, 2 x 16 steps) fits in it
    rc, out = cli_sweep(tmp_path, jax_cache, "cartpole", "--trials", "1", "--budget", "2048", *TINY)
    assert rc == 0, out
    assert "trial 0 complete" in out and "Pareto front" in out
    rc, out = cli_sweep(tmp_path, jax_cache, "cartpole", "--trials", "2", *TINY, "--export", "best.toml")
    assert rc == 0, out
    assert "1 of 2 trials done; running 1" in out  # the same study, with its stored budget
    res = result(f"sqlite:///{out_dir}/study.db", "cartpole", str(out_dir))
    assert [r["trial"] for r in res.rows] == [0, 1] and res.rows[0]["state"] == "COMPLETE"
    # a sampled config may diverge, or end no episode within this tiny budget (both recorded with
    # their reason, not bugs); nothing else may go wrong
    reason = res.rows[1]["reason"] or ""
    assert res.rows[1]["state"] == "COMPLETE" or reason.startswith("diverged") or "was never logged" in reason, \
        res.rows[1]
    # trial 0: the config's own values
    assert res.rows[0]["params"]["train.learning_rate"] == load_config("cartpole").train.learning_rate
    assert res.rows[0]["params"] != res.rows[1]["params"]
    assert res.best in res.pareto and all(0.0 <= r["score"] <= 1.0 for r in res.rows)
    assert all(r["steps"] <= 2048 and r["seconds"] > 0 for r in res.rows if r["state"] == "COMPLETE")
    rows = list(csv.DictReader(open(out_dir / "trials.csv")))
    assert [int(r["trial"]) for r in rows] == [0, 1] and "train.gamma" in rows[0]
    assert (out_dir / "pareto.png").stat().st_size > 0 and (out_dir / "pareto.csv").exists()
    exported = load_config_file(str(tmp_path / "best.toml"))
    assert exported.to_dict() == res.best["config"]
    # the exported file trains as is
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": jax_cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    p = subprocess.run([sys.executable, "-m", "puffjax", "train", "--config", "best.toml", "--dashboard", "none",
                        "--train.video-frames", "0", "--run-dir", "run"], cwd=tmp_path, env=env, timeout=120,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    best = load_config_file(str(tmp_path / "best.toml"))
    epochs = res.best["steps"] // (best.env.num_envs * best.train.bptt_horizon)
    assert len(open(tmp_path / "run" / "metrics.jsonl").readlines()) == epochs
    # continuing with other settings is refused, naming them
    with pytest.raises(ValueError, match="metric: 'environment/perf' in the study, 'environment/score' here"):
        sweep("cartpole", 3, directory=str(out_dir), metric="environment/score",
              overrides={"env.num_envs": 16, "train.bptt_horizon": 16, "train.minibatch_size": 128,
                         "policy.hidden_size": 16})


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path, jax_cache):
    path = space_file(tmp_path, {"defaults": False, "policy.kind": {"values": ["default", "cnn"]},
                                 "env.num_envs": {"values": [16, 128]},
                                 "train.learning_rate": {"low": 0.001, "high": 1e30, "log": True}})
    directory = str(tmp_path / "fail")
    sweep(config_file=path, trials=0, directory=directory, progress=None)  # creates the study only
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{directory}/study.db")
    lr = load_config("cartpole").train.learning_rate
    study.enqueue_trial({"policy.kind": "cnn", "env.num_envs": 16, "train.learning_rate": lr})  # raises
    study.enqueue_trial({"policy.kind": "default", "env.num_envs": 128,  # one batch: 2048 steps > the budget
                         "train.learning_rate": lr})
    study.enqueue_trial({"policy.kind": "default", "env.num_envs": 16, "train.learning_rate": 1e30})  # diverges
    rc, out = cli_sweep(tmp_path, jax_cache, "--config", path, "--trials", "4", "--dir", "fail")
    assert rc == 0, out
    config, raising, big, diverging = trials_of(tmp_path / "fail")
    assert config.state.name == "COMPLETE"  # the first queued trial: the config itself
    assert raising.state.name == big.state.name == diverging.state.name == "FAIL"
    assert "kind='cnn' needs an image observation" in raising.user_attrs["fail_reason"]
    assert "impossible batch geometry" in big.user_attrs["fail_reason"]
    assert diverging.user_attrs["fail_reason"].startswith("diverged: epoch 1: the loss or its gradients")
    assert "failed trials" in out


def test_two_workers_share_one_study(tmp_path, jax_cache):
    """Through a storage URL that holds a password: it reaches the workers, and no line shows it."""
    path = space_file(tmp_path, FIXED)
    url = f"sqlite:///file:{tmp_path}/w2/study.db?uri=true&password=hunter2"  # SQLite ignores the password
    rc, out = cli_sweep(tmp_path, jax_cache, "--config", path, "--trials", "4", "--workers", "2", "--dir", "w2",
                        "--storage", url, "--objective", "score", "--cost", "steps")  # the scalar mode, too
    assert rc == 0, out
    assert "&password=***)" in out and "hunter2" not in out
    trials = trials_of(tmp_path / "w2")
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert all(t.values == [t.user_attrs["score"]] for t in trials)  # one objective: the score
    res = result(f"sqlite:///{tmp_path}/w2/study.db", "tiny")
    assert all(r["cost"] == r["steps"] == 1024 for r in res.rows) and res.best["score"] == max(
        r["score"] for r in res.rows)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4


def test_pruned_trial_is_recorded_as_pruned(tmp_path, jax_cache):
    path = space_file(tmp_path, FIXED)
    directory = str(tmp_path / "pruned")
    res = sweep(config_file=path, trials=0, directory=directory, progress=None)  # creates the study only
    assert res.rows == []
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{directory}/study.db")
    grid = 1024 // REPORT_POINTS
    for _ in range(5):  # finished trials that were perfect at every step
        study.add_trial(optuna.trial.create_trial(
            values=[1.0, 1.0], user_attrs={"curve": [[s * grid, 1.0] for s in range(1, REPORT_POINTS + 1)],
                                            "score": 1.0, "seconds": 1.0, "steps": 1024}))
    rc, out = cli_sweep(tmp_path, jax_cache, "--config", path, "--trials", "6", "--dir", "pruned")
    assert rc == 0, out
    trial = trials_of(tmp_path / "pruned")[0]  # the queued first trial: the config itself
    assert trial.state.name == "PRUNED", trial.user_attrs
    assert trial.user_attrs["score"] < 1.0 and trial.user_attrs["steps"] < 1024
    assert "trial 0 pruned" in out


def _wait_for_running(directory, p, timeout=60):
    """The worker ("host:pid") of the first trial seen running. Reads the SQLite file read-only:
    opening it with Optuna would race the sweep's own first initialization of the database."""
    db, deadline = directory / "study.db", time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            pytest.fail(f"the sweep ended before a trial was seen running:\n{p.communicate()[0]}")
        if db.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
                    rows = con.execute("SELECT a.value_json FROM trials t JOIN trial_user_attributes a ON "
                                       "a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker'"
                                       ).fetchall()
                if rows:
                    return json.loads(rows[0][0])
            except sqlite3.Error:  # the tables are not there yet
                pass
        time.sleep(0.3)
    pytest.fail("no trial started")


# `puffjax.sweep` called from Python with a SIGINT handler of the caller's own
API_SWEEP = """
import signal, sys, puffjax
def handler(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGINT, handler)
try:
    puffjax.sweep(config_file=sys.argv[1], trials=2, directory=sys.argv[2], budget=262144, progress=None)
except KeyboardInterrupt:
    print("interrupted; SIGINT handler", "restored" if signal.getsignal(signal.SIGINT) is handler else "changed")
"""


def _signal_a_running_trial(tmp_path, jax_cache, directory, send, timeout, api=False):
    """Start a 2-trial sweep (the CLI, or ``api``: :data:`API_SWEEP`), call
    ``send(sweep_process, worker_pid)`` once a trial runs, and return the sweep's (exit status,
    output); the sweep is killed if it outlives the test."""
    path = space_file(tmp_path, FIXED)
    if api:
        p = python(tmp_path, jax_cache, "-c", API_SWEEP, path, directory, wait=False)
    else:  # trials of a few seconds: caught running, not in their last step
        p = cli_sweep(tmp_path, jax_cache, "--config", path, "--trials", "2", "--dir", directory, "--budget", "262144",
                      wait=False)
    try:
        worker = _wait_for_running(tmp_path / directory, p)
        send(p, int(worker.rpartition(":")[2]))
        return finish(p, timeout)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


@pytest.mark.slow  # ~17 s: two worker starts; the Ctrl-C test below covers the same recording path
def test_killed_worker_fails_its_trial_and_the_sweep_goes_on(tmp_path, jax_cache):
    rc, out = _signal_a_running_trial(tmp_path, jax_cache, "kill", lambda p, worker: os.kill(worker, signal.SIGKILL),
                                      120)
    assert rc == 0, out
    first, second = trials_of(tmp_path / "kill")
    assert first.state.name == "FAIL" and "killed by signal 9" in first.user_attrs["fail_reason"]
    assert second.state.name == "COMPLETE"


@pytest.mark.parametrize("target", ["group", "worker"])
def test_ctrl_c_leaves_the_study_consistent(tmp_path, jax_cache, target):
    def send(p, worker):
        if target == "group":
            os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        else:  # the worker alone (`kill -INT`; or Ctrl-C where the sweep's own process ignores SIGINT)
            os.kill(worker, signal.SIGINT)

    rc, out = _signal_a_running_trial(tmp_path, jax_cache, "intr", send, 90)
    assert rc == 130, out
    assert "run the same command to continue" in out
    trials = trials_of(tmp_path / "intr")
    assert trials and all(t.state.name != "RUNNING" for t in trials)
    assert trials[-1].state.name == "FAIL" and trials[-1].user_attrs["fail_reason"] == "interrupted"


def test_interrupted_sweep_restores_the_callers_sigint_handler(tmp_path, jax_cache):
    """SIGINT to the calling process alone: the sweep passes it on to its workers, records their
    trials as interrupted, and gives the caller back its own SIGINT handler."""
    rc, out = _signal_a_running_trial(tmp_path, jax_cache, "api", lambda p, worker: os.kill(p.pid, signal.SIGINT),
                                      90, api=True)
    assert rc == 0 and "interrupted; SIGINT handler restored" in out, out
    trials = trials_of(tmp_path / "api")
    assert trials and all(t.state.name != "RUNNING" for t in trials)
    assert trials[-1].state.name == "FAIL" and trials[-1].user_attrs["fail_reason"] == "interrupted"


def test_ctrl_c_inside_a_storage_call_waits_for_it_to_return():
    """SIGINT that lands in storage code (here a function whose module is named like SQLAlchemy's)
    is raised only at the next check; elsewhere at once; a second SIGINT is ignored."""
    from puffjax.sweep.interrupt import check, interrupt_once
    storage = {"__name__": "sqlalchemy.pool", "os": os, "signal": signal}
    exec("def call():\n    os.kill(os.getpid(), signal.SIGINT)\n    return sum(range(1000))", storage)
    with interrupt_once():
        assert storage["call"]() == 499500  # not cut short
        with pytest.raises(KeyboardInterrupt):
            check()
        check()  # raised once only
    with pytest.raises(KeyboardInterrupt):
        with interrupt_once():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    with interrupt_once():
        with contextlib.suppress(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGINT)  # the second: ignored
        time.sleep(0.05)
        check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
