"""A training run on a JAX environment as one jitted function (puffjax.ondevice): vmapped seeds
and hyperparameters give what separate calls give, the device rollout writes the batch the host
rollout writes, and gymnax CartPole learns."""
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
from puffjax.envs.jaxenv.protocol import JaxEnv
from puffjax.ondevice import OnDevice
from puffjax.update import Hyper
from forced_devices import forced_devices_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Walk(JaxEnv):
    """A deterministic walk on a line (keys unused): the action moves left or right; reward 1.5
    beyond +2 (clipped by the rollout), -0.5 elsewhere; terminated at |x| = 3, truncated at 7 steps."""
    observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    log_names = ("score",)

    def reset(self, key):
        state = (jnp.int32(0), jnp.int32(0))
        return state, self._obs(state)

    def _obs(self, state):
        return jnp.stack([state[0], state[1]]).astype(jnp.float32) / 4

    def step(self, key, state, action):
        x, t = state[0] + 2 * action - 1, state[1] + 1
        reward = jnp.where(x >= 2, 1.5, -0.5)
        terminated, truncated = jnp.abs(x) >= 3, t >= 7
        return (x, t), self._obs((x, t)), reward, terminated, truncated, {"score": x.astype(jnp.float32)}


def _config(tmp_path, policy="default", **overrides):
    base = {"env.num_envs": 4, "train.bptt_horizon": 8, "train.batch_size": 64, "train.minibatch_size": 32,
            "train.total_timesteps": 192, "train.data_dir": str(tmp_path), "train.video_frames": 0,
            "policy.kind": policy, "policy.hidden_size": 16}
    return puffjax.load_config("cartpole", **{**base, **overrides})


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_vmapped_seeds_equal_separate_calls(tmp_path):
    cfg = _config(tmp_path)
    train = puffjax.make_train(cfg, Walk())
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    runners, metrics = jax.vmap(train)(keys)
    assert metrics["policy_loss"].shape == (2, 3) and metrics["env"].shape == (2, 3, 3)
    assert int(metrics["health"]["bad_minibatch"].max()) == -1 and bool(metrics["health"]["params_finite"].all())
    for i in range(2):
        runner, single = train(keys[i])
        np.testing.assert_allclose(np.asarray(single["policy_loss"]), np.asarray(metrics["policy_loss"][i]),
                                   rtol=1e-4, atol=1e-5)
        for a, b in zip(jax.tree.leaves(runner.train.params), jax.tree.leaves(runners.train.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-4, atol=1e-5)
    a, b = (jax.tree.leaves(r.train.params)[0] for r in (jax.tree.map(lambda x: x[0], runners),
                                                         jax.tree.map(lambda x: x[1], runners)))
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # the seeds differ


def test_vmapped_learning_rates_equal_separate_runs(tmp_path):
    """Traced hyperparameters (the advantage's scan reference), a recurrent policy, HL-Gauss."""
    cfg = _config(tmp_path, "mingru", **{"policy.value_head": "hl_gauss"})
    train = puffjax.make_train(cfg, Walk())
    base = Hyper.from_config(cfg.train)
    lrs = jnp.array([1e-3, 3e-2], jnp.float32)
    hypers = base._replace(learning_rate=lrs, **{f: jnp.full(2, getattr(base, f), jnp.float32)
                                                   for f in Hyper._fields if f != "learning_rate"})
    key = jax.random.PRNGKey(0)
    runners, metrics = jax.vmap(train, in_axes=(None, 0))(key, hypers)
    for i, lr in enumerate([1e-3, 3e-2]):
        runner, single = train(key, base._replace(learning_rate=lr))
        for a, b in zip(jax.tree.leaves(runner.train.params), jax.tree.leaves(runners.train.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-4, atol=1e-5)
    p0, p1 = (jax.tree.leaves(runners.train.params)[0][i] for i in range(2))
    assert not np.allclose(np.asarray(p0), np.asarray(p1))


class HostWalk(gym.Env):
    """:class:`Walk` in NumPy, a gymnasium env for the host rollout."""
    observation_space, action_space = Walk.observation_space, Walk.action_space

    def reset(self, seed=None, options=None):
        self.x = self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.t], np.float32) / 4

    def step(self, action):
        self.x, self.t = self.x + 2 * int(action) - 1, self.t + 1
        return self._obs(), 1.5 if self.x >= 2 else -0.5, abs(self.x) >= 3, self.t >= 7, {}


