"""Evaluation, videos and their bad inputs, on one tiny CartPole run (a few seconds)."""
import json
import os
import warnings

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from flax import serialization
from PIL import Image

import puffjax
from puffjax import envs
from puffjax.cli import main
from puffjax.evaluate import evaluate
from puffjax.video import gif_frame_ms, write_video

N, H = 16, 32  # CartPole: 16 environments, 32-step horizon, one 512-step batch per epoch
VIDEO_FRAMES = 12


def read_video(path: str) -> np.ndarray:
    """All frames of a video file as [T, H, W, 3] uint8."""
    with warnings.catch_warnings():  # imageio's ffmpeg child process exec()s at once
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        frames = np.asarray(iio.imread(path, index=None))
    return (frames[None] if frames.ndim == 3 else frames)[..., :3]


@pytest.fixture(scope="module")
def run(tiny_config):
    """Two epochs of CartPole with a checkpoint (and a video) after each, plus one of the
    initial parameters written before any rollout."""
    cfg = tiny_config("cartpole", **{
        "env.num_envs": N, "train.bptt_horizon": H, "train.minibatch_size": N * H,
        "train.total_timesteps": 2 * N * H, "train.checkpoint_interval": 1,
        "train.video_frames": VIDEO_FRAMES, "train.video_interval": 1})
    trainer = puffjax.Trainer(cfg, dashboard="none")
    initial = trainer.save()  # the parameters the first rollout plays with
    history = trainer.train()
    trainer.close()
    return {"trainer": trainer, "history": history, "initial": initial}


def test_eval_stats_match_the_trainers_own(run):
    """evaluate() on the initial parameters, with the trainer's seed and number of environments,
    replays the trainer's first rollout: the same episodes, so the same environment/* means.
    (Episodes are counted up to the step where the n-th ended, which is within that rollout.)"""
    first = run["history"][0]
    n = int(first["environment/n"])
    assert n >= 10
    result = evaluate(run["initial"], episodes=n, num_envs=N, seed=0)
    assert result.mean["episodes"] == n and len(result.episodes) == n
    assert result.steps <= H  # all within the first rollout
    for k in ("episode_return", "episode_length", "score", "perf"):
        assert result.mean[k] == pytest.approx(first[f"environment/{k}"], rel=1e-6), k
    # Returns summed from the step buffers agree with the environment's own log.
    assert np.mean([e["episode_return"] for e in result.episodes]) == pytest.approx(first["environment/episode_return"])
    assert all(e["episode_return"] == e["steps"] for e in result.episodes)  # +1 per step
    steps = [e["step"] for e in result.episodes]
    assert len(set(steps)) < len(steps)  # some episodes ended on the same step...
    assert all(e["score"] == e["episode_return"] for e in result.episodes)  # ...each has its own log values
    # The comparison is sensitive: another seed plays other episodes.
    other = evaluate(run["initial"], episodes=n, num_envs=N, seed=1)
    assert [e["episode_return"] for e in other.episodes] != [e["episode_return"] for e in result.episodes]


def test_eval_is_reproducible_and_deterministic_mode(run):
    ckpt = run["trainer"].run_dir  # a run directory means its latest checkpoint
    a = evaluate(ckpt, episodes=4, deterministic=True)
    b = evaluate(ckpt, env="cartpole", episodes=4, deterministic=True)
    assert a.episodes == b.episodes and a.mean == b.mean
    assert a.checkpoint == run["trainer"].last_checkpoint
    assert len(a.episodes) >= 4 and a.deterministic
    assert "mean" in str(a) and "episode_return" in a._repr_html_()


@pytest.mark.parametrize("ext", ["gif", "mp4"])
def test_eval_video_of_env0(run, tmp_path, ext):
    out = str(tmp_path / f"eval.{ext}")
    result = evaluate(run["trainer"].run_dir, episodes=1, num_envs=1, video=out, video_frames=40)
    assert result.video == out
    expected = min(result.steps + 1, 40)  # the reset frame, then one per step
    frames = read_video(out)
    assert frames.shape[1:] == (400, 600, 3)
    if ext == "mp4":
        assert len(frames) == expected
    else:  # GIF merges identical consecutive frames; the durations add up
        assert 1 < len(frames) <= expected
        assert _gif_duration_ms(out) == expected * gif_frame_ms(30)
    assert f'src="data:{"image/gif" if ext == "gif" else "video/mp4"};base64,' in result._repr_html_()


def _gif_duration_ms(path):
    with Image.open(path) as im:
        total = 0
        for i in range(im.n_frames):
            im.seek(i)
            total += im.info["duration"]
    return total


