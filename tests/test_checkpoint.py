"""Checkpoint files: atomic writes, stale temp files, the directory fsync, how many are kept, and
stored configs that name a renamed policy kind."""
import os
import stat
import warnings

import gymnasium as gym
import jax
import numpy as np
import pytest

from puffjax import checkpoint
from puffjax.config import Config, run_config, stored_config
from puffjax.models import make_policy, policy_from_config


def payload(epoch):
    return {"params": {"w": np.full(3, epoch, np.float32)}, "counters": {"epoch": epoch}}


def names(run_dir):
    return sorted(os.listdir(os.path.join(run_dir, "checkpoints")))


def test_stale_temp_files_are_removed_at_the_next_save(tmp_path):
    run_dir = str(tmp_path)
    checkpoint.save(run_dir, 1, payload(1), {})
    stale = tmp_path / "checkpoints" / ".tmp-0-killed-write"  # process 0's temp file naming
    stale.write_bytes(b"half a checkpoint")
    checkpoint.save(run_dir, 2, payload(2), {})
    assert not stale.exists()
    assert names(run_dir) == ["epoch_000001.msgpack", "epoch_000002.msgpack", "latest"]


@pytest.mark.parametrize("keep, kept", [(0, list(range(1, 8))), (1, [7]), (3, [5, 6, 7])])
def test_keep_checkpoints(tmp_path, keep, kept):
    run_dir = str(tmp_path)
    for epoch in range(1, 8):
        last = checkpoint.save(run_dir, epoch, payload(epoch), {}, keep=keep)
    assert names(run_dir) == [f"epoch_{e:06d}.msgpack" for e in kept] + ["latest"]
    assert checkpoint.resolve(run_dir) == last
    np.testing.assert_array_equal(checkpoint.load_raw(run_dir)["params"]["w"], 7)


def test_directory_is_fsynced_after_each_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    checkpoint.save(str(tmp_path), 1, payload(1), {})
    # Two atomic writes (the checkpoint and `latest`): each flushes its file, then the directory.
    assert synced == [False, True, False, True]


def test_process_parts_are_kept_and_pruned_with_their_checkpoint(tmp_path):
    run_dir = str(tmp_path)
    for epoch in (1, 2, 3):
        path = checkpoint.write(run_dir, epoch, payload(epoch), {"env": {}}, process=0)
        assert checkpoint.write(run_dir, epoch, {"env": np.full(2, epoch)}, process=1) == path
        checkpoint.commit(path, keep=2)
    assert names(run_dir) == ["epoch_000002.msgpack", "epoch_000002.process1.msgpack",
                              "epoch_000003.msgpack", "epoch_000003.process1.msgpack", "latest"]
    assert checkpoint.checkpoints(run_dir)[-1] == checkpoint.resolve(run_dir)
    np.testing.assert_array_equal(checkpoint.load_part(checkpoint.resolve(run_dir), 1)["env"], 3)
    with pytest.raises(FileNotFoundError, match="process 2's part"):
        checkpoint.load_part(checkpoint.resolve(run_dir), 2)


@pytest.mark.parametrize("old, new", [("recurrent", "lstm"), ("cnn_recurrent", "cnn_lstm"), ("mingru", "mingru")])
def test_stored_configs_with_renamed_kinds_load_under_the_new_names(tmp_path, old, new):
    stored = {"env": {"name": "memory"}, "policy": {"kind": old, "hidden_size": 16}}
    path = checkpoint.write(str(tmp_path), 1, payload(1), stored)
    checkpoint.commit(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint cannot be edited: no warning for it
        assert checkpoint.load_raw(str(tmp_path))["config"]["policy"] == {"kind": new, "hidden_size": 16}
        assert run_config(str(tmp_path)).policy.kind == new
    assert stored["policy"]["kind"] == old


def test_an_lstm_checkpoint_stored_as_recurrent_restores_its_parameters(tmp_path):
    """A checkpoint whose config says kind = "recurrent" rebuilds the LSTM policy and its parameters."""
    cfg = Config()
    cfg.env.name, cfg.policy.kind, cfg.policy.hidden_size = "memory", "lstm", 16
    obs, act = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2)
    params = make_policy(obs, act, kind="lstm", hidden_size=16).init(jax.random.key(1))
    stored = cfg.to_dict()
    stored["policy"]["kind"] = "recurrent"
    path = checkpoint.save(str(tmp_path), 1, {"params": params}, stored)
    state = checkpoint.load_raw(path)
    policy = policy_from_config(stored_config(state["config"], path).policy, obs, act)
    assert policy.kind == "lstm" and policy.is_recurrent
    restored = checkpoint.restore_into(policy.init(jax.random.key(2)), state["params"], "params", path)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), restored, params))
