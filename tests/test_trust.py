"""A run directory is data, never code: crafted checkpoints, configs, ``latest`` pointers and
metrics files are read without running anything from them, and damage costs no rows and no run."""
import json
import os
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from flax import serialization

import puffjax
from puffjax import checkpoint, envs
from puffjax.cli import main
from puffjax.config import Config
from puffjax.logger import read_metrics, truncate_metrics

GYM = {"env.num_envs": 8, "train.bptt_horizon": 8, "train.minibatch_size": 64, "train.total_timesteps": 128,
       "train.checkpoint_interval": 1}


def _same(a: list[dict], b: list[dict]) -> bool:
    drop = ("SPS", "uptime")
    keep = [{k: v for k, v in log.items() if k not in drop and not k.startswith("performance/")} for log in a + b]
    return keep[:len(a)] == keep[len(a):]


def _rewrite(path: str, change) -> None:
    """Load a checkpoint file's msgpack, let ``change`` edit the dict, write it back."""
    with open(path, "rb") as f:
        state = serialization.msgpack_restore(f.read())
    change(state)
    with open(path, "wb") as f:
        f.write(serialization.msgpack_serialize(state))


class _Marker:
    """Unpickling this creates ``path`` (as any code a crafted pickle names would run)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


# ---------------------------------------------------------------- Python environments' state

@pytest.fixture(scope="module")
def gym_runs(tmp_path_factory):
    """Two finished 2-epoch gym:CartPole-v1 runs, checkpoints at epochs 1 and 2: one saving the
    environments' pickled state (``exact``), one with the default (``plain``); and their logs."""
    root = tmp_path_factory.mktemp("gym")
    out = {}
    for name, save in (("exact", True), ("plain", False)):
        cfg = puffjax.load_config("gym:CartPole-v1", **GYM, **{"train.video_frames": 0,
                                                                "train.save_python_env_state": save})
        trainer = puffjax.Trainer(cfg, run_dir=str(root / name), dashboard="none")
        out[name] = (trainer.run_dir, trainer.train())
        trainer.close()
    return out


def _resume(run_dir: str, epoch: int, **kw):
    path = os.path.join(run_dir, "checkpoints", f"epoch_{epoch:06d}.msgpack")
    trainer = puffjax.Trainer(puffjax.run_config(path), resume=path, dashboard="none", **kw)
    return trainer


def test_python_envs_are_saved_only_on_request(gym_runs):
    exact = checkpoint.load_raw(gym_runs["exact"][0])
    plain = checkpoint.load_raw(gym_runs["plain"][0])
    assert "pickle" in exact["env"] and "env" not in plain
    for state in (exact, plain):  # parameters, optimizer, keys and counters always
        assert {"params", "opt_state", "rollout_key", "train_key", "counters"} <= set(state)


def test_default_resume_reseeds_python_envs_with_a_warning(gym_runs):
    run_dir, _ = gym_runs["plain"]
    with pytest.warns(UserWarning, match="holds no state of the environments.*re-seeded"):
        trainer = _resume(run_dir, 1)
    assert trainer.epoch == 1
    trainer.close()


def test_opt_in_resume_is_exact_with_trust_and_reseeded_without(gym_runs, tmp_path):
    run_dir, history = gym_runs["exact"]
    copy = tmp_path / "copy"  # resuming rewrites the run's metrics: train on a copy
    os.makedirs(copy / "checkpoints")
    for f in ("epoch_000001.msgpack",):
        (copy / "checkpoints" / f).write_bytes(open(os.path.join(run_dir, "checkpoints", f), "rb").read())
    with pytest.warns(UserWarning, match="pickled state was not loaded.*--trust-checkpoint.*re-seeded"):
        _resume(str(copy), 1).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer = _resume(str(copy), 1, trust_checkpoint=True)
    rest = trainer.train()
    trainer.close()
    assert _same(rest, history[1:])


