"""atari:GAME environments: the standard preprocessing, episodic life, the shipped config, training."""
import numpy as np
import pytest

pytest.importorskip("ale_py")

import gymnasium  # noqa: E402
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation  # noqa: E402

import puffjax  # noqa: E402
from puffjax import envs  # noqa: E402
from puffjax.envs import atari  # noqa: E402


def test_game_ids():
    assert atari.game_id("atari:Breakout") == "ALE/Breakout-v5"
    assert atari.game_id("atari:ALE/Pong-v5") == "ALE/Pong-v5"
    assert atari.game_id("atari:PongNoFrameskip-v4") == "PongNoFrameskip-v4"
    with pytest.raises(ValueError, match="name a game"):
        atari.game_id("atari:")


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="unknown option.*frameskip; options: noop_max"):
        envs.make("atari:Breakout", num_envs=1, frameskip=4)
    with pytest.raises(ValueError, match="atari:ALE/NoSuchGame-v5"):
        envs.make("atari:NoSuchGame", num_envs=1)


def test_observations_are_gymnasiums_preprocessing_channels_last():
    """84x84 grayscale, frame skip 4 with max-pool, no-op starts, 4 frames stacked channels last
    (newest last), the minimal action set: gymnasium's AtariPreprocessing + FrameStackObservation
    on ale-py's game, with the stack axis moved last."""
    env = atari.make_game("ALE/Breakout-v5")
    raw = gymnasium.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
    ref = FrameStackObservation(AtariPreprocessing(raw, noop_max=30, frame_skip=4, screen_size=84), 4)
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert env.action_space.n == 4  # Breakout's minimal set (the full set has 18)
    obs, _ = env.reset(seed=5)
    expected, _ = ref.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(40):
        assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8 and obs.flags.c_contiguous
        np.testing.assert_array_equal(obs, np.moveaxis(expected, 0, -1))
        a = int(rng.integers(4))
        newer, *_ = env.step(a)
        expected, *_ = ref.step(a)
        np.testing.assert_array_equal(newer[..., :3], obs[..., 1:])  # the stack shifts towards channel 0
        obs = newer
    assert obs.max() > 0
    env.close()
    ref.close()


def _driver(vec):
    return vec._runner.block.drivers[0]


def test_episodic_life_terminals_and_whole_game_returns():
    """A lost life is a terminal without a reset (the game goes on: ale-py's lives count down);
    the log records nothing then, and at game over records the whole game's return and length."""
    vec = envs.make("atari:Breakout", num_envs=1, seed=1)
    vec.reset()
    ale = _driver(vec).env.unwrapped.ale
    assert ale.lives() == 5
    rng = np.random.default_rng(0)
    total, steps, lives, life_terminals = 0.0, 0, 5, 0
    while True:
        _, rewards, terminals, truncations = vec.step(rng.integers(4, size=1).astype(np.int32))
        total, steps = total + float(rewards[0]), steps + 1
        log = vec.log()
        ale = _driver(vec).env.unwrapped.ale
        if log:  # game over: the env was reset
            assert terminals[0] and log["n"] == 1 and ale.lives() == 5
            assert log["episode_return"] == total and log["episode_length"] == steps
            break
        assert bool(terminals[0]) == (ale.lives() < lives) and not truncations[0]
        life_terminals += int(terminals[0])
        lives = ale.lives()
    assert life_terminals == 4 and total > 0
    vec.close()


def test_episodic_life_off_ends_episodes_at_game_over_only():
    vec = envs.make("atari:Breakout", num_envs=1, seed=1, episodic_life=False)
    vec.reset()
    rng = np.random.default_rng(0)
    while not vec.log():
        _, _, terminals, _ = vec.step(rng.integers(4, size=1).astype(np.int32))
        assert not terminals[0] or _driver(vec).env.unwrapped.ale.lives() == 5
    vec.close()


def test_shipped_config_is_chosen_for_every_game():
    cfg = puffjax.load_config("atari:ALE/Pong-v5")
    assert cfg.env.name == "atari:ALE/Pong-v5" and cfg.policy.kind == "cnn" and cfg.train.clip_coef == 0.1
    assert cfg.env.num_envs == 8 and cfg.train.batch_size == 1024 and cfg.train.update_epochs == 4


def test_trains_and_checkpoints(shipped_config, train_run):
    cfg = shipped_config("atari:Breakout", **{"env.num_envs": 2, "train.batch_size": 128,
                                              "train.minibatch_size": 64, "train.update_epochs": 1,
                                              "train.total_timesteps": 2 * 128, "policy.hidden_size": 32})
    trainer, history = train_run(cfg)
    assert len(history) == 2 and np.isfinite(history[-1]["losses/policy_loss"])
    assert trainer.last_checkpoint  # the games pickle into the checkpoint
