"""train.overlap: the next epoch's rollout played while this epoch's update runs."""
import json
import os

import jax
import numpy as np
import pytest

from puffjax.logger import final_mean
from test_parallel import SMALL as PARALLEL, _strip, launch, resume_from, wait_all

SMALL = {"env.num_envs": 64, "train.minibatch_size": 256, "train.bptt_horizon": 16,
         "train.total_timesteps": 4 * 64 * 16, "train.checkpoint_interval": 2}


def _params_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)))


def test_overlap_off_is_the_default_and_changes_nothing(tiny_config, train_run):
    absent, a = train_run(tiny_config("cartpole", **SMALL))
    off, b = train_run(tiny_config("cartpole", **SMALL, **{"train.overlap": False}))
    on, c = train_run(tiny_config("cartpole", **SMALL, **{"train.overlap": True}))
    assert absent.cfg.train.overlap is False and off.spare is None
    assert _strip(a) == _strip(b) and _params_equal(absent, off)
    # On: epoch 1 is the same; epoch 2's rollout is played with the parameters from before
    # epoch 1's update, so the runs part there.
    assert _strip(c)[0] == _strip(a)[0] and _strip(c)[1] != _strip(a)[1]
    assert [h["agent_steps"] for h in c] == [h["agent_steps"] for h in a] and on.epoch == 4
    assert not _params_equal(absent, on)


def test_overlap_resumes_exactly_from_a_checkpoint(tmp_path, tiny_config, train_run):
    # The pipeline drains at each checkpoint: the resumed run replays epochs 3-4 bit for bit.
    cfg = tiny_config("cartpole", **SMALL, **{"train.overlap": True})
    full, history = train_run(cfg, run_dir=str(tmp_path / "full"))
    ckpt = os.path.join(full.run_dir, "checkpoints", "epoch_000002.msgpack")
    resumed, rest = train_run(cfg, resume=ckpt)
    assert _strip(rest) == _strip(history[2:]) and _params_equal(full, resumed)


@pytest.mark.slow  # ~22 s; the tests above check overlap's resume and its two processes' agreement
def test_cartpole_learns_with_overlap(shipped_config, train_run):
    cfg = shipped_config("cartpole", **{"train.overlap": True, "train.total_timesteps": 300_000})
    _, history = train_run(cfg)
    assert final_mean(history, "environment/episode_return") > 200  # random play: ~22; seed 0 returns 500 here


def test_two_processes_with_overlap_agree_and_resume_exactly(tmp_path):
    # test_parallel's two-process run with overlap on: the same compiled programs
    run_dir = str(tmp_path / "run")
    procs, outs = launch(tmp_path, "full", run_dir, {**PARALLEL, "train.overlap": True})
    assert wait_all(procs, 240) == [0, 0], open(tmp_path / "full-0.log").read()[-3000:]
    a, b = (json.load(open(o)) for o in outs)
    assert a["params"] == b["params"] and a["epoch"] == 4
    assert a["allgathers"] == b["allgathers"] == 4 + 2  # one per epoch, one barrier per checkpoint
    c = resume_from(tmp_path, run_dir, 2, drop=4)
    assert c["params"] == a["params"] and _strip(c["history"]) == _strip(a["history"][2:])
