"""Atari 2600 games (ale-py, ROMs included) with the field's standard preprocessing.

``puffjax.envs.make("atari:Breakout", num_envs=8)`` (or ``"atari:ALE/Pong-v5"``, any ale-py
gymnasium id) steps each game through:

* no-op starts: up to ``noop_max`` (30) random no-ops after each reset;
* frame skip ``frame_skip`` (4), the observation the max over the last two frames;
* 84x84 grayscale (gymnasium's ``AtariPreprocessing``, INTER_AREA resize);
* the last ``stack`` (4) frames stacked CHANNELS LAST: ``Box(0, 255, (84, 84, 4), uint8)``,
  the image layout of the CNN policies (newest frame last);
* episodic life (``episodic_life``, on): a lost life is a ``terminal`` for learning (the game
  goes on, its value is not bootstrapped across the life), while the logged ``episode_return``
  and ``episode_length`` are the whole game's, from reset to game over;
* the minimal action set (``full_action_space`` off);
* ``repeat_action_probability`` 0 (sticky actions off), as in CleanRL's Atari PPO (its
  ``NoFrameskip-v4`` envs and EnvPool's default); ``0.25`` gives ALE v5's sticky actions;
* games end after 108,000 frames (27,000 steps), ALE v5's limit.

Rewards are the game's; the trainer clips them to [-1, 1] (:mod:`puffjax.rollout`), which for
Atari's integer scores is their sign, CleanRL's ``ClipRewardEnv``.
"""
from __future__ import annotations

import numpy as np

from .gym_adapter import GymnasiumDriver

PREFIX = "atari:"
OPTIONS = ("noop_max", "frame_skip", "stack", "episodic_life", "repeat_action_probability", "full_action_space")


def game_id(name: str) -> str:
    """The gymnasium id of ``atari:GAME``: ``atari:Breakout`` -> ``ALE/Breakout-v5``; a full id
    (``atari:ALE/Pong-v5``, ``atari:PongNoFrameskip-v4``) as it is."""
    game = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not game:
        raise ValueError(f"environment {name!r}: name a game, e.g. atari:Breakout or atari:ALE/Pong-v5")
    return game if "/" in game or "-v" in game else f"ALE/{game}-v5"


def _gymnasium():
    try:
        import ale_py
        import cv2  # noqa: F401 (AtariPreprocessing's resize)
    except ImportError as e:
        raise ValueError(f"atari: environments need ale-py and opencv ({e}): pip install 'puffjax[atari]'") from None
    import gymnasium

    gymnasium.register_envs(ale_py)
    return gymnasium


class ChannelsLast:
    """Picklable observation map ``[stack, H, W]`` -> ``[H, W, stack]`` (a copy, C-contiguous)."""

    def __call__(self, obs):
        return np.ascontiguousarray(np.moveaxis(obs, 0, -1))


def make_game(game: str, noop_max: int = 30, frame_skip: int = 4, stack: int = 4,
              repeat_action_probability: float = 0.0, full_action_space: bool = False):
    """One preprocessed game (a gymnasium env, see the module docstring): ``game`` a gymnasium
    id (:func:`game_id`). Observations ``(84, 84, stack)`` uint8."""
    gymnasium = _gymnasium()
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformObservation

    try:
        env = gymnasium.make(game, frameskip=1, repeat_action_probability=repeat_action_probability,
                             full_action_space=full_action_space, render_mode="rgb_array")
    except gymnasium.error.Error as e:  # an unknown game
        raise ValueError(f"environment atari:{game}: {e}") from e
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=84,
                             terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    env = FrameStackObservation(env, stack)
    space = gymnasium.spaces.Box(0, 255, (84, 84, stack), np.uint8)
    return TransformObservation(env, ChannelsLast(), space)


class EpisodicLifeDriver(GymnasiumDriver):
    """A game over one buffer row (:class:`puffjax.envs.gym_adapter.GymnasiumDriver`) in which
    losing a life writes ``terminal`` without resetting the game; the episode log (``perf``,
    ``episode_return``, ``episode_length``) counts whole games, from reset to game over."""

    def reset(self, seed: int | None) -> None:
        super().reset(seed)
        self.lives = self.env.unwrapped.ale.lives()

    def step(self) -> None:
        lives = self.lives
        super().step()  # logs and resets at game over: then the new game's lives, never fewer
        self.lives = self.env.unwrapped.ale.lives()
        if self.lives < lives:
            self.rows.terminals[0] = True

    def get_state(self):
        return super().get_state(), self.lives

    def set_state(self, state) -> None:
        base, self.lives = state
        super().set_state(base)


def make(name: str, num_envs: int, seed: int = 0, workers: int = 0, episodic_life: bool = True, **options):
    """``num_envs`` copies of the game ``name`` (``atari:GAME``) as a
    :class:`puffjax.envs.PyVecEnv`; ``options``: :func:`make_game`'s keywords."""
    import functools

    from .python_envs import PyVecEnv

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"environment {name!r}: unknown option(s) {', '.join(unknown)}; "
                         f"options: {', '.join(OPTIONS)}")
    env_fn = functools.partial(make_game, game_id(name), **options)
    driver = EpisodicLifeDriver if episodic_life else GymnasiumDriver
    return PyVecEnv(env_fn, num_envs, seed=seed, name=name, driver=driver, workers=workers)
