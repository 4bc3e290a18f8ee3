"""For CNN policies on CPU the update's minibatches run from a host loop (or unrolled, as the
fully jitted trainer does), with the same results as the epoch's loop."""
import dataclasses

import gymnasium
import jax
import numpy as np
import pytest

import puffjax
from puffjax import update
from puffjax.geometry import geometry
from puffjax.models import make_policy


@pytest.mark.parametrize("kind", puffjax.config.POLICY_KINDS)
def test_host_loop_and_unroll_only_for_conv_encoders_on_cpu(kind):
    policy = make_policy(gymnasium.spaces.Box(0, 255, (11, 11, 2), np.uint8), gymnasium.spaces.Discrete(3), kind=kind)
    mesh = jax.sharding.Mesh(np.array(jax.devices("cpu")[:1]), ("rows",))
    conv = kind.startswith("cnn")
    assert update.minibatch_unroll(policy, mesh) is (True if conv else 1)  # 1: the loop, as for every other policy
    assert update.minibatch_driver(policy, mesh) == ("host" if conv else "loop")


@pytest.fixture(scope="module")
def cnn_rollout(shipped_config):
    """``(config, trainer, batch)``: a CNN policy's trainer on Squared (two minibatches of 128 in
    an epoch, each one gradient) and the batch of its first rollout."""
    cfg = shipped_config("squared", **{"env.num_envs": 16, "train.minibatch_size": 128, "train.bptt_horizon": 16,
                                       "train.total_timesteps": 16 * 16, "train.update_epochs": 1,
                                       "train.max_minibatch_size": 128, "policy.kind": "cnn",
                                       "policy.hidden_size": 32, "train.optimizer": "adam",
                                       "train.learning_rate": 1e-3})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    yield cfg, trainer, trainer.collect()
    trainer.close()


def test_cnn_update_drivers_match_loop(cnn_rollout):
    """Each minibatch's gradient in two accumulated chunks of 64 (the drivers' hardest case)."""
    cfg, trainer, buf = cnn_rollout
    train_cfg = dataclasses.replace(cfg.train, max_minibatch_size=64)
    key = jax.random.PRNGKey(3)
    geom = geometry(train_cfg, 16)
    assert geom.minibatches_per_epoch == 2
    epoch = lambda driver=None: update.make_train_epoch(trainer.policy, trainer.tx, geom, train_cfg, trainer.mesh,
                                                        driver)
    default = epoch()  # the driver the trainer chooses (the host loop, checked above)
    looped, m_loop, h_loop = epoch("loop")(trainer.state, buf, key, 0)
    for driver, (state, metrics, health) in [("host", default(trainer.state, buf, key, 0)),
                                             ("unroll", epoch("unroll")(trainer.state, buf, key, 0))]:
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(looped)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=driver)
        for k in update.LOSS_KEYS:
            np.testing.assert_allclose(float(metrics[k]), float(m_loop[k]), rtol=1e-4, atol=1e-6, err_msg=f"{driver} {k}")
        assert int(health["bad_minibatch"]) == int(h_loop["bad_minibatch"]) == -1
        assert bool(health["params_finite"])


def test_unknown_driver_is_named():
    policy = make_policy(gymnasium.spaces.Box(0, 255, (11, 11, 2), np.uint8), gymnasium.spaces.Discrete(3), kind="cnn")
    mesh = jax.sharding.Mesh(np.array(jax.devices("cpu")[:1]), ("rows",))
    with pytest.raises(ValueError, match="minibatch driver 'scan': use one of loop, unroll, host"):
        update.make_train_epoch(policy, None, None, puffjax.load_config("squared").train, mesh, "scan")
