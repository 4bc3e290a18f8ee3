"""Every standard gymnasium space: flatten/unflatten round trips, the dtype rule, bad input, and
small envs with Dict / Discrete(start=1) observations and Dict actions that train."""
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import puffjax
from puffjax import envs
from puffjax.envs import action_layout, observation_layout
from puffjax.models import make_policy

S = gym.spaces


def nested_space(seed=0):
    return S.Dict({
        "image": S.Box(0, 255, (3, 2), np.uint8),
        "pos": S.Box(-2.0, 2.0, (2,), np.float32),
        "k": S.Discrete(3, start=-1),
        "inner": S.Tuple((S.MultiBinary((2, 2)), S.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [0, -3]]),
                          S.Dict({"d": S.Discrete(7, start=1)}))),
    }, seed=seed)


LEAVES = [S.Box(-1.0, 1.0, (3, 2), np.float32), S.Box(0, 255, (4,), np.uint8), S.Box(-5, 5, (2,), np.int32),
          S.Discrete(5), S.Discrete(3, start=1), S.Discrete(2, start=-4), S.MultiDiscrete([3, 4]),
          S.MultiDiscrete([[2, 3]], start=[[5, -1]]), S.MultiBinary(3), S.MultiBinary((2, 3))]


def _equal(a, b):
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("space", LEAVES + [nested_space(), S.Tuple(LEAVES), S.Dict({"a": S.Tuple(LEAVES[:3])})],
                         ids=lambda s: type(s).__name__ + str(getattr(s, "shape", "")))
def test_round_trip_numpy_and_jax(space):
    space.seed(1)
    layout = observation_layout(space)
    samples = [space.sample() for _ in range(20)]
    rows = np.stack([layout.flatten(x) for x in samples])
    assert rows.shape == (20, *layout.row_shape) and rows.dtype == layout.dtype
    back = layout.unflatten(rows)
    jback = jax.jit(layout.unflatten)(jnp.asarray(rows))
    for i, x in enumerate(samples):
        layout.check(x)
        _equal(layout.unflatten(rows[i]), x)
        _equal(jax.tree.map(lambda v: v[i], back), x)
        _equal(jax.tree.map(lambda v: np.asarray(v)[i], jback), x)
    # unflatten keeps every leading dim
    assert jax.tree.leaves(layout.unflatten(rows.reshape(4, 5, *layout.row_shape)))[0].shape[:2] == (4, 5)
    # actions: the same leaves, int32 rows when every leaf is discrete
    if not (isinstance(space, S.Box) and space.dtype != np.float32) and not _has_int_box(space):
        a = action_layout(space)
        arows = np.stack([a.flatten(x) for x in samples])
        assert a.dtype == (np.int32 if all(leaf.discrete for leaf in a.leaves) else np.float32)
        for i, x in enumerate(samples):
            _equal(a.unflatten(arows[i]), x)


def _has_int_box(space):
    return any(leaf.kind == "box" and np.dtype(leaf.dtype).kind != "f" for leaf in observation_layout(space).leaves)


def test_the_flatten_rule():
    plain = observation_layout(S.Box(0, 255, (8, 8, 3), np.uint8))
    assert plain.plain and plain.row_shape == (8, 8, 3) and plain.dtype == np.uint8
    assert observation_layout(S.Box(-1, 1, (2, 3))).row_shape == (2, 3)
    small = observation_layout(S.Dict({"a": S.Discrete(5, start=3), "b": S.MultiBinary(4),
                                       "c": S.Box(0, 255, (2,), np.uint8)}))
    assert not small.plain and small.row_shape == (7,) and small.dtype == np.uint8
    assert observation_layout(S.Discrete(300)).dtype == np.float32  # 299 does not fit uint8
    assert observation_layout(S.Discrete(3, start=-1)).dtype == np.float32
    assert observation_layout(nested_space()).dtype == np.float32
    lay = observation_layout(nested_space())
    assert [leaf.path for leaf in lay.leaves] == [("image",), ("inner", 0), ("inner", 1), ("inner", 2, "d"),
                                                   ("k",), ("pos",)]  # gymnasium sorts a dict's keys
    assert lay.size == 6 + 4 + 4 + 1 + 1 + 2
    assert action_layout(S.Discrete(4)).row_shape == () and action_layout(S.Discrete(4)).dtype == np.int32
    assert action_layout(S.Dict({"a": S.Discrete(2), "b": S.MultiDiscrete([3, 3])})).dtype == np.int32
    assert action_layout(S.Tuple((S.Discrete(2), S.Box(-1, 1, (2,))))).dtype == np.float32


@pytest.mark.parametrize("space,match", [
    (S.Text(5), "unsupported observation space Text"),
    (S.Dict({"a": S.Box(0, 1, (2,)), "b": S.Sequence(S.Discrete(2))}), r"Sequence at observation\['b'\]"),
    (S.Tuple((S.Discrete(2), S.Graph(S.Box(0, 1, (2,)), None))), r"Graph at observation\[1\]"),
    (S.Dict({}), "empty Dict"),
    (S.Discrete(1 << 25), "2\\^24"),
])
def test_unsupported_spaces_are_refused_up_front(space, match):
    with pytest.raises((TypeError, ValueError), match=match):
        observation_layout(space)


