"""The Trainer and the CLI on a JAX environment: epochs run on device (puffjax.device_trainer),
with the host path's logs, checkpoints and exact resume, and the non-finite guard's messages."""
import json
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import puffjax
from puffjax import cli
from puffjax.envs.jaxenv import JaxVecEnv
from puffjax.envs.jaxenv.protocol import JaxEnv
from forced_devices import forced_devices_env

pytest.importorskip("gymnax")

CARTPOLE = "gymnax:CartPole-v1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(tmp_path, **overrides):
    base = {"env.name": CARTPOLE, "env.num_envs": 8, "train.bptt_horizon": 16, "train.batch_size": 256,
            "train.minibatch_size": 128, "train.total_timesteps": 256 * 6, "train.data_dir": str(tmp_path),
            "train.video_frames": 0, "train.checkpoint_interval": 2, "policy.hidden_size": 16}
    return puffjax.load_config("cartpole", **{**base, **overrides})


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """``(config, trainer, logs)``: the six epochs of :func:`_config`'s run, trained to the end."""
    cfg = _config(tmp_path_factory.mktemp("full"))
    trainer = puffjax.Trainer(cfg, dashboard="none")
    try:
        assert isinstance(trainer.env, JaxVecEnv) and trainer.device is not None
        logs = trainer.train()
    finally:
        trainer.close()
    return cfg, trainer, logs


def test_trainer_runs_a_jax_env_on_device(full_run):
    """Every epoch is the on-device epoch (the run equals make_train's), logged as on the host
    path: returns, losses, steps, checkpoints."""
    cfg, trainer, logs = full_run
    assert len(logs) == 6 and trainer.timesteps == 256 * 6 and logs[-1]["agent_steps"] == 256 * 6
    assert all(np.isfinite(log["losses/policy_loss"]) for log in logs)
    assert "environment/episode_return" in logs[-1] and "environment/perf" in logs[-1]
    assert logs[-1]["SPS"] > 0 and "performance/device_epoch" in logs[-1]
    assert {os.path.basename(p) for p in puffjax.checkpoint.checkpoints(trainer.run_dir)} >= {
        "epoch_000004.msgpack", "epoch_000006.msgpack"}
    with open(os.path.join(trainer.run_dir, "metrics.jsonl")) as f:
        assert len(f.readlines()) == 6
    runner, metrics = puffjax.make_train(cfg, trainer.env)(jax.random.PRNGKey(cfg.train.seed))
    _same(trainer.state.params, runner.train.params)
    np.testing.assert_array_equal(np.asarray(metrics["policy_loss"]), [log["losses/policy_loss"] for log in logs])


def test_resume_continues_bit_for_bit(tmp_path, full_run):
    """A run stopped after its epoch-2 checkpoint and resumed ends with the uninterrupted run's
    parameters, optimizer, environments and logs."""
    _, full, logs = full_run
    part = puffjax.Trainer(_config(tmp_path / "part"), dashboard="none")
    try:
        it = part.train_iter()
        next(it), next(it)
        it.close()
    finally:
        part.close()
    resumed = puffjax.Trainer(resume=part.run_dir, dashboard="none")
    try:
        assert resumed.epoch == 2 and resumed.resumed_from.endswith("epoch_000002.msgpack")
        rest = resumed.train()
    finally:
        resumed.close()
    _same(resumed.device.runner, full.device.runner)
    for a, b in zip(logs[2:], rest, strict=True):
        for k in ("losses/policy_loss", "losses/value_loss", "environment/episode_return", "agent_steps"):
            assert a.get(k) == b.get(k), k


def test_cli_trains_a_gymnax_env(tmp_path, capsys):
    code = cli.main(["train", CARTPOLE, "--train.total-timesteps", "2048", "--train.batch-size", "1024",
                     "--train.minibatch-size", "512", "--env.num-envs", "16", "--train.data-dir", str(tmp_path),
                     "--train.video-frames", "0", "--dashboard", "none"])
    assert code == 0
    (run,) = [os.path.join(tmp_path, d) for d in os.listdir(tmp_path)]
    with open(os.path.join(run, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 2 and lines[-1]["agent_steps"] == 2048 and "environment/episode_return" in lines[-1]


class NanAt(JaxEnv):
    """A counter that returns a NaN observation from step 5 on (keys unused)."""
    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, key):
        return jnp.int32(0), jnp.zeros(1, jnp.float32)

    def step(self, key, state, action):
        t = state + 1
        obs = jnp.where(t >= 5, jnp.nan, t.astype(jnp.float32))[None]
        return t, obs, jnp.float32(1.0), jnp.bool_(False), t >= 50, {}


def test_non_finite_guard_names_the_jax_env_row(tmp_path):
    cfg = _config(tmp_path, **{"env.name": "nan", "env.num_envs": 4})
    trainer = puffjax.Trainer(cfg, env=JaxVecEnv(NanAt(), 4, name="nan"), dashboard="none")
    try:
        before = jax.tree.map(np.asarray, trainer.state.params)
        with pytest.raises(puffjax.NonFiniteError, match=r"epoch 1: .*observations\[0\] .*at rollout step 5 "):
            trainer.train()
        _same(before, trainer.state.params)
        assert trainer.epoch == 0 and not puffjax.checkpoint.checkpoints(trainer.run_dir)
    finally:
        trainer.close()


def test_two_devices(tmp_path):
    """On the trainer's mesh of 2 devices each steps its own block of environments; a checkpoint
    of the sharded Runner resumes onto the same mesh."""
    code = textwrap.dedent(f"""
        import sys, pathlib, jax, numpy as np, puffjax
        sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from test_device_trainer import _config
        cfg = _config(pathlib.Path({str(tmp_path)!r}), **{{"train.total_timesteps": 512}})
        trainer = puffjax.Trainer(cfg, dashboard="none")
        assert trainer.mesh.size == 2
        logs = trainer.train()
        trainer.close()
        assert len(trainer.device.runner.env.obs.sharding.device_set) == 2 and np.isfinite(logs[-1]["losses/policy_loss"])
        resumed = puffjax.Trainer(resume=trainer.run_dir, dashboard="none")
        for a, b in zip(jax.tree.leaves(resumed.device.runner), jax.tree.leaves(trainer.device.runner)):
            assert a.sharding == b.sharding and np.array_equal(np.asarray(a), np.asarray(b))
        print("ok")
    """)
    env = forced_devices_env(2)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-3000:]
