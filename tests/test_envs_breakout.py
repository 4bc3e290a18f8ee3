"""Breakout rules (PufferLib 3.0, see envs_c/envs/breakout.h), checked by putting
the game in a chosen state through the test hooks (env._c.set_field) and
stepping single frames."""
import math

import numpy as np
import pytest

import puffjax.envs as envs

PADDLE_Y, BALL = 312.0, 32.0
POINTS = [7, 7, 4, 4, 1, 1]


def frame_env(n=1, **options):
    env = envs.make("breakout", num_envs=n, frameskip=1, seed=0, **options)
    env.reset()
    return env


def set_state(env, i=0, **fields):
    for k, v in fields.items():
        env._c.set_field(i, k, v)


def set_bricks(env, destroyed, i=0):
    for b in range(108):
        env._c.set_field(i, "bricks", int(destroyed[b]), b)


def get(env, name, i=0):
    return env._c.get_field(i, name)


def noop(env):
    return env.step(np.zeros(env.num_envs, np.int32))


def test_observation_layout_at_reset():
    env = frame_env()
    o = env.observations[0]
    assert o.shape == (118,)
    assert o[0] == pytest.approx((288 - 31) / 576) and o[1] == pytest.approx(312 / 330)
    assert o[2] == pytest.approx((288 - 16) / 576) and o[3] == pytest.approx(135 / 330)
    assert o[4] == 0 and o[5] == 0 and o[6] == 0 and o[7] == 0
    assert o[8] == 1 and o[9] == 1 and np.all(o[10:] == 0)
    noop(env)  # the launch frame: down at pi/3.25 from the vertical, 256 px/s
    assert o[6] == pytest.approx(0.2)
    assert abs(o[4]) == pytest.approx(256 * math.sin(math.pi / 3.25) / 512, rel=1e-5)
    assert o[5] == pytest.approx(256 * math.cos(math.pi / 3.25) / 512, rel=1e-5)


@pytest.mark.parametrize("row", range(6))
def test_points_per_row_and_top_rows_set_top_speed(row):
    env = frame_env()
    col = 5
    destroyed = np.zeros(108, bool)
    destroyed[(row + 1) * 18 + col::18] = True  # clear the column below the target
    set_bricks(env, destroyed)
    brick_bottom = 50 + 12 * (row + 1)
    set_state(env, ball_x=col * 32, ball_y=brick_bottom + 2, ball_vx=0, ball_vy=-448, balls_fired=1)
    o, r, d, t = noop(env)
    assert r[0] == POINTS[row] and get(env, "score") == POINTS[row]
    assert o[0, 10 + row * 18 + col] == 1 and o[0, 7] == pytest.approx(POINTS[row] / 864)
    assert np.sum(o[0, 10:]) == np.sum(destroyed) + 1  # only that brick broke
    assert get(env, "ball_vy") == 448  # bounced
    assert get(env, "ball_speed") == (448 if row < 3 else 256)


def test_no_tunnelling_through_a_brick():
    env = frame_env()
    destroyed = np.ones(108, bool)
    destroyed[2 * 18 + 7] = False  # one brick left, row 2 (y 74..86)
    set_bricks(env, destroyed)
    # 150 px per frame: the ball jumps from y=160 to y=10, over the brick.
    set_state(env, ball_x=7 * 32, ball_y=160, ball_vx=0, ball_vy=-9000, balls_fired=1)
    o, r, d, t = noop(env)
    assert r[0] == 4 and get(env, "ball_y") == pytest.approx(86)


def hit_paddle(env, rel=0.5, speed=None):
    """Put the ball right above the paddle, coming down so that its centre
    lands at `rel` along the paddle, and run one frame."""
    px, pw = get(env, "paddle_x"), get(env, "paddle_width")
    set_state(env, ball_x=px + rel * pw - BALL / 2, ball_y=PADDLE_Y - BALL - 1, ball_vx=0, ball_vy=200,
              balls_fired=1)
    if speed is not None:
        set_state(env, ball_speed=speed)
    return noop(env)


def test_paddle_bounce_angles():
    env = frame_env()
    hit_paddle(env, 0.5)
    assert get(env, "ball_vx") == pytest.approx(0, abs=1e-3) and get(env, "ball_vy") == pytest.approx(-256)
    hit_paddle(env, 0.0)
    s = 256 * math.sin(math.pi / 4)
    assert get(env, "ball_vx") == pytest.approx(-s, rel=1e-5) and get(env, "ball_vy") == pytest.approx(-s, rel=1e-5)
    hit_paddle(env, 1.0)
    assert get(env, "ball_vx") == pytest.approx(s, rel=1e-5)
    # A corner catch (ball centre past the paddle's end) leaves flatter, not clamped to 45 degrees.
    hit_paddle(env, 1.2)
    angle = -math.pi / 4 + 1.2 * math.pi / 2
    assert get(env, "ball_vx") == pytest.approx(256 * math.sin(angle), rel=1e-4)
    assert get(env, "ball_vy") == pytest.approx(-256 * math.cos(angle), rel=1e-4)


