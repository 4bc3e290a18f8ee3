"""Checkpoint files: atomic writes, stale temp files, the directory fsync, and how many are kept."""
import os
import stat

import numpy as np
import pytest

from puffjax import checkpoint


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
