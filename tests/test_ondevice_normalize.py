"""Observation and reward normalisation on device (puffjax.ondevice, puffjax.device_trainer): the
statistics after an epoch are NumPy's running statistics of the rollout's raw observations and
discounted returns, 2 devices get those of one, vmapped seeds and traced gammas equal separate
calls, and the Trainer saves them in its checkpoints (exact resume, eval standardises with them)."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import puffjax
from puffjax import normalize
from puffjax.evaluate import load_policy
from puffjax.ondevice import OnDevice
from puffjax.update import Hyper

pytest.importorskip("gymnax")
from puffjax.envs.jaxenv.gymnax import make  # noqa: E402
from forced_devices import forced_devices_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NORMALIZE = {"train.normalize_obs": True, "train.normalize_reward": True}


def _config(tmp_path, env="gymnax:CartPole-v1", **overrides):
    base = {"env.name": env, "env.num_envs": 4, "train.bptt_horizon": 8, "train.batch_size": 64,
            "train.minibatch_size": 32, "train.total_timesteps": 192, "train.data_dir": str(tmp_path),
            "train.video_frames": 0, "policy.hidden_size": 16, "train.reward_clip": float("inf"), **NORMALIZE}
    return puffjax.load_config("cartpole", **{**base, **overrides})


def _agent_major(x, agents, horizon):
    """A batch field's rows (row j * N + i: agent i's j-th horizon) as [agent, step]."""
    x = np.asarray(x)
    x = x.reshape(-1, agents, horizon, *x.shape[2:])
    return np.swapaxes(x, 0, 1).reshape(agents, -1, *x.shape[3:])


def _numpy_returns(rewards, dones, gamma, ret):
    """Each agent's running discounted return at every step ([agent, step]), as gymnasium's
    NormalizeReward keeps it, from ``ret`` carried in; and the return carried out."""
    out = np.zeros_like(rewards)
    for t in range(rewards.shape[1]):
        ret = ret * gamma + rewards[:, t]
        out[:, t] = ret
        ret = np.where(dones[:, t] > 0, 0.0, ret)
    return out, ret


def _assert_moments(m, samples, rtol=1e-5):
    assert float(m.count) == len(samples)
    np.testing.assert_allclose(np.asarray(m.mean), samples.mean(0), rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(np.asarray(normalize.variance(m)), samples.var(0), rtol=rtol, atol=1e-5)


def test_statistics_are_numpys_of_the_raw_rollouts(tmp_path):
    """Epoch 1 standardises with mean 0 and variance 1 (its batch is the unnormalised run's);
    epoch 2 with epoch 1's statistics, frozen; after each, the statistics are those of every
    raw observation and discounted return played so far, the returns carried across epochs."""
    env = make("CartPole-v1")
    cfg = _config(tmp_path)
    norm = OnDevice(cfg, env)
    plain = OnDevice(_config(tmp_path, **{"train.normalize_obs": False, "train.normalize_reward": False}), env)
    key = jax.random.PRNGKey(0)
    runner = norm.init(key)
    assert plain.init(key).stats is None and runner.stats.obs.mean.shape == (4,)
    runner, batch, _ = norm.rollout(runner)
    _, raw, _ = plain.rollout(plain.init(key))
    for name, a, b in zip(batch._fields, raw, batch):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    after_epoch, _ = norm.epoch(norm.init(key))  # the epoch keeps its rollout's statistics
    for a, b in zip(jax.tree.leaves(after_epoch.stats), jax.tree.leaves(runner.stats)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    n, h, gamma = 4, cfg.train.bptt_horizon, cfg.train.gamma
    obs1 = _agent_major(raw.obs, n, h)
    ret1, carried = _numpy_returns(_agent_major(raw.rewards, n, h), _agent_major(raw.episode_starts, n, h), gamma,
                                   np.zeros(n, np.float32))
    assert (_agent_major(raw.episode_starts, n, h) > 0).any()  # episodes end inside the rollout: returns restart
    _assert_moments(runner.stats.obs, obs1.reshape(-1, 4))
    _assert_moments(runner.stats.ret, ret1.reshape(-1))
    np.testing.assert_allclose(np.asarray(runner.returns), carried, rtol=1e-5)

    first = runner.stats
    runner, batch, _ = norm.rollout(runner)
    obs_scale = np.sqrt(np.asarray(normalize.variance(first.obs)) + normalize.EPS)
    ret_scale = np.sqrt(float(normalize.variance(first.ret)) + normalize.EPS)
    z = np.asarray(batch.obs)
    assert np.abs(z).max() < cfg.train.obs_clip and np.abs(z.reshape(-1, 4).mean(0)).max() < 1.0
    obs2 = _agent_major(z, n, h) * obs_scale + np.asarray(first.obs.mean)
    rewards2 = _agent_major(batch.rewards, n, h) * ret_scale
    np.testing.assert_allclose(rewards2[rewards2 != 0], 1.0, rtol=1e-5)  # CartPole's reward, scaled back
    ret2, carried = _numpy_returns(rewards2, _agent_major(batch.episode_starts, n, h), gamma, carried)
    _assert_moments(runner.stats.obs, np.concatenate([obs1, obs2], 1).reshape(-1, 4), rtol=1e-4)
    _assert_moments(runner.stats.ret, np.concatenate([ret1, ret2], 1).reshape(-1), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(runner.returns), carried, rtol=1e-4)


def test_vmapped_seeds_and_gammas_equal_separate_calls(tmp_path):
    """Pendulum (float observations, rewards far from 1): a vmap over seeds with a traced Hyper
    whose gamma differs per run gives each separate call's statistics and parameters."""
    cfg = _config(tmp_path, "gymnax:Pendulum-v1")
    train = puffjax.make_train(cfg, make("Pendulum-v1"))
    base = Hyper.from_config(cfg.train)
    gammas = [0.9, 0.99]
    hypers = base._replace(gamma=jnp.array(gammas, jnp.float32),
                           **{f: jnp.full(2, getattr(base, f), jnp.float32) for f in Hyper._fields if f != "gamma"})
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    runners, _ = jax.vmap(train)(keys, hypers)
    assert runners.stats.obs.mean.shape == (2, 3) and np.all(np.asarray(runners.stats.obs.count) == 192)
    for i, gamma in enumerate(gammas):
        runner, _ = train(keys[i], base._replace(gamma=gamma))
        for a, b in zip(jax.tree.leaves((runner.stats, runner.returns, runner.train.params)),
                        jax.tree.leaves((runners.stats, runners.returns, runners.train.params))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-4, atol=1e-5)
    var = np.asarray(normalize.variance(runners.stats.ret))
    assert var[0] < var[1]  # the longer horizon's returns spread wider


def test_two_devices_give_the_statistics_of_one(tmp_path):
    """A deterministic environment, so 1 and 2 devices play the same steps: after two rollouts
    (the second standardised with the first's statistics, combined over the devices) the
    statistics and returns are those of one device."""
    code = textwrap.dedent(f"""
        import sys, pathlib, jax, numpy as np, puffjax
        sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from test_make_train import Walk
        from test_ondevice_normalize import _config
        from puffjax import parallel
        from puffjax.ondevice import OnDevice
        cfg = _config(pathlib.Path({str(tmp_path)!r}))
        out = []
        for devices in (1, 2):
            ondevice = OnDevice(cfg, Walk(), parallel.make_mesh(devices))
            runner = ondevice.init(jax.random.PRNGKey(0))
            for _ in range(2):
                runner, _, _ = ondevice.rollout(runner)
            assert len(runner.returns.sharding.device_set) == devices
            out.append((runner.stats, runner.returns))
        assert float(out[1][0].obs.count) == 128 and float(np.asarray(out[1][0].ret.m2)) > 0
        for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[1]), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        print("ok")
    """)
    env = forced_devices_env(2)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-3000:]


