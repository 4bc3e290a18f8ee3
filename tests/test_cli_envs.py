"""`puffjax train` for any env: gym:ID (here in worker processes), module:factory (gymnasium or
PettingZoo), each with the default config plus overrides, and resumable; bad names refused."""
import json
import os


import puffjax
from puffjax.cli import main

SMALL = ["--train.bptt-horizon", "16", "--train.minibatch-size", "256", "--train.video-frames", "0",
         "--train.checkpoint-interval", "1", "--dashboard", "none"]


def _epochs(run_dir):
    return [json.loads(line)["epoch"] for line in open(os.path.join(run_dir, "metrics.jsonl"))]


def test_gym_id_with_workers_trains_and_resumes(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    args = ["--env.num-envs", "16", "--env.workers", "2", "--run-dir", run_dir, *SMALL]
    assert main(["train", "gym:CartPole-v1", "--train.total-timesteps", "512", *args]) == 0, capsys.readouterr().err
    assert "training gym:CartPole-v1" in capsys.readouterr().out and _epochs(run_dir) == [1, 2]
    cfg = puffjax.run_config(run_dir)
    assert cfg.env.name == "gym:CartPole-v1" and cfg.env.workers == 2 and cfg.train.optimizer == "muon"  # defaults
    # resume with the environments' state (pickled by the workers), in the serial loop this time
    assert main(["train", "--resume", run_dir, "--train.total-timesteps", "768", "--env.workers", "0",
                 "--dashboard", "none"]) == 0, capsys.readouterr().err
    assert _epochs(run_dir) == [1, 2, 3]


def test_python_factory_with_options(tmp_path, capsys, monkeypatch):
    """mymodule:factory(**options): here a Discrete(3, start=1) observation and action env."""
    monkeypatch.chdir(os.path.dirname(__file__))  # the CLI finds modules from the current directory
    run_dir = str(tmp_path / "run")
    assert main(["train", "test_spaces:Target", "--env.plain-discrete", "true", "--train.total-timesteps", "512",
                 "--env.num-envs", "16", "--run-dir", run_dir, *SMALL]) == 0, capsys.readouterr().err
    assert _epochs(run_dir) == [1, 2]


def test_bad_environment_names(tmp_path, capsys):
    for name, message in (("nosuchmodule:make", "cannot import module 'nosuchmodule'"),
                          ("test_spaces:nothing", "has no callable 'nothing'"),
                          ("gym:NoSuchEnv-v0", "NoSuchEnv"),
                          (str(tmp_path / "missing.h"), "no such file")):
        code = main(["train", name, "--train.data-dir", str(tmp_path), *SMALL])
        assert code != 0
        assert message in capsys.readouterr().err, name


def test_a_warning_is_one_line_and_the_display_is_restored(tmp_path, capsys):
    import warnings
    before = warnings.showwarning
    code = main(["train", "memory", "--policy.kind", "recurrent", "--env.num-envs", "16",
                 "--train.total-timesteps", "256", "--train.data-dir", str(tmp_path), *SMALL])
    assert code == 0
    err = capsys.readouterr().err
    assert "puffjax: warning: policy.kind 'recurrent' is deprecated; use 'lstm'\n" in err, err
    assert "FutureWarning" not in err and "validate(cfg)" not in err, err
    assert warnings.showwarning is before
