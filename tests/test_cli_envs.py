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
    assert cfg.env.name == "gym:CartPole-v1" and cfg.env.workers == 2 and cfg.train.optimizer == "adam"  # the gym profile
    # resume (the Python envs re-seeded: their state is not saved by default), in the serial loop this time
    assert main(["train", "gym:CartPole-v1", "--resume", run_dir, "--train.total-timesteps", "768", "--env.workers", "0",
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


MINE_ENV = """
import gymnasium
import numpy as np


class Line(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode, self.t = render_mode, 0

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 1.0, self.t >= 5, False, {}

    def render(self):
        assert self.render_mode == "rgb_array"
        return np.full((8, 8, 3), 40 * self.t, np.uint8)


def make(**options):
    return Line(**options)
"""


def test_every_command_takes_a_factory_from_the_current_directory(tmp_path, capsys, monkeypatch):
    """train, eval (with an env option) and sweep import module:factory from the current directory."""
    import sys
    (tmp_path / "mine_env.py").write_text(MINE_ENV)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mine_env", raising=False)
    run_dir = str(tmp_path / "run")
    assert main(["train", "mine_env:make", "--train.total-timesteps", "256", "--env.num-envs", "16",
                 "--run-dir", run_dir, *SMALL]) == 0, capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "mine_env")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    video = str(tmp_path / "play.gif")
    assert main(["eval", "mine_env:make", "--checkpoint", run_dir, "--episodes", "2", "--video", video,
                 "--video-frames", "3", "--env.render-mode", "rgb_array"]) == 0, capsys.readouterr().err
    assert "mine_env:make: " in capsys.readouterr().out and os.path.exists(video)
    assert main(["sweep", "mine_env:make", "--trials", "1", "--budget", "256", "--dir", str(tmp_path / "sweep"),
                 "--env.num-envs", "16", "--train.bptt-horizon", "16", "--train.minibatch-size", "256",
                 "--train.video-frames", "0"]) == 0, capsys.readouterr().err
    assert "1 trials" in capsys.readouterr().out


def test_sweep_starts_from_the_config_of_any_env_form(tmp_path):
    """gym:ID, module:factory and a C file have no shipped config: the sweep's base is load_config's."""
    from puffjax.sweep import base_config
    header = tmp_path / "mine.h"
    for name in ("gym:CartPole-v1", "test_spaces:Target", str(header)):
        cfg, section = base_config(name, budget=1024)
        assert cfg.env.name == name and cfg.train.total_timesteps == 1024 and section is None
    assert base_config("cartpole")[0] == puffjax.load_config("cartpole")
