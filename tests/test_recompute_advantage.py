"""``train.recompute_advantage``: advantages from the current values and ratios before every
minibatch (PufferLib's way), or GAE of the rollout's values once per epoch (CleanRL's)."""
import jax
import numpy as np
from jax.sharding import PartitionSpec as P

import puffjax
from puffjax import parallel
from puffjax.geometry import geometry
from puffjax.update import Hyper, make_epoch_parts
from test_advantage import textbook_gae


def _third_minibatch(trainer, recompute):
    """The rows and advantages of an epoch's third minibatch, drawn after two steps: the second
    step's forward pass (after one update) wrote new values and ratios back."""
    cfg = trainer.cfg
    geom = geometry(cfg.train, cfg.env.num_envs)
    parts = make_epoch_parts(trainer.policy, geom, recompute_advantage=recompute)
    hyper = Hyper.from_config(cfg.train)
    rows = P(parallel.AXIS)

    def run(state, batch, key):
        carry, xs, beta = parts.start(hyper, state, batch, key, 0)
        for k in range(2):
            carry, _ = parts.minibatch(carry, jax.tree.map(lambda x: x[k], xs), batch, hyper, trainer.tx, beta)
        return carry[3].idx, carry[3].advantages

    fn = jax.jit(jax.shard_map(run, mesh=trainer.mesh, in_specs=(P(), rows, P()), out_specs=(rows, rows),
                               check_vma=False))
    return fn


def test_gae_once_per_epoch_against_a_numpy_reference(tiny_config):
    cfg = tiny_config("cartpole", **{"train.optimizer": "adam", "train.learning_rate": 0.05,
                                     "train.update_epochs": 3, "train.prio_alpha": 0.0})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    try:
        batch = trainer.collect()
        host = jax.tree.map(np.asarray, batch)
        key = jax.random.PRNGKey(np.random.default_rng().integers(1 << 30))
        t = cfg.train
        gae = textbook_gae(host.values, host.rewards, host.episode_starts, t.gamma, t.gae_lambda) * host.masks
        idx, adv = map(np.asarray, _third_minibatch(trainer, recompute=False)(trainer.state, batch, key))
        np.testing.assert_allclose(adv, gae[idx], rtol=1e-4, atol=1e-5)
        # recomputed from the values the first minibatch wrote back: no longer the rollout's GAE
        idx, adv = map(np.asarray, _third_minibatch(trainer, recompute=True)(trainer.state, batch, key))
        assert not np.allclose(adv, gae[idx], rtol=1e-4, atol=1e-5)
    finally:
        trainer.close()


def test_the_trainer_reads_the_option(tiny_config, train_run):
    """The same run with and without the option: one epoch of three passes ends with other
    parameters (the third pass drew by other advantages), both finite."""
    params = {}
    for recompute in (True, False):
        cfg = tiny_config("cartpole", **{"train.update_epochs": 3, "train.recompute_advantage": recompute})
        trainer, history = train_run(cfg)
        params[recompute] = jax.tree.leaves(trainer.state.params)
        assert history and np.isfinite(history[-1]["losses/value_loss"])
    assert all(np.all(np.isfinite(p)) for p in params[False])
    assert any(not np.allclose(a, b) for a, b in zip(params[True], params[False]))