def test_a_crafted_env_pickle_never_runs_without_trust(gym_runs, tmp_path):
    run_dir, _ = gym_runs["exact"]
    marker = tmp_path / "ran"
    path = str(tmp_path / "epoch_000001.msgpack")
    with open(path, "wb") as f:
        f.write(open(os.path.join(run_dir, "checkpoints", "epoch_000001.msgpack"), "rb").read())

    def craft(state):
        state["env"]["pickle"] = np.frombuffer(pickle.dumps(_Marker(str(marker))), np.uint8)
    _rewrite(path, craft)
    with pytest.warns(UserWarning, match="pickled state was not loaded"):
        puffjax.Trainer(puffjax.run_config(path), resume=path, run_dir=str(tmp_path / "a"), dashboard="none").close()
    assert not marker.exists()
    env = envs.make("gym:CartPole-v1", num_envs=8)
    with pytest.raises(ValueError, match="runs code"):
        env.set_state(checkpoint.load_raw(path)["env"])
    assert not marker.exists()
    # What --trust-checkpoint is for, and why it must be asked for: the file's code runs.
    with pytest.raises(Exception):
        env.set_state(checkpoint.load_raw(path)["env"], trusted=True)
    env.close()
    assert marker.exists()


def test_object_arrays_in_a_checkpoint_are_refused(tmp_path):
    import msgpack
    path = tmp_path / "epoch_000001.msgpack"  # flax's ndarray extension (code 1) naming an object dtype
    array = msgpack.ExtType(1, msgpack.packb(((2,), b"O", b"\x00" * 16)))
    path.write_bytes(msgpack.packb({"config": "{}", "params": {"w": array}}))
    with pytest.raises(ValueError, match="not a readable puffjax checkpoint.*OBJECT"):
        checkpoint.load_raw(str(path))


