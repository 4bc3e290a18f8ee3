"""The update's minibatch loop is unrolled for CNN policies on CPU, with the same results as the loop."""
import gymnasium
import jax
import numpy as np
import pytest

import puffjax
from puffjax import update
from puffjax.geometry import geometry
from puffjax.models import make_policy


@pytest.mark.parametrize("kind", puffjax.config.POLICY_KINDS)
def test_unroll_only_for_conv_encoders_on_cpu(kind):
    policy = make_policy(gymnasium.spaces.Box(0, 255, (11, 11, 2), np.uint8), gymnasium.spaces.Discrete(3), kind=kind)
    mesh = jax.sharding.Mesh(np.array(jax.devices("cpu")[:1]), ("rows",))
    expected = True if kind.startswith("cnn") else 1  # 1: the loop, as for every other policy
    assert update.minibatch_unroll(policy, mesh) is expected


@pytest.mark.parametrize("max_minibatch_size", [128, 64])  # one gradient, or two accumulated chunks
def test_cnn_update_unrolled_matches_loop(shipped_config, monkeypatch, max_minibatch_size):
    cfg = shipped_config("squared", **{"env.num_envs": 16, "train.minibatch_size": 128, "train.bptt_horizon": 16,
                                       "train.total_timesteps": 16 * 16, "train.update_epochs": 1,
                                       "train.max_minibatch_size": max_minibatch_size, "policy.kind": "cnn",
                                       "policy.hidden_size": 32, "train.optimizer": "adam",
                                       "train.learning_rate": 1e-3})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    buf = trainer.collect()
    key = jax.random.PRNGKey(3)
    geom = geometry(cfg.train, 16)
    assert geom.minibatches_per_epoch == 2
    unrolled, m_a, _ = trainer.train_epoch(trainer.state, buf, key, 0)
    monkeypatch.setattr(update, "minibatch_unroll", lambda policy, mesh: 1)
    looped, m_b, _ = update.make_train_epoch(trainer.policy, trainer.tx, geom, cfg.train, trainer.mesh)(
        trainer.state, buf, key, 0)
    for a, b in zip(jax.tree.leaves(unrolled.params), jax.tree.leaves(looped.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for k in update.LOSS_KEYS:
        np.testing.assert_allclose(float(m_a[k]), float(m_b[k]), rtol=1e-4, atol=1e-6)
    trainer.close()
