"""Learning curves from run directories' metrics.jsonl (written here by hand: no training):
plots, and when a curve reached and held a target."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from puffjax.cli import main
from puffjax.logger import final_mean, read_metrics, reached
from puffjax.plot import plot_runs


def fake_run(root, name, epochs=5, score=True, sps=1000.0):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for e in range(1, epochs + 1):
            row = {"SPS": sps * e, "agent_steps": 512 * e, "epoch": e, "uptime": 0.5 * e,
                   "environment/perf": e / epochs, "environment/episode_return": 10.0 * e}
            if score:
                row["environment/score"] = 3.0 * e
            if e == 2:
                row.pop("environment/episode_return")  # an epoch where no episode ended
            f.write(json.dumps(row) + "\n")
    return d


def test_plot_command_two_runs(tmp_path, capsys):
    a, b = fake_run(tmp_path, "run-a"), fake_run(tmp_path, "run-b", epochs=40, sps=500.0)
    out = str(tmp_path / "curves.png")
    assert main(["plot", a, b, "-o", out]) == 0
    assert out in capsys.readouterr().out
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(out))
    assert image.shape[0] > 400 and image.shape[1] > 900  # 2 rows x 3 panels at 100 dpi
    assert main(["plot", a, b, "-o", str(tmp_path / "time.png"), "--x", "time"]) == 0
    assert os.path.getsize(tmp_path / "time.png") > 0


def test_plot_runs_panels_and_legend(tmp_path):
    a, b = fake_run(tmp_path, "run-a"), fake_run(tmp_path, "run-b", score=False)
    fig = plot_runs([a, b], x="steps")
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["score", "episode return", "SPS"]
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["run-a", "run-b"]
    assert [ln.get_label() for ln in axes[0].lines] == ["run-a"]  # b logs no score
    ret = axes[1].lines[0]
    assert list(ret.get_xdata()) == [512, 1536, 2048, 2560]  # epoch 2 logged no return
    assert [ln.get_label() for ln in axes[2].lines] == ["run-a", "run-b"]
    only_perf = plot_runs([b], x="time")
    assert only_perf.axes[0].get_ylabel() == "perf" and only_perf.axes[0].get_xlabel() == "wall time (s)"


def test_plot_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty-run: no metrics.jsonl"):
        plot_runs([str(empty)])
    (empty / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"empty-run/metrics.jsonl: no metrics logged"):
        plot_runs([str(empty)])
    (empty / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "SPS\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"empty-run/metrics.jsonl: line 2 is not JSON"):
        plot_runs([str(empty)])
    (empty / "metrics.jsonl").write_text('{"agent_steps": 8, "SPS": 5}\n{"agent_steps": 16, "SP')  # live, mid-write
    assert list(plot_runs([str(empty)], x="steps").axes[2].lines[0].get_xdata()) == [8]
    with pytest.raises(FileNotFoundError, match="nowhere: not a directory"):
        plot_runs([str(tmp_path / "nowhere")])
    assert main(["plot", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.png")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.png")


def test_plot_is_reachable_from_the_package_without_matplotlib():
    """``import puffjax`` gives ``puffjax.plot.plot_runs``; matplotlib loads only when it draws."""
    code = "import sys, puffjax; puffjax.plot.plot_runs; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_reached_and_final_mean_on_a_hand_made_curve(tmp_path):
    perf = [0.2, 0.95, None, 0.5, 0.91, 0.97, None, 0.93]  # None: an epoch where no episode ended
    history = [{"epoch": e, "agent_steps": 100 * e} | ({} if p is None else {"environment/perf": p})
               for e, p in enumerate(perf, 1)]
    first, held = reached(history, "environment/perf", 0.9)
    assert first["epoch"] == 2 and held["epoch"] == 5  # dipped to 0.5 at epoch 4, above from epoch 5 on
    assert reached(history, "environment/perf", 0.96) == (history[5], None)  # reached, not held
    assert reached(history, "environment/perf", 1.0) == (None, None)
    assert reached(history, "environment/score", 0.0) == (None, None)
    assert final_mean(history, "environment/perf") == pytest.approx((0.91 + 0.97 + 0.93) / 3)
    assert final_mean(history, "environment/perf", n=1) == pytest.approx(0.93)
    assert math.isnan(final_mean(history, "environment/score"))
    # The same from a run directory's metrics.jsonl, where a non-finite value is logged as null.
    d = fake_run(tmp_path, "run")
    rows = read_metrics(d)
    assert reached(rows, "environment/perf", 0.6) == (rows[2], rows[2])  # perf = epoch / 5
    with open(os.path.join(d, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"epoch": 6, "environment/perf": None}) + "\n")
    assert reached(read_metrics(d), "environment/perf", 0.6)[1] == rows[2]