def test_write_video_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    frames = colors[rng.integers(0, 5, (7, 33, 45))]  # odd size, distinct frames, 5 colours
    write_video(str(tmp_path / "a.gif"), frames, fps=25)
    np.testing.assert_array_equal(read_video(str(tmp_path / "a.gif")), frames)  # lossless palette
    assert _gif_duration_ms(str(tmp_path / "a.gif")) == 7 * 40
    write_video(str(tmp_path / "a.mp4"), frames)
    back = read_video(str(tmp_path / "a.mp4"))
    assert back.shape == (7, 34, 46, 3)  # H.264 wants even sizes: padded
    flat = np.zeros((2, 16, 16, 3), np.uint8) + colors[:2, None, None]
    noisy = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)  # > 256 colours: quantized
    write_video(str(tmp_path / "b.gif"), np.concatenate([flat, noisy]))
    back = read_video(str(tmp_path / "b.gif"))
    assert back.shape == (4, 16, 16, 3)
    np.testing.assert_allclose(back[:2], flat, atol=8)


def test_video_writer_errors(tmp_path):
    with pytest.raises(ValueError, match=r"x.webm: unknown video extension '.webm'"):
        write_video(str(tmp_path / "x.webm"), np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames to write"):
        write_video(str(tmp_path / "e.gif"), [])
    for ext in ("gif", "mp4"):
        path = tmp_path / f"s.{ext}"
        with pytest.raises(ValueError, match=r"frame 1 is \(8, 8, 3\), the first was \(4, 4, 3\)"):
            write_video(str(path), [np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)])
        assert not path.exists()  # no partial file left behind


def test_trainer_writes_rollout_videos(run):
    trainer = run["trainer"]
    assert trainer.last_video == os.path.join(trainer.run_dir, "video.gif")
    frames = read_video(trainer.last_video)
    assert frames.shape[1:] == (400, 600, 3) and len(frames) <= VIDEO_FRAMES
    assert _gif_duration_ms(trainer.last_video) == VIDEO_FRAMES * gif_frame_ms(30)
    assert sorted(os.listdir(os.path.join(trainer.run_dir, "videos"))) == ["epoch_000001.gif"]  # not the final one


# ---------------------------------------------------------------------- bad input