def test_every_fourth_hit_speeds_up_capped_at_448():
    env = frame_env()
    for k in range(1, 9):
        hit_paddle(env)
        assert get(env, "hits") == k
        assert get(env, "ball_speed") == min(256 + 64 * (k // 4), 448)
    assert math.hypot(get(env, "ball_vx"), get(env, "ball_vy")) == pytest.approx(320, rel=1e-5)
    set_state(env, hits=3)
    hit_paddle(env, speed=448)
    assert get(env, "ball_speed") == 448


def test_wall_resets_on_the_paddle_hit_after_432():
    env = frame_env()
    set_bricks(env, np.ones(108, bool))
    set_state(env, score=431)
    o, r, d, t = hit_paddle(env)
    assert np.all(o[0, 10:] == 1)  # 431: no new wall
    set_state(env, score=432)
    o, r, d, t = hit_paddle(env)
    assert np.all(o[0, 10:] == 0) and get(env, "score") == 432 and r[0] == 0 and not d[0]


def test_score_cap_864_ends_the_episode():
    env = frame_env()
    destroyed = np.ones(108, bool)
    destroyed[5 * 18 + 3] = False  # one 1-point brick left
    set_bricks(env, destroyed)
    set_state(env, score=863, ball_x=3 * 32, ball_y=50 + 72 + 2, ball_vx=0, ball_vy=-256, balls_fired=1)
    o, r, d, t = noop(env)
    assert d[0] and not t[0] and r[0] == 1
    log = env.log()
    assert log["n"] == 1 and log["score"] == 864 and log["perf"] == 1.0
    # auto-reset: the returned observation is the new episode's first
    assert o[0, 7] == 0 and o[0, 8] == 1 and np.all(o[0, 10:] == 0)


def test_six_balls_per_episode():
    env = frame_env()
    for lost in range(1, 7):
        set_state(env, ball_y=330.0)  # below the paddle: lost this frame
        o, r, d, t = noop(env)
        if lost < 6:
            assert not d[0] and get(env, "spare_balls") == 5 - lost
            assert o[0, 8] == pytest.approx((5 - lost) / 5)
            assert get(env, "balls_fired") == 0  # new round, ball waits to launch
        else:
            assert d[0] and o[0, 8] == 1.0  # new episode, 5 spares again
    log = env.log()
    assert log["n"] == 1 and log["score"] == 0 and log["episode_length"] == 6


def test_back_wall_halves_the_paddle_until_the_ball_is_lost():
    env = frame_env()
    set_state(env, ball_x=100, ball_y=3, ball_vx=0, ball_vy=-448, balls_fired=1)
    o, r, d, t = noop(env)
    assert get(env, "paddle_width") == 31 and o[0, 9] == 0.5 and get(env, "ball_vy") > 0
    # the halved paddle is narrower for collisions too: a ball at 45 px along misses
    set_state(env, paddle_x=200)
    set_state(env, ball_x=200 + 45 - BALL / 2 + 16 + 1, ball_y=PADDLE_Y - BALL - 1, ball_vx=0, ball_vy=200)
    noop(env)
    assert get(env, "ball_vy") > 0  # no bounce
    set_state(env, ball_y=330.0)
    noop(env)
    assert get(env, "paddle_width") == 62 and env.observations[0, 9] == 1.0


def test_frameskip_sums_rewards_and_counts_frames():
    env = envs.make("breakout", num_envs=1, frameskip=4, seed=0)
    env.reset()
    destroyed = np.zeros(108, bool)
    destroyed[4 * 18 + 2] = destroyed[5 * 18 + 2] = True
    set_bricks(env, destroyed)
    # Up through the cleared column into row 3 (4 points).
    set_state(env, ball_x=64, ball_y=50 + 48 + 3, ball_vx=0, ball_vy=-448, balls_fired=1)
    o, r, d, t = env.step(np.zeros(1, np.int32))
    assert r[0] == 4
    assert get(env, "frames") == 4


def test_random_policy_matches_the_reference():
    """Random actions at frameskip 4: PufferLib's Breakout scores ~0.8 in
    ~556 frames per episode; ours must be close."""
    n = 1024
    env = envs.make("breakout", num_envs=n, frameskip=4, seed=123)
    env.reset()
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 3, (64, n), dtype=np.int32)
    for k in range(1500):
        env.step(acts[k % 64])
    log = env.log()
    assert log["n"] > 5000
    assert 0.65 <= log["score"] <= 0.95, log
    assert 500 <= log["episode_length"] <= 610, log
    assert log["perf"] == pytest.approx(log["score"] / 864)
    assert log["episode_return"] == pytest.approx(log["score"])
