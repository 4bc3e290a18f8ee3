"""Every user mistake on the command line is one ``puffjax: ...`` line on stderr with exit status
2, and no traceback: a table of mistakes, each run through ``puffjax.cli.main``, plus one run in a
subprocess (the real stderr)."""
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from puffjax import preflight
from puffjax.cli import main

HERE = os.path.dirname(__file__)
SMALL = ["--env.num-envs", "8", "--train.bptt-horizon", "8", "--train.minibatch-size", "64",
         "--train.total-timesteps", "64", "--train.video-frames", "0", "--dashboard", "none"]


class Counter(gym.Env):
    """Episodes of ``length`` steps, +1 per step; ``fail_at``: step() raises on that step;
    ``exit_at``: the process ends on that step (a worker that dies)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length=4, fail_at=None, exit_at=None, text_obs=False):
        self.length, self.fail_at, self.exit_at, self.t = length, fail_at, exit_at, 0
        if text_obs:
            self.observation_space = gym.spaces.Text(5)

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == self.fail_at:
            raise RuntimeError("the simulator crashed")
        if self.t == self.exit_at:
            os._exit(3)
        return np.zeros(2, np.float32), 1.0, self.t >= self.length, False, {}


def not_an_env():
    return 42


class AEC:
    """Just enough of a PettingZoo AEC env to be recognised as one."""

    possible_agents = ["a", "b"]

    def observation_space(self, agent):
        return Counter.observation_space

    def action_space(self, agent):
        return Counter.action_space

    def agent_iter(self):
        return iter(self.possible_agents)

    def last(self):
        return None

    def reset(self, seed=None, options=None):
        return None

    def step(self, action):
        return None

    def close(self):
        pass


def _toml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    data = ["--train.data-dir", str(tmp_path / "runs")]
    return [
        # (arguments, a piece of the message)
        (["train", "cartpole", "--env.no-such-option", "1", *SMALL, *data], "no_such_option"),
        (["train", "gym:CartPole-v1", "--env.no-such-option", "1", *SMALL, *data], "no_such_option"),
        (["train", "--config", _toml(tmp_path, "list.toml", '[env]\nname = "cartpole"\nnum_envs = [64]\n'), *data],
         "env.num_envs: expected an integer, got [64]"),
        (["train", "--config", _toml(tmp_path, "abc.toml", '[env]\nname = "cartpole"\nmax_steps = "abc"\n'),
          *SMALL, *data], "max_steps"),
        (["train", "--config", _toml(tmp_path, "t5.toml", 'train = 5\n[env]\nname = "cartpole"\n'), *data],
         "config section train must be a table"),
        (["train", "cartpole", "--train.seed", str(2**70), *SMALL, *data], "train.seed must lie in"),
        (["train", "cartpole", "--train.seed", "2**70", *SMALL, *data], "train.seed: cannot parse"),
        (["train", "cartpole", "--train.update-epochs", str(10**11), *SMALL, *data],
         "train.update_epochs must be at most 10,000"),
        (["train", "cartpole", "--policy.value-head", "hl_gauss", "--policy.num-bins", str(10**10), *SMALL, *data],
         "policy.num_bins must be at most 65,536, got 10,000,000,000"),
        (["train", "cartpole", "--policy.hidden-size", "wide", *SMALL, *data], "policy.hidden_size: cannot parse"),
        (["train", "cartpole", *SMALL, "--run-dir", str(a_file)], "is not a directory"),
        (["train", "cartpole", *SMALL, "--train.data-dir", str(a_file / "runs")], "a_file is a file"),
        (["train", "--config", str(tmp_path), *SMALL], "is a directory; name a .toml file in it"),
        (["train", "gym:CartPole-v1", "--env.num-envs", str(2**30), "--dashboard", "none", *data],
         "env.num_envs 1,073,741,824 of gym:CartPole-v1 need about"),
        (["train", "test_cli_errors:not_an_env", *SMALL, *data], "the factory returned int, not an environment"),
        (["train", "test_cli_errors:AEC", *SMALL, *data], "pettingzoo.utils.conversions.aec_to_parallel"),
        (["train", "test_cli_errors:Counter", "--env.text-obs", "true", *SMALL, *data], "Text"),
        (["train", "test_cli_errors:Counter", "--env.fail-at", "3", *SMALL, *data], "the simulator crashed"),
        (["train", "test_cli_errors:Counter", "--env.fail-at", "3", "--env.workers", "2", *SMALL, *data],
         "the simulator crashed"),
        (["train", "test_cli_errors:Counter", "--env.exit-at", "3", "--env.workers", "2", *SMALL, *data], "worker"),
        (["eval", "cartpole", "--checkpoint", str(tmp_path / "none"), "--env.num-envs", "4"], "--num-envs"),
        (["eval", "cartpole", "--checkpoint", str(tmp_path / "none"), "--train.seed", "4"],
         "eval takes environment options"),
        (["sweep", "cartpole", "--trials", "1", "--dir", str(a_file)], "a_file"),
    ] + ([] if os.geteuid() == 0 else [  # root may write into a read-only folder
        (["train", "cartpole", *SMALL, "--run-dir", str(read_only / "run")], "cannot be written"),
    ])


def test_each_mistake_is_one_line_with_exit_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(HERE)  # test_cli_errors:... factories are found from the current directory
    for args, message in _cases(tmp_path):
        code = main(args)
        out, err = capsys.readouterr()
        # the note naming the profile a config-less env trains with is not part of the error
        lines = [line for line in err.strip().splitlines() if "has no config of its own" not in line]
        assert code == 2, (args, err)
        assert lines and lines[0].startswith("puffjax: ") and message in lines[0], (args, err)
        assert "Traceback" not in err, (args, err)
        # a failure during training adds where the run stands; nothing else
        assert len(lines) == 1 or lines[1].startswith("puffjax: no checkpoint was written"), (args, err)


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    """Writing metrics or checkpoints fails with ENOSPC (simulated): one line, the last good checkpoint."""
    import errno
    from puffjax import logger

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "metrics.jsonl")

    monkeypatch.setattr(logger.MetricsLogger, "log", full)
    code = main(["train", "cartpole", *SMALL, "--train.data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[0] == "puffjax: metrics.jsonl: No space left on device", err


def test_the_memory_estimate_names_both_numbers():
    with pytest.raises(ValueError, match=r"env.num_envs 1,000 of cartpole need about .* this machine has 1.0 KB"):
        preflight.check_env_memory("cartpole", 1000, {}, available=1024)
    preflight.check_env_memory("gym:CartPole-v1", 8, {})  # a normal size passes


def test_the_memory_estimate_does_not_take_reused_memory_for_a_free_environment():
    """A gymnasium CartPole holds kilobytes of Python objects; memory the allocator hands back
    from freed objects must not make one look almost free, on any of several measurements."""
    sizes = [preflight.env_bytes("gym:CartPole-v1", {}) for _ in range(10)]
    assert min(sizes) > 1000, sizes


def test_no_traceback_on_the_real_stderr(tmp_path):
    """The same through ``python -m puffjax``: exit status 2, one line."""
    proc = subprocess.run([sys.executable, "-m", "puffjax", "train", "cartpole", "--env.no-such-option", "1",
                           "--train.data-dir", str(tmp_path), *SMALL], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("puffjax: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
