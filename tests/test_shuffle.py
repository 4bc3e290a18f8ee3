"""``train.shuffle``: every pass over the batch takes each row (or step) exactly once, in a fresh
order, as CleanRL and PureJaxRL draw PPO's minibatches."""
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import puffjax
from puffjax import parallel
from puffjax.geometry import geometry
from puffjax.update import Hyper, make_epoch_parts


def _drawn_per_minibatch(trainer, steps):
    """The flat indices (rows, or steps with ``steps``) and weights each minibatch of one epoch drew."""
    cfg = trainer.cfg
    geom = geometry(cfg.train, cfg.env.num_envs)
    parts = make_epoch_parts(trainer.policy, geom, shuffle=True)
    hyper = Hyper.from_config(cfg.train)
    horizon = cfg.train.bptt_horizon

    def run(state, batch, key):
        carry, xs, beta = parts.start(hyper, state, batch, key, 0)
        drawn = []
        for k in range(geom.minibatches_per_epoch):
            d = carry[3]
            flat = d.idx[0][:, 0] * horizon + d.idx[1][:, 0] if steps else d.idx
            drawn.append((flat, d.weights))
            carry, _ = parts.minibatch(carry, jax.tree.map(lambda x: x[k], xs), batch, hyper, trainer.tx, beta)
        return drawn

    fn = jax.jit(jax.shard_map(run, mesh=trainer.mesh, in_specs=(P(), P(parallel.AXIS), P()), out_specs=P(),
                               check_vma=False))
    return fn, geom


@pytest.mark.parametrize("steps", [False, True])
def test_every_pass_takes_each_row_once(tiny_config, steps):
    cfg = tiny_config("cartpole", **{"train.shuffle": True, "train.prio_alpha": 0.0, "train.update_epochs": 3,
                                     "train.minibatch_size": 16, "train.minibatch_steps": steps})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    try:
        batch = trainer.collect()
        fn, geom = _drawn_per_minibatch(trainer, steps)
        key = jax.random.PRNGKey(np.random.default_rng().integers(1 << 30))
        drawn = [(np.asarray(i), np.asarray(w)) for i, w in fn(trainer.state, batch, key)]
        size = geom.batch_size if steps else geom.segments
        per_pass = len(drawn) // cfg.train.update_epochs
        passes = [np.concatenate([i for i, _ in drawn[p * per_pass:(p + 1) * per_pass]])
                  for p in range(cfg.train.update_epochs)]
        for order in passes:
            assert sorted(order.tolist()) == list(range(size))
        assert any(not np.array_equal(passes[0], p) for p in passes[1:])  # a fresh order per pass
        assert all((w == 1).all() for _, w in drawn)
    finally:
        trainer.close()


def test_shuffle_needs_uniform_draws_and_trains(tiny_config, train_run):
    with pytest.raises(ValueError, match="train.shuffle takes every step once per pass.*prio_alpha = 0"):
        tiny_config("cartpole", **{"train.shuffle": True, "train.prio_alpha": 0.5})
    trainer, history = train_run(tiny_config("cartpole", **{"train.shuffle": True, "train.prio_alpha": 0.0,
                                                              "train.update_epochs": 2, "train.minibatch_size": 16}))
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(trainer.state.params))