@pytest.mark.parametrize("policy", ["default", "lstm"])
def test_device_rollout_writes_the_host_rollouts_batch(tmp_path, policy):
    """The same parameters, key and (deterministic) environment: the device rollout's batch is
    bit for bit the host rollout's (clipped rewards, bootstrapped truncations, episode starts)."""
    cfg = _config(tmp_path, policy, **{"train.total_timesteps": 64, "train.rollout_groups": 1})
    trainer = puffjax.Trainer(cfg, env=puffjax.envs.from_gymnasium(HostWalk, num_envs=4), dashboard="none")
    try:
        ondevice = OnDevice(cfg, Walk(), trainer.mesh)
        runner = ondevice.init(jax.random.PRNGKey(0))
        runner = runner._replace(train=trainer.state, rollout_key=trainer.rollout_key)
        for _ in range(2):  # the second epoch starts mid-episode, with bootstrapped values carried over
            host = trainer.collect()
            runner, batch, _ = ondevice.rollout(runner)
            for name, a, b in zip(batch._fields, host, batch):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
        assert np.asarray(batch.episode_starts).any() and (np.asarray(batch.rewards) == 1.0).any()
        assert np.asarray(runner.prev_value).shape == (4,)
    finally:
        trainer.close()


def test_gymnax_cartpole_learns(tmp_path):
    """gymnax CartPole-v1's shipped profile, 200k steps in one jitted call: the episodes finished
    in the last quarter of the run last 150 steps or more on average (a random policy's last
    about 22)."""
    from puffjax.envs.jaxenv.gymnax import make
    cfg = puffjax.load_config("gymnax:CartPole-v1", **{"train.total_timesteps": 200_000,
                                                       "train.data_dir": str(tmp_path)})
    _, metrics = puffjax.make_train(cfg, make("CartPole-v1"))(jax.random.PRNGKey(0))
    returns, episodes = np.asarray(metrics["env"][:, 0]), np.asarray(metrics["episodes"])
    last = slice(3 * len(returns) // 4, None)
    assert episodes[last].sum() > 0 and (returns * episodes)[last].sum() / episodes[last].sum() >= 150, returns
    assert int(np.asarray(metrics["health"]["bad_minibatch"]).max()) == -1


def test_custom_loop_example(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "custom_loop.py"), "8192"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "epoch 16/16" in p.stdout and "Done: 8,192 steps" in p.stdout


def test_two_devices(tmp_path):
    """On a mesh of 2 devices each steps its own 2 environments; the run trains and reports
    every episode of both devices."""
    code = textwrap.dedent(f"""
        import sys, jax, numpy as np, puffjax
        sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from test_make_train import Walk, _config
        import pathlib
        ondevice = puffjax.OnDevice(_config(pathlib.Path({str(tmp_path)!r})), Walk())
        assert ondevice.mesh.size == 2
        runner, metrics = ondevice.train(jax.random.PRNGKey(0))
        assert runner.env.obs.shape == (4, 2) and len(runner.env.obs.sharding.device_set) == 2
        assert int(metrics["health"]["bad_minibatch"].max()) == -1 and metrics["health"]["inputs"].shape == (3, 2, 2, 2)
        assert np.isfinite(metrics["policy_loss"]).all() and metrics["episodes"].sum() >= 4 * 6
        print("ok")
    """)
    env = forced_devices_env(2)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-3000:]
