"""The example scripts run as a user would run them (tiny budgets)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_pure_functions_example(tmp_path):
    p = run("pure_functions.py", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "advantages (256, 64)" in p.stdout


def test_train_breakout_example_small_budget(tmp_path):
    p = run("train_breakout.py", "--env.num-envs", "256", "--train.bptt-horizon", "64",
            "--train.minibatch-size", "4096", "--train.total-timesteps", "16384", "--train.video-frames", "0",
            "--train.data-dir", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Done: 16,384 steps" in p.stdout
    assert "epoch_000001.msgpack" in p.stdout