def test_missing_and_corrupt_checkpoints(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.msgpack does not exist"):
        evaluate(str(tmp_path / "missing.msgpack"))
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        evaluate(str(tmp_path))  # a directory without checkpoints
    bad = tmp_path / "corrupt.msgpack"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt.msgpack: not a readable puffjax checkpoint"):
        evaluate(str(bad))
    truncated = tmp_path / "truncated.msgpack"
    truncated.write_bytes(open(run["initial"], "rb").read()[:1000])
    with pytest.raises(ValueError, match="truncated.msgpack: not a readable"):
        evaluate(str(truncated))


def _rewrite_config(src, dst, edit):
    state = serialization.msgpack_restore(open(src, "rb").read())
    config = json.loads(state["config"])
    edit(config)
    state["config"] = json.dumps(config)
    open(dst, "wb").write(serialization.msgpack_serialize(state))


def test_checkpoint_from_another_env_or_policy_shape(run, tmp_path):
    ckpt = run["trainer"].last_checkpoint
    with pytest.raises(ValueError, match=r"epoch_000002.msgpack: checkpoint was trained on 'cartpole', not 'pong'"):
        evaluate(ckpt, env="pong")
    with envs.make("memory", num_envs=2) as memory:  # an env object with other spaces
        with pytest.raises(ValueError, match=r"epoch_000002.msgpack: params.*shape.*different environment or policy"):
            evaluate(ckpt, env=memory)
    wider = str(tmp_path / "wider.msgpack")  # a config that no longer matches the parameters
    _rewrite_config(ckpt, wider, lambda c: c["policy"].update(hidden_size=32))
    with pytest.raises(ValueError, match=r"wider.msgpack: params.*has shape .*64.* in the checkpoint but .*32"):
        evaluate(wider)
    odd = str(tmp_path / "odd.msgpack")
    _rewrite_config(ckpt, odd, lambda c: c["policy"].update(kind="transformer"))
    with pytest.raises(ValueError, match="odd.msgpack: checkpoint config is not usable .policy.kind must be one of"):
        evaluate(odd)


def test_unknown_video_extension(run, tmp_path):
    with pytest.raises(ValueError, match=r"out.avi: unknown video extension '.avi'; use .gif or .mp4"):
        evaluate(run["trainer"].run_dir, video=str(tmp_path / "out.avi"))
    assert not os.path.exists(tmp_path / "out.avi")


def test_cli_eval(run, tmp_path, capsys):
    out = str(tmp_path / "cli.gif")
    assert main(["eval", "cartpole", "--checkpoint", run["trainer"].run_dir, "--episodes", "2",
                 "--video", out, "--video-frames", "5", "--deterministic"]) == 0
    text = capsys.readouterr().out
    assert "episode_return" in text and "mean" in text and out in text
    assert len(read_video(out)) <= 5
    assert main(["eval", "pong", "--checkpoint", run["trainer"].run_dir]) == 2
    assert "not 'pong'" in capsys.readouterr().err
    assert main(["eval", "cartpole", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "nope does not exist" in capsys.readouterr().err


def test_episode_lengths_use_the_envs_own_units(tiny_config, train_run):
    """Breakout logs episode_length in frames (frameskip 4): per-episode rows and their mean
    must use those units, as the trainer's environment/episode_length does."""
    trainer, _ = train_run(tiny_config("breakout", **{
        "env.num_envs": 16, "train.bptt_horizon": 16, "train.minibatch_size": 256, "train.total_timesteps": 256}))
    result = evaluate(trainer.run_dir, episodes=4, num_envs=4)
    lengths = [e["episode_length"] for e in result.episodes]
    assert result.mean["episode_length"] == pytest.approx(np.mean(lengths), rel=1e-6)
    # Frames, about four per agent step (a final frame skip can end early), not agent steps.
    assert result.mean["episode_length"] > 3.5 * result.mean["steps"]


class Uneven(gym.Env):
    """Environment i (reset with seed i) has episodes of 2 + i % 3 steps, each step rewarding
    that length: returns and lengths differ between environments whose episodes end on the same step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.length = 2 + seed % 3
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(self.length), self.t == self.length, False, {}


def _initial_checkpoint(tiny_config, env):
    trainer = puffjax.Trainer(tiny_config(env, **{"train.total_timesteps": 192}), dashboard="none")
    try:
        return trainer.save()
    finally:
        trainer.close()


def test_each_row_holds_its_own_episode(tiny_config):
    """Episodes of different lengths that end on the same step keep their own return, length and perf."""
    ckpt = _initial_checkpoint(tiny_config, "test_evaluate:Uneven")
    result = evaluate(ckpt, "test_evaluate:Uneven", episodes=13, num_envs=3)  # a factory is named again
    assert len(result.episodes) == 13 and result.steps == 12
    for e in result.episodes:
        length = 2 + e["env"] % 3
        assert (e["steps"], e["episode_length"], e["episode_return"], e["perf"]) == (length, length, length**2, length**2)
    assert [e["env"] for e in result.episodes if e["step"] == 12] == [0, 1, 2]
    assert "-: the env logged" not in result.table()
    mean_return = np.mean([e["episode_return"] for e in result.episodes])
    assert result.mean["perf"] == pytest.approx(mean_return)


def test_multi_agent_rows_are_agent_episodes(tiny_config, capsys):
    """--episodes 6 on a three-agent env: each row is one agent's episode, and the output says so."""
    ckpt = _initial_checkpoint(tiny_config, "test_pettingzoo:Trio")
    assert main(["eval", "test_pettingzoo:Trio", "--checkpoint", ckpt, "--episodes", "6"]) == 0
    out = capsys.readouterr().out
    assert "test_pettingzoo:Trio: 6 agent episodes in 3 steps" in out, out
    assert "each row is one agent's episode (6 environments of 3 agents each)" in out, out
    result = evaluate(ckpt, "test_pettingzoo:Trio", episodes=7)  # agent "b" of each env ends on step 3, "c" on 5, "a" on 6
    assert result.num_envs == 7 and result.agents_per_env == 3
    assert [(e["env"], e["agent"], e["step"]) for e in result.episodes] == [(i, 1, 3) for i in range(7)]
    assert "asked for" not in result.headline()
    result = evaluate(ckpt, "test_pettingzoo:Trio", episodes=5, num_envs=3)  # 3 episodes end on step 3, 3 more on step 5
    assert len(result.episodes) == 6 and "5 asked for, and those that ended on the same step" in result.headline()
    result = evaluate(ckpt, "test_pettingzoo:Trio", episodes=8, num_envs=4)
    assert [(e["agent"], e["step"]) for e in result.episodes] == [(1, 3)] * 4 + [(2, 5)] * 4
    assert all(e["perf"] == e["episode_return"] for e in result.episodes)
    assert "agent" in result.table().splitlines()[0]