def test_trainer_checkpoints_resume_and_eval_use_the_statistics(tmp_path):
    """The Trainer on a JAX env with normalisation: checkpoints hold the statistics in the host
    trainer's ``normalize`` entry, a run resumed from epoch 2 ends bit for bit as make_train's
    uninterrupted run, and eval standardises observations with the checkpoint's statistics."""
    cfg = _config(tmp_path, **{"train.total_timesteps": 64 * 4, "train.checkpoint_interval": 2})
    part = puffjax.Trainer(cfg, dashboard="none")
    try:
        it = part.train_iter()
        next(it), next(it)
        it.close()
    finally:
        part.close()
    saved = puffjax.checkpoint.load_raw(os.path.join(part.run_dir, "checkpoints", "epoch_000002.msgpack"))
    for a, b in zip(jax.tree.leaves(normalize.to_host(part.device.stats)), jax.tree.leaves(saved["normalize"])):
        np.testing.assert_array_equal(a, np.asarray(b))
    resumed = puffjax.Trainer(resume=part.run_dir, dashboard="none")
    try:
        assert resumed.epoch == 2
        for a, b in zip(jax.tree.leaves(resumed.device.stats), jax.tree.leaves(part.device.stats), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        rest = resumed.train()
    finally:
        resumed.close()
    runner, metrics = puffjax.make_train(cfg, resumed.env)(jax.random.PRNGKey(cfg.train.seed))
    for a, b in zip(jax.tree.leaves(resumed.device.runner), jax.tree.leaves(runner), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(metrics["policy_loss"][2:]), [log["losses/policy_loss"] for log in rest])

    loaded = load_policy(part.run_dir)
    moments, clip = loaded.obs_norm
    assert clip == 10.0 and float(moments.count) == 256
    for a, b in zip(moments, runner.stats.obs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    result = puffjax.evaluate(part.run_dir, episodes=1, num_envs=1, deterministic=True)
    assert len(result.episodes) == 1
