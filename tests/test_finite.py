"""The non-finite guard: NaN/inf from an environment or the update stops training with an error
that names it, keeps the last good parameters and checkpoint, and costs one reduction per step."""
import itertools
import os

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import puffjax
from puffjax import checkpoint, envs, finite
from puffjax.finite import NonFiniteError


class Poisoned(gym.Env):
    """A tiny task (reward 1 for action 1) whose observations or rewards turn NaN/inf after
    ``at`` steps, in the environment built ``index``-th."""

    def __init__(self, poison: bool, what: str = "obs", at: int = 5, action_space=None):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = action_space or gym.spaces.Discrete(2)
        self.poison, self.what, self.at, self.t = poison, what, at, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.poison and self.t >= self.at
        obs = np.full(3, np.nan if bad and self.what == "obs" else 0.5, np.float32)
        reward = np.inf if bad and self.what == "reward" else 1.0
        return obs, reward, False, self.t % 7 == 0, {}


def poisoned_vec(num_envs, bad_index, **kw):
    counter = itertools.count()
    return envs.from_gymnasium(lambda: Poisoned(next(counter) == bad_index, **kw), num_envs=num_envs)


SIX_EPOCHS = {"train.total_timesteps": 64 * 6, "train.checkpoint_interval": 1}  # of 8 envs x 8 steps


@pytest.mark.parametrize("what, name", [("obs", "observations"), ("reward", "rewards")])
def test_nan_from_the_env_stops_training_and_names_it(tiny_config, what, name):
    # Env 3's 20th step returns NaN/inf, which the rollout reads at its 21st step: step 4 of
    # epoch 3 (8 steps per epoch).
    trainer = puffjax.Trainer(tiny_config(**SIX_EPOCHS), env=poisoned_vec(8, 3, what=what, at=20), dashboard="none")
    logs = []
    with pytest.raises(NonFiniteError) as err:
        for log in trainer.train_iter():
            logs.append(log)
    msg = str(err.value)
    assert f"{name}[3]" in msg and "epoch 3" in msg and "rollout step 4 " in msg, msg
    assert len(logs) == 2
    # The last good state is kept, and `latest` names the last good checkpoint.
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(trainer.state.params))
    assert checkpoint.resolve(trainer.run_dir).endswith("epoch_000002.msgpack")
    assert not os.path.exists(os.path.join(trainer.run_dir, "checkpoints", "epoch_000003.msgpack"))
    state = checkpoint.load_raw(trainer.run_dir)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))
    trainer.close()


def test_nan_observations_with_continuous_actions_name_the_observations(tiny_config):
    """NaN observations make NaN Gaussian actions, which the env refuses first: the error still
    names the observations, with the env's own complaint chained."""
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    trainer = puffjax.Trainer(tiny_config(**SIX_EPOCHS), env=poisoned_vec(8, 5, at=4, action_space=box),
                              dashboard="none")
    with pytest.raises(NonFiniteError, match=r"epoch 1: .*observations\[5\]") as err:
        trainer.train()
    assert isinstance(err.value.__context__, ValueError)
    trainer.close()


def test_nonfinite_update_is_discarded(tiny_config, monkeypatch):
    """A rollout buffer holding a NaN value makes the loss NaN: the update is refused and the
    parameters stay those before it."""
    import puffjax.trainer as trainer_module
    real = trainer_module.play

    def play_then_poison(*args, **kw):
        buf, *rest = real(*args, **kw)
        if kw["epoch"] == 2:
            buf = buf._replace(values=buf.values.at[1, 2].set(jnp.nan))
        return (buf, *rest)

    monkeypatch.setattr(trainer_module, "play", play_then_poison)
    trainer = puffjax.Trainer(tiny_config(**SIX_EPOCHS), dashboard="none")
    before = None
    with pytest.raises(NonFiniteError, match="epoch 2: the loss or its gradients became non-finite in minibatch 0"):
        for _ in trainer.train_iter():
            before = jax.tree.map(np.asarray, trainer.state.params)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(trainer.state.params)):
        np.testing.assert_array_equal(a, b)
    assert checkpoint.resolve(trainer.run_dir).endswith("epoch_000001.msgpack")
    trainer.close()


def test_check_finite_off_skips_the_guard(tiny_config, train_run):
    """train.check_finite = false: NaN observations reach the update, training goes on to the
    end and the parameters become NaN; no check stops it."""
    cfg = tiny_config(**SIX_EPOCHS, **{"train.check_finite": "false"})
    trainer, history = train_run(cfg, env=poisoned_vec(8, 3, at=4))
    assert len(history) == 6 and trainer.finished
    assert not all(np.isfinite(x).all() for x in jax.tree.leaves(trainer.state.params))
    seen = np.asarray(trainer.buf.obs)
    assert np.isnan(seen).any()  # the rollout did play the poisoned observations


def test_cli_reports_nonfinite_and_exits_1(tmp_path, monkeypatch, capsys):
    import puffjax.trainer as trainer_module

    def poisoned_make(name, **kw):
        return poisoned_vec(kw["num_envs"], 0, at=3)

    monkeypatch.setattr(trainer_module.envs, "make", poisoned_make)
    from puffjax.cli import main
    code = main(["train", "cartpole", "--env.num-envs", "8", "--train.bptt-horizon", "8", "--train.minibatch-size",
                 "64", "--train.total-timesteps", "256", "--train.data-dir", str(tmp_path), "--dashboard", "none",
                 "--train.video-frames", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "observations[0]" in err and "no checkpoint was written" in err


def test_record_matches_a_numpy_loop():
    """The first non-finite (step, row) of each input over a random stream of steps."""
    rng = np.random.default_rng(0)
    steps, n = 12, 9
    obs = rng.normal(size=(steps, n, 4)).astype(np.float32)
    rew = rng.normal(size=(steps, n)).astype(np.float32)
    for _ in range(5):
        obs[rng.integers(steps), rng.integers(n), rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf])
        rew[rng.integers(steps), rng.integers(n)] = rng.choice([np.nan, np.inf])
    record = jax.jit(finite.record)
    seen = finite.clean_record()
    for s in range(steps):
        seen = record(seen, s, obs[s], rew[s])

    def first(x):
        for s in range(steps):
            rows = [i for i in range(n) if not np.isfinite(x[s, i]).all()]
            if rows:
                return [s, rows[0]]
        return [-1, -1]

    np.testing.assert_array_equal(np.asarray(seen), [first(obs), first(rew)])
    # uint8 observations cannot be non-finite; a clean stream stays clean.
    clean = finite.record(finite.clean_record(), 0, np.zeros((3, 2), np.uint8), np.zeros(3, np.float32))
    np.testing.assert_array_equal(np.asarray(clean), -1)
    finite.check_record(clean, 1)


def test_all_finite():
    assert bool(finite.all_finite({"a": jnp.ones(3), "b": (jnp.zeros((2, 2)),)}))
    assert not bool(finite.all_finite({"a": jnp.ones(3), "b": jnp.array([0.0, jnp.inf])}))
    assert bool(finite.all_finite({}))
