"""Minibatches of single steps drawn over the whole batch (``train.minibatch_steps``)."""
import jax
import numpy as np
import pytest

import puffjax
from puffjax.config import TrainConfig
from puffjax.geometry import geometry
from puffjax.update import make_train_epoch


def test_a_step_minibatch_may_be_smaller_than_a_segment():
    t = TrainConfig(bptt_horizon=256, batch_size=2048, minibatch_size=64, update_epochs=10,
                    total_timesteps=4096, minibatch_steps=True)
    geom = geometry(t, 8)
    assert (geom.minibatch_steps, geom.minibatches_per_epoch, geom.segments) == (64, 320, 8)
    t.minibatch_steps = False
    with pytest.raises(ValueError, match="not a multiple of train.bptt_horizon"):
        geometry(t, 8)
    assert geometry(TrainConfig(bptt_horizon=64, batch_size=2048, minibatch_size=64,
                                total_timesteps=4096), 8).minibatch_steps == 0


def test_every_step_in_one_minibatch_is_the_update_of_every_segment(tiny_config):
    """One minibatch of the whole batch, drawn as steps or as segments, is one mean loss over the
    same steps: the same update (the gathers put every step where it belongs)."""
    cfg = tiny_config("cartpole", **{"train.optimizer": "adam", "train.learning_rate": 1e-3,
                                     "train.update_epochs": 1, "train.prio_alpha": 0.0})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    try:
        buf = trainer.collect()
        key = jax.random.PRNGKey(3)
        state_a, m_a, _ = trainer.train_epoch(trainer.state, buf, key, 0)
        cfg.train.minibatch_steps = True
        geom = geometry(cfg.train, cfg.env.num_envs)
        assert geom.minibatch_steps == 64
        state_b, m_b, _ = make_train_epoch(trainer.policy, trainer.tx, geom, cfg.train, trainer.mesh)(
            trainer.state, buf, key, 0)
    finally:
        trainer.close()
    changed = False
    for before, a, b in zip(*(jax.tree.leaves(s.params) for s in (trainer.state, state_a, state_b))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        changed |= not np.allclose(a, before)
    assert changed
    assert float(m_a["value_loss"]) == pytest.approx(float(m_b["value_loss"]), rel=1e-4)


def test_a_recurrent_policy_is_refused(tiny_config):
    cfg = tiny_config("cartpole", **{"policy.kind": "lstm", "train.minibatch_steps": True})
    with pytest.raises(ValueError, match="train.minibatch_steps draws single steps"):
        puffjax.Trainer(cfg, dashboard="none")