class Target(gym.Env):
    """A Dict observation names a target in {1, 2, 3}; the action (Discrete(3, start=1)) that
    equals it earns 1. Episodes of 8 steps. Optionally returns a bad observation on step `bad_at`."""

    metadata = {"render_modes": []}

    def __init__(self, bad=None, bad_at=1, plain_discrete=False):
        self.plain = plain_discrete
        if plain_discrete:
            self.observation_space = S.Discrete(3, start=1)
        else:
            self.observation_space = S.Dict({"target": S.Discrete(3, start=1), "noise": S.Box(-1, 1, (2,)),
                                             "flags": S.MultiBinary(2)})
        self.action_space = S.Discrete(3, start=1)
        self.bad, self.bad_at = bad, bad_at

    def _obs(self):
        if self.plain:
            return self.target
        obs = {"target": self.target, "noise": self.np_random.uniform(-1, 1, 2).astype(np.float32),
               "flags": self.np_random.integers(0, 2, 2).astype(np.int8)}
        if self.bad is not None and self.t == self.bad_at:
            obs = self.bad(obs)
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.target = int(self.np_random.integers(1, 4))
        return self._obs(), {}

    def step(self, action):
        assert action in (1, 2, 3), action
        reward = float(action == self.target)
        self.t += 1
        self.target = int(self.np_random.integers(1, 4))
        return self._obs(), reward, False, self.t >= 8, {}


@pytest.mark.parametrize("bad,match", [
    (lambda o: {k: v for k, v in o.items() if k != "noise"}, r"observation: missing key 'noise'"),
    (lambda o: {**o, "extra": 1}, "observation: unexpected key 'extra'"),
    (lambda o: {**o, "noise": np.zeros(3, np.float32)}, r"observation\['noise'\] has shape \(3,\), expected \(2,\)"),
    (lambda o: {**o, "flags": np.array([0.5, 1.0])}, r"observation\['flags'\] has dtype float64"),
    (lambda o: {**o, "target": 7}, r"observation\['target'\] = 7 is outside Discrete\(3, start=1\)"),
])
def test_observations_that_do_not_fit_are_refused_on_the_first_step(bad, match):
    env = envs.from_gymnasium(lambda: Target(bad), num_envs=2)
    with pytest.raises(ValueError, match=r"environment 0: " + match):
        env.step(np.ones(2, np.int32))


SMALL = {"env.num_envs": 16, "train.bptt_horizon": 16, "train.minibatch_size": 256, "train.learning_rate": 0.01}


@pytest.mark.parametrize("plain_discrete", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["dict", "discrete_start_1"])
def test_dict_and_discrete_start_observations_train(tiny_config, train_run, plain_discrete):
    env = envs.from_gymnasium(lambda: Target(plain_discrete=plain_discrete), num_envs=16, seed=0)
    assert env.observations.dtype == np.uint8 or not plain_discrete
    _, history = train_run(tiny_config(**SMALL, **{"train.total_timesteps": 40 * 16 * 16}), env=env)
    returns = [h["environment/episode_return"] for h in history if "environment/episode_return" in h]
    assert returns[0] < 4.5  # random: 8 / 3
    assert np.mean(returns[-3:]) > 5.5, returns  # learned: mostly right


class Arm(gym.Env):
    """Dict actions mixing a Discrete and a Box: reward for the right switch and a small force."""

    observation_space = S.Tuple((S.Box(-1, 1, (2,)), S.Discrete(2)))
    action_space = S.Dict({"switch": S.Discrete(2, start=1), "force": S.Box(-1, 1, (2,))})

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return (np.zeros(2, np.float32), 0), {}

    def step(self, action):
        assert action["switch"] in (1, 2) and action["force"].shape == (2,)
        assert np.all(np.abs(action["force"]) <= 1.0)
        self.t += 1
        r = float(action["switch"] == 2) - float(np.abs(action["force"]).sum())
        return (np.zeros(2, np.float32), self.t % 2), r, False, self.t >= 10, {}


def test_mixed_dict_actions_train(tiny_config, train_run):
    env = envs.from_gymnasium(Arm, num_envs=16)
    assert env.actions.shape == (16, 3) and env.actions.dtype == np.float32
    trainer, history = train_run(tiny_config(**SMALL, **{"train.total_timesteps": 4 * 16 * 16}), env=env)
    assert len(history) == 4 and np.isfinite(history[-1]["losses/policy_loss"])
    assert isinstance(trainer.policy.dist, puffjax.actions.Mixed)


def test_a_custom_policy_can_unflatten_observations():
    space = nested_space()
    policy = make_policy(space, S.Discrete(2), hidden_size=8)
    rows = np.stack([policy.obs_layout.flatten(space.sample()) for _ in range(3)])
    parts = jax.jit(policy.obs_layout.unflatten)(rows)
    assert parts["pos"].shape == (3, 2) and parts["inner"][1].shape == (3, 2, 2)
    params = policy.init(jax.random.key(0))
    out, _ = policy.step(params, rows, ())
    assert out.action_params.shape == (3, 2)