def test_trust_checkpoint_flag_says_it_runs_code(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust-checkpoint" in text and "Unpickling runs code from the file" in text


class _Unpicklable(gym.Wrapper):
    """CartPole holding a lambda, as gymnasium's TransformObservation(env, lambda o: o) does."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.f = lambda o: o


def test_an_env_that_cannot_be_pickled_never_stops_a_checkpoint(tmp_path):
    cfg = puffjax.load_config("gym:CartPole-v1", **GYM, **{"train.video_frames": 0,
                                                            "train.save_python_env_state": True})
    trainer = puffjax.Trainer(cfg, env=envs.from_gymnasium(_Unpicklable, num_envs=8), run_dir=str(tmp_path),
                              dashboard="none")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    trainer.close()
    messages = [str(w.message) for w in caught if "cannot be saved" in str(w.message)]
    assert len(messages) == 1 and "re-seeds them" in messages[0]
    assert [os.path.basename(p) for p in checkpoint.checkpoints(str(tmp_path))] == \
        ["epoch_000001.msgpack", "epoch_000002.msgpack"]
    state = checkpoint.load_raw(str(tmp_path))
    assert "env" not in state and "params" in state and int(state["counters"]["epoch"]) == 2


# ---------------------------------------------------------------- the stored config

def _run_with_config(tmp_path, **changes) -> str:
    """A run directory whose one checkpoint stores the cartpole config with ``changes``."""
    cfg = Config()
    cfg.env.name = "cartpole"
    stored = cfg.to_dict()
    for key, value in changes.items():
        section, _, field = key.partition(".")
        stored[section][field] = value
    run_dir = str(tmp_path / "run")
    checkpoint.save(run_dir, 1, {"params": {"w": np.zeros(2, np.float32)}, "counters": {"epoch": 1}}, stored)
    return run_dir


def test_a_stored_c_header_is_never_compiled_unless_named_again(tmp_path, monkeypatch, capsys):
    header = tmp_path / "evil.h"
    header.write_text("#error compiled\n")
    run_dir = _run_with_config(tmp_path, **{"env.name": str(header)})
    from puffjax.envs import custom_c

    def refuse(*a, **k):
        raise AssertionError("compiled a header named by a checkpoint")
    monkeypatch.setattr(custom_c, "load", refuse)
    for attempt in (lambda: puffjax.Trainer(resume=run_dir), lambda: puffjax.run_config(run_dir),
                    lambda: puffjax.evaluate(run_dir)):
        with pytest.raises(ValueError, match="C file, compiled and loaded.*name it again"):
            attempt()
    assert main(["train", "--resume", run_dir]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "name it again" in err
    assert main(["train", "cartpole", "--resume", run_dir]) == 2
    assert f"is a {header} run, not cartpole" in capsys.readouterr().err
    # Named again by the user: the stored config is used.
    assert puffjax.run_config(run_dir, **{"env.name": str(header)}).env.name == str(header)


@pytest.mark.parametrize("name", ["evilmod:make", "gym:evilmod:Evil-v0"])
def test_a_stored_python_import_is_never_run_unless_named_again(tmp_path, monkeypatch, name):
    (tmp_path / "evilmod.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run_dir = _run_with_config(tmp_path, **{"env.name": name})
    with pytest.raises(ValueError, match="imported.*name it again"):
        puffjax.Trainer(resume=run_dir)
    with pytest.raises(ValueError, match="not cartpole"):
        puffjax.run_config(run_dir, **{"env.name": "cartpole"})
    assert not (tmp_path / "ran").exists()


def test_runs_code():
    assert envs.runs_code("breakout") is None and envs.runs_code("gym:CartPole-v1") is None
    assert envs.runs_code("gym:ALE/Pong-v5") is None  # a namespace, not a module
    for name in ("env.h", "dir/env.c", "mymodule:make_env", "gym:ale_py:ALE/Pong-v5"):
        assert envs.runs_code(name)


def test_the_stored_config_is_validated_like_user_input(tmp_path):
    run_dir = _run_with_config(tmp_path, **{"train.learning_rate": -1.0})
    for attempt in (lambda: puffjax.Trainer(resume=run_dir), lambda: puffjax.run_config(run_dir)):
        with pytest.raises(ValueError, match="checkpoint config is not usable.*learning_rate"):
            attempt()


# ---------------------------------------------------------------- `latest` and damaged checkpoints

def _payload(epoch):
    return {"params": {"w": np.full(2, epoch, np.float32)}, "counters": {"epoch": epoch}}


def _saved(tmp_path, name="run", epochs=(1, 2, 3)) -> str:
    run_dir = str(tmp_path / name)
    for e in epochs:
        checkpoint.save(run_dir, e, _payload(e), {"env": {"name": "cartpole"}})
    return run_dir


def _latest(run_dir) -> str:
    return os.path.join(run_dir, "checkpoints", "latest")


@pytest.mark.parametrize("content, why", [
    (None, "is missing"), (b"\xff\xfe\x00garbage", "unreadable"), (b"epoch_000009.msgpack", "does not exist"),
    (b"../../other/checkpoints/epoch_000005.msgpack", "not the name of a checkpoint file"),
    (b"/etc/passwd", "not the name"), (b"epoch_000001.msgpack\n../x", "not the name")])
def test_a_bad_latest_falls_back_to_the_newest_checkpoint(tmp_path, content, why):
    run_dir = _saved(tmp_path)
    if content is None:
        os.unlink(_latest(run_dir))
    else:
        open(_latest(run_dir), "wb").write(content)
    with pytest.warns(UserWarning, match=why) as record:
        state = checkpoint.load_raw(run_dir)
    assert state["path"].endswith("run/checkpoints/epoch_000003.msgpack") and len(record) == 1


def test_latest_pointing_into_another_run_leaves_that_run_alone(tmp_path, tiny_config, train_run, capsys):
    cfg = tiny_config("cartpole", **{"train.total_timesteps": 128, "train.checkpoint_interval": 1})
    other, _ = train_run(cfg, run_dir=str(tmp_path / "other"))
    run, _ = train_run(cfg, run_dir=str(tmp_path / "run"))
    before = {f: open(os.path.join(root, f), "rb").read()
              for root, _, files in os.walk(other.run_dir) for f in files}
    open(_latest(run.run_dir), "w").write("../../other/checkpoints/epoch_000001.msgpack")
    with pytest.warns(UserWarning, match="not the name of a checkpoint file"):
        trainer = puffjax.Trainer(puffjax.run_config(run.run_dir, **{"train.total_timesteps": 192}),
                                  resume=run.run_dir, dashboard="none")
    assert trainer.resumed_from == os.path.join(run.run_dir, "checkpoints", "epoch_000002.msgpack")
    trainer.train()
    trainer.close()
    after = {f: open(os.path.join(root, f), "rb").read() for root, _, files in os.walk(other.run_dir) for f in files}
    assert after == before
    assert [r["epoch"] for r in read_metrics(run.run_dir)] == [1, 2, 3]
    open(_latest(run.run_dir), "w").write("../../other/checkpoints/epoch_000001.msgpack")
    capsys.readouterr()
    assert main(["train", "--resume", run.run_dir, "--dashboard", "none"]) == 0
    captured = capsys.readouterr()
    assert "epoch_000003.msgpack" in captured.out and captured.err.count("puffjax: warning:") == 1, captured.err


def test_damaged_checkpoints_are_skipped_with_their_names(tmp_path):
    run_dir = _saved(tmp_path)
    newest = os.path.join(run_dir, "checkpoints", "epoch_000003.msgpack")
    data = open(newest, "rb").read()
    open(newest, "wb").write(data[: len(data) // 2])  # truncated, and `latest` names it
    with pytest.warns(UserWarning, match="epoch_000003.msgpack: not a readable puffjax checkpoint"):
        state = checkpoint.load_raw(run_dir)
    assert state["path"].endswith("epoch_000002.msgpack")
    np.testing.assert_array_equal(state["params"]["w"], 2)
    with pytest.raises(ValueError, match="not a readable puffjax checkpoint"):  # a file named is read as it is
        checkpoint.load_raw(newest)
    for e in (1, 2):
        open(os.path.join(run_dir, "checkpoints", f"epoch_{e:06d}.msgpack"), "wb").write(b"\x00junk")
    with pytest.raises(ValueError, match="no readable checkpoint"):
        checkpoint.load_raw(run_dir)


def test_a_checkpoint_missing_a_process_part_is_skipped(tmp_path):
    run_dir = str(tmp_path / "run")
    for e in (1, 2):
        path = checkpoint.write(run_dir, e, {**_payload(e), "counters": {"epoch": e, "processes": 2}}, {"env": {}})
        checkpoint.write(run_dir, e, {"env": np.zeros(1)}, process=1)
    checkpoint.commit(path)
    os.unlink(checkpoint.process_part(path, 1))
    with pytest.warns(UserWarning, match="the part of process 1 is missing"):
        assert checkpoint.load_raw(run_dir)["path"].endswith("epoch_000001.msgpack")


# ---------------------------------------------------------------- metrics

def _metrics(run_dir, text: str) -> str:
    path = os.path.join(run_dir, "metrics.jsonl")
    open(path, "w").write(text)
    return path


ROWS = "".join(json.dumps({"epoch": e, "agent_steps": 64 * e}) + "\n" for e in (1, 2, 3))


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path):
    path = _metrics(tmp_path, ROWS + '{"epoch": 4, "agent_st')
    with pytest.warns(UserWarning, match=f"{path}: dropped its torn last line 4"):
        assert [r["epoch"] for r in read_metrics(str(tmp_path))] == [1, 2, 3]
    with pytest.warns(UserWarning, match="torn"):
        truncate_metrics(str(tmp_path), 2)
    assert open(path).read() == "".join(ROWS.splitlines(keepends=True)[:2])


def test_a_damaged_middle_line_names_the_file_and_line(tmp_path):
    path = _metrics(tmp_path, ROWS.replace('{"epoch": 2', '{"epoch": 2,,', 1))
    with pytest.raises(ValueError, match=f"{path}: line 2 is not a JSON object"):
        read_metrics(str(tmp_path))


@pytest.mark.parametrize("fault", ["replace", "fsync"])
def test_a_fault_during_the_metrics_rewrite_loses_no_row(tmp_path, monkeypatch, fault):
    path = _metrics(tmp_path, ROWS)

    def fail(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, fault, fail)
    with pytest.raises(OSError, match="No space left"):
        truncate_metrics(str(tmp_path), 1)
    monkeypatch.undo()
    assert open(path).read() == ROWS and sorted(os.listdir(tmp_path)) == ["metrics.jsonl"]
    truncate_metrics(str(tmp_path), 1)
    assert [r["epoch"] for r in read_metrics(str(tmp_path))] == [1]
