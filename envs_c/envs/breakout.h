/* breakout.h - Atari-style Breakout (PufferLib 3.0 rules).
 *
 * The field is 576 x 330 pixels, y grows downwards. The paddle (62 x 8)
 * slides along the bottom; the ball is a 32 x 32 box; 6 rows x 18 columns of
 * 32 x 12 bricks start at y = 50. Physics runs at 60 frames per second and
 * one agent step is `frameskip` frames with the same action; the step's
 * reward is the sum of the frames' rewards.
 *
 * Observation (118 float32): paddle_x/576, paddle_y/330, ball_x/576,
 * ball_y/330, ball_vx/512, ball_vy/512 (velocities in pixels per second),
 * balls_fired/5, score/864, spare balls/5, paddle_width/62, then 108 brick
 * states (1 = destroyed), row by row from the top.
 * Actions: Discrete(3): 0 noop, 1 left, 2 right; or with continuous=1 one
 * float in [-1, 1], the paddle velocity as a fraction of its top speed.
 */
#ifndef PUFFJAX_BREAKOUT_H
#define PUFFJAX_BREAKOUT_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"
#include "../collision.h"

#define BREAKOUT_WIDTH 576.0f
#define BREAKOUT_HEIGHT 330.0f
#define BREAKOUT_PADDLE_WIDTH 62.0f
#define BREAKOUT_PADDLE_HEIGHT 8.0f
#define BREAKOUT_PADDLE_Y 312.0f /* 10 px above the bottom: 330 - 8 - 10 */
#define BREAKOUT_PADDLE_SPEED 620.0f /* pixels per second */
#define BREAKOUT_BALL_SIZE 32.0f
#define BREAKOUT_BALL_START_Y 135.0f /* height / 2 - 30 */
#define BREAKOUT_BRICK_WIDTH 32.0f
#define BREAKOUT_BRICK_HEIGHT 12.0f
#define BREAKOUT_BRICKS_Y 50.0f
#define BREAKOUT_ROWS 6
#define BREAKOUT_COLS 18
#define BREAKOUT_NUM_BRICKS 108
#define BREAKOUT_TICK (1.0f / 60.0f)
#define BREAKOUT_START_SPEED 256.0f
#define BREAKOUT_SPEEDUP 64.0f
#define BREAKOUT_MAX_SPEED 448.0f
#define BREAKOUT_LAUNCH_ANGLE 0.96664389f /* pi / 3.25, measured from the vertical */
#define BREAKOUT_WALL_POINTS 432 /* all 108 bricks of one wall */
#define BREAKOUT_MAX_SCORE 864   /* two walls */
#define BREAKOUT_SPARE_BALLS 5   /* 5 spares + the one in play = 6 balls */
#define BREAKOUT_OBS_SIZE 118
#define BREAKOUT_PI 3.14159265f

typedef struct Breakout {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */

    /* Options. */
    int frameskip;
    int continuous;

    /* Game state. */
    float paddle_x;     /* left edge */
    float paddle_width; /* 62, or 31 after the ball hit the back wall */
    float ball_x, ball_y;   /* top-left corner */
    float ball_vx, ball_vy; /* pixels per second */
    float ball_speed;       /* speed used at the next paddle bounce */
    int balls_fired;        /* 0 until the round's ball is launched */
    int spare_balls;        /* the episode ends when this goes below 0 */
    int hits;               /* paddle hits this round */
    int score;
    int frames;             /* frames in this episode */
    unsigned char bricks[BREAKOUT_NUM_BRICKS]; /* 1 = destroyed */

    EpisodeLog log; /* finished episodes (kept last: see env_type.h) */
} Breakout;

static inline void breakout_init(Breakout* env, const double* options) {
    env->frameskip = (int)options[0];
    env->continuous = options[1] != 0.0;
}

/* Points for a brick: rows 0-1 give 7, rows 2-3 give 4, rows 4-5 give 1. */
static inline int breakout_brick_points(int brick) {
    int row = brick / BREAKOUT_COLS;
    return 7 - 3 * (row / 2);
}

/* Write the 10 scalar observations. The 108 brick entries are kept up to
 * date whenever a brick changes, so a step does not rewrite them all. */
static inline void breakout_write_scalars(Breakout* env) {
    float* o = env->io.observations;
    o[0] = env->paddle_x / BREAKOUT_WIDTH;
    o[1] = BREAKOUT_PADDLE_Y / BREAKOUT_HEIGHT;
    o[2] = env->ball_x / BREAKOUT_WIDTH;
    o[3] = env->ball_y / BREAKOUT_HEIGHT;
    o[4] = env->ball_vx / 512.0f;
    o[5] = env->ball_vy / 512.0f;
    o[6] = (float)env->balls_fired / 5.0f;
    o[7] = (float)env->score / (float)BREAKOUT_MAX_SCORE;
    o[8] = (float)env->spare_balls / 5.0f;
    o[9] = env->paddle_width / BREAKOUT_PADDLE_WIDTH;
}

static inline void breakout_write_observation(Breakout* env) {
    breakout_write_scalars(env);
    for (int i = 0; i < BREAKOUT_NUM_BRICKS; i++) env->io.observations[10 + i] = (float)env->bricks[i];
}

/* Put back a full wall of bricks. */
static inline void breakout_restore_bricks(Breakout* env) {
    memset(env->bricks, 0, sizeof(env->bricks));
    for (int i = 0; i < BREAKOUT_NUM_BRICKS; i++) env->io.observations[10 + i] = 0.0f;
}

/* A new round (new ball): the ball waits above a centred, full-width paddle
 * at the starting speed; it launches on the next frame. */
static inline void breakout_new_round(Breakout* env) {
    env->balls_fired = 0;
    env->hits = 0;
    env->ball_speed = BREAKOUT_START_SPEED;
    env->paddle_width = BREAKOUT_PADDLE_WIDTH;
    env->paddle_x = BREAKOUT_WIDTH / 2.0f - env->paddle_width / 2.0f;
    env->ball_x = env->paddle_x + env->paddle_width / 2.0f - BREAKOUT_BALL_SIZE / 2.0f;
    env->ball_y = BREAKOUT_BALL_START_Y;
    env->ball_vx = 0.0f;
    env->ball_vy = 0.0f;
}

static inline void breakout_reset(Breakout* env) {
    env->score = 0;
    env->frames = 0;
    env->spare_balls = BREAKOUT_SPARE_BALLS;
    memset(env->bricks, 0, sizeof(env->bricks));
    breakout_new_round(env);
    breakout_write_observation(env);
}

/* The ball breaks a brick: it scores, and a brick in the top 3 rows makes
 * the next paddle bounce use the top speed. */
static inline void breakout_destroy_brick(Breakout* env, int brick) {
    int points = breakout_brick_points(brick);
    env->bricks[brick] = 1;
    env->io.observations[10 + brick] = 1.0f;
    env->score += points;
    *env->io.reward += (float)points;
    if (brick / BREAKOUT_COLS < 3) env->ball_speed = BREAKOUT_MAX_SPEED;
}

/* The ball lands on the paddle's top face. */
static inline void breakout_paddle_bounce(Breakout* env) {
    /* rel: where the ball's centre is along the paddle, 0 = left end,
     * 1 = right end; the bounce angle from the vertical is -pi/4 + rel*pi/2.
     * A ball caught by a paddle corner has its centre past the end (rel < 0
     * or > 1) and leaves at a flatter angle, as in PufferLib: not clamped. */
    float rel = (env->ball_x + BREAKOUT_BALL_SIZE / 2.0f - env->paddle_x) / env->paddle_width;
    float angle = -BREAKOUT_PI / 4.0f + rel * (BREAKOUT_PI / 2.0f);
    env->ball_vx = sinf(angle) * env->ball_speed;
    env->ball_vy = -cosf(angle) * env->ball_speed;
    /* Every 4th hit speeds the ball up by 64 px/s, up to 448. */
    env->hits += 1;
    if (env->hits % 4 == 0) {
        env->ball_speed += BREAKOUT_SPEEDUP;
        if (env->ball_speed > BREAKOUT_MAX_SPEED) env->ball_speed = BREAKOUT_MAX_SPEED;
    }
    /* After the first wall is cleared (score exactly 432) the next paddle
     * hit brings a fresh wall. */
    if (env->score == BREAKOUT_WALL_POINTS) breakout_restore_bricks(env);
}

enum { BREAKOUT_HIT_NONE, BREAKOUT_HIT_BRICK, BREAKOUT_HIT_SIDE_WALL, BREAKOUT_HIT_BACK_WALL,
       BREAKOUT_HIT_PADDLE };

/* Move the ball through one frame. We look for the first thing its path
 * touches (bricks, then walls, then the paddle win ties); if there is one
 * the ball stops there and bounces, and the rest of that frame's motion is
 * dropped. */
static inline void breakout_move_ball(Breakout* env) {
    const float size = BREAKOUT_BALL_SIZE;
    float x = env->ball_x, y = env->ball_y;
    float dx = env->ball_vx * BREAKOUT_TICK, dy = env->ball_vy * BREAKOUT_TICK;
    float best_t = 2.0f;
    int hit = BREAKOUT_HIT_NONE, side = COLLISION_SIDE_Y, brick_hit = -1;

    /* 1. Bricks: only those under the box the ball sweeps this frame. */
    float top = dy < 0.0f ? y + dy : y, bottom = (dy > 0.0f ? y + dy : y) + size;
    float bricks_bottom = BREAKOUT_BRICKS_Y + BREAKOUT_ROWS * BREAKOUT_BRICK_HEIGHT;
    if (bottom > BREAKOUT_BRICKS_Y && top < bricks_bottom) {
        float left = dx < 0.0f ? x + dx : x, right = (dx > 0.0f ? x + dx : x) + size;
        int row0 = (int)((fmaxf(top, BREAKOUT_BRICKS_Y) - BREAKOUT_BRICKS_Y) / BREAKOUT_BRICK_HEIGHT);
        int row1 = (int)((fminf(bottom, bricks_bottom) - BREAKOUT_BRICKS_Y) / BREAKOUT_BRICK_HEIGHT);
        int col0 = (int)(fmaxf(left, 0.0f) / BREAKOUT_BRICK_WIDTH);
        int col1 = (int)(fminf(fmaxf(right, 0.0f), BREAKOUT_WIDTH) / BREAKOUT_BRICK_WIDTH);
        if (row1 > BREAKOUT_ROWS - 1) row1 = BREAKOUT_ROWS - 1;
        if (col1 > BREAKOUT_COLS - 1) col1 = BREAKOUT_COLS - 1;
        for (int row = row0; row <= row1; row++) {
            for (int col = col0; col <= col1; col++) {
                int brick = row * BREAKOUT_COLS + col;
                float t;
                int s;
                if (env->bricks[brick]) continue;
                if (collide_boxes(x, y, size, size, dx, dy, col * BREAKOUT_BRICK_WIDTH,
                                  BREAKOUT_BRICKS_Y + row * BREAKOUT_BRICK_HEIGHT, BREAKOUT_BRICK_WIDTH,
                                  BREAKOUT_BRICK_HEIGHT, &t, &s) &&
                    t < best_t) {
                    best_t = t;
                    side = s;
                    brick_hit = brick;
                    hit = BREAKOUT_HIT_BRICK;
                }
            }
        }
    }

    /* 2. Walls: left (x = 0), right (x = 576) and the back wall (y = 0). */
    if (dx < 0.0f && x + dx < 0.0f) {
        float t = fmaxf(x / -dx, 0.0f);
        if (t < best_t) { best_t = t; side = COLLISION_SIDE_X; hit = BREAKOUT_HIT_SIDE_WALL; }
    }
    if (dx > 0.0f && x + size + dx > BREAKOUT_WIDTH) {
        float t = fmaxf((BREAKOUT_WIDTH - size - x) / dx, 0.0f);
        if (t < best_t) { best_t = t; side = COLLISION_SIDE_X; hit = BREAKOUT_HIT_SIDE_WALL; }
    }
    if (dy < 0.0f && y + dy < 0.0f) {
        float t = fmaxf(y / -dy, 0.0f);
        if (t < best_t) { best_t = t; side = COLLISION_SIDE_Y; hit = BREAKOUT_HIT_BACK_WALL; }
    }

    /* 3. The paddle's top face, only for a ball coming down onto it. */
    if (dy > 0.0f && y + size <= BREAKOUT_PADDLE_Y && y + size + dy >= BREAKOUT_PADDLE_Y) {
        float t = (BREAKOUT_PADDLE_Y - (y + size)) / dy;
        float x_at_t = x + dx * t;
        if (x_at_t + size > env->paddle_x && x_at_t < env->paddle_x + env->paddle_width &&
            t < best_t) {
            best_t = t;
            hit = BREAKOUT_HIT_PADDLE;
        }
    }

    if (hit == BREAKOUT_HIT_NONE) {
        env->ball_x = x + dx;
        env->ball_y = y + dy;
        return;
    }
    env->ball_x = x + dx * best_t;
    env->ball_y = y + dy * best_t;
    if (hit == BREAKOUT_HIT_PADDLE) {
        breakout_paddle_bounce(env);
        return;
    }
    if (side == COLLISION_SIDE_X) env->ball_vx = -env->ball_vx;
    else env->ball_vy = -env->ball_vy;
    if (hit == BREAKOUT_HIT_BRICK) breakout_destroy_brick(env, brick_hit);
    /* Hitting the back wall halves the paddle until the ball is lost. */
    if (hit == BREAKOUT_HIT_BACK_WALL) env->paddle_width = BREAKOUT_PADDLE_WIDTH / 2.0f;
}

/* Run one frame. `move` is the paddle velocity in [-1, 1]. Returns 1 when
 * the episode is over. */
static inline int breakout_frame(Breakout* env, float move) {
    env->frames += 1;
    if (!env->balls_fired) {
        /* The round's ball launches by itself, downwards at pi/3.25 from the
         * vertical, randomly to the left or right; the paddle does not move
         * on the launch frame. */
        env->balls_fired = 1;
        env->ball_vx = sinf(BREAKOUT_LAUNCH_ANGLE) * env->ball_speed;
        env->ball_vy = cosf(BREAKOUT_LAUNCH_ANGLE) * env->ball_speed;
        if (rng_next(&env->io.rng) & 1) env->ball_vx = -env->ball_vx;
    } else {
        /* The paddle moves at up to 620 px/s and stays inside the field. */
        env->paddle_x += move * BREAKOUT_PADDLE_SPEED * BREAKOUT_TICK;
        if (env->paddle_x < 0.0f) env->paddle_x = 0.0f;
        if (env->paddle_x > BREAKOUT_WIDTH - env->paddle_width)
            env->paddle_x = BREAKOUT_WIDTH - env->paddle_width;
    }
    breakout_move_ball(env);

    /* A ball is lost once its top edge is below the paddle's bottom edge. */
    if (env->ball_y >= BREAKOUT_PADDLE_Y + BREAKOUT_PADDLE_HEIGHT) {
        env->spare_balls -= 1;
        breakout_new_round(env);
    }
    /* The episode ends when the 6th ball is lost, or at the maximum score. */
    return env->spare_balls < 0 || env->score >= BREAKOUT_MAX_SCORE;
}

static inline void breakout_step(Breakout* env) {
    float move;
    if (env->continuous) {
        /* Continuous actions are clipped to [-1, 1] (NaN is rejected by the
         * vector layer before stepping). */
        move = *env->io.action_continuous;
        if (isnan(move)) move = 0.0f;
        if (move < -1.0f) move = -1.0f;
        if (move > 1.0f) move = 1.0f;
    } else {
        int a = *env->io.action; /* 0 noop, 1 left, 2 right */
        move = a == 1 ? -1.0f : (a == 2 ? 1.0f : 0.0f);
    }
    *env->io.reward = 0.0f;
    *env->io.terminal = 0;
    *env->io.truncation = 0;
    for (int i = 0; i < env->frameskip; i++) {
        if (breakout_frame(env, move)) {
            /* Record the episode, then start the next one: the observation
             * we return is the new episode's first. perf = score / 864;
             * episode_length in frames. */
            episode_log_add(&env->log, (float)env->score / (float)BREAKOUT_MAX_SCORE, (float)env->score,
                            (float)env->score /* reward = points */, (float)env->frames);
            *env->io.terminal = 1;
            breakout_reset(env);
            return;
        }
    }
    breakout_write_scalars(env);
}

static inline void breakout_render(const Breakout* env, unsigned char* rgb) {
    static const Color row_colors[BREAKOUT_ROWS] = {
        {204, 34, 34}, {255, 136, 0}, {255, 255, 0}, {0, 255, 0}, {0, 204, 255}, {68, 68, 255}};
    Canvas c = {rgb, (int)BREAKOUT_WIDTH, (int)BREAKOUT_HEIGHT};
    clear_canvas(&c, (Color){6, 24, 24});
    for (int i = 0; i < BREAKOUT_NUM_BRICKS; i++) {
        if (env->bricks[i]) continue;
        int row = i / BREAKOUT_COLS, col = i % BREAKOUT_COLS;
        /* 1 px gaps so that bricks are told apart */
        draw_rect(&c, col * BREAKOUT_BRICK_WIDTH + 1, BREAKOUT_BRICKS_Y + row * BREAKOUT_BRICK_HEIGHT + 1,
                  BREAKOUT_BRICK_WIDTH - 2, BREAKOUT_BRICK_HEIGHT - 2, row_colors[row]);
    }
    draw_rect(&c, env->paddle_x, BREAKOUT_PADDLE_Y, env->paddle_width, BREAKOUT_PADDLE_HEIGHT,
              (Color){0, 255, 255});
    draw_rect(&c, env->ball_x, env->ball_y, BREAKOUT_BALL_SIZE, BREAKOUT_BALL_SIZE,
              (Color){255, 255, 255});
    /* Spare balls as small squares in the top-right corner. */
    for (int i = 0; i < env->spare_balls && i < 10; i++)
        draw_rect(&c, BREAKOUT_WIDTH - 12.0f * (i + 1), 4, 8, 8, (Color){255, 255, 255});
}

/* ---- For the vector layer (see env_type.h) ---- */

/* Every observation is in [0, 1], but the ball velocity is in [-1, 1]. */
static EnvShape breakout_shape(const double* options) {
    int continuous = options[1] != 0.0;
    return (EnvShape){
        .obs_dims = {BREAKOUT_OBS_SIZE},
        .obs_low = 0.0f,
        .obs_high = 1.0f,
        .obs_ranges = {{4, 2, -1.0f, 1.0f}}, /* elements 4 and 5: the ball velocity */
        .action_n = continuous ? 0 : 3,
        .action_dim = 1, /* continuous: one float */
        .render_width = (int)BREAKOUT_WIDTH,
        .render_height = (int)BREAKOUT_HEIGHT,
    };
}

/* A restored state (see env_type.h): the ball within a ball's size of the
 * field (its position becomes brick row and column numbers) at no more than
 * the top speed, the paddle inside the field, counts in their ranges. */
static const char* breakout_check_state(const Breakout* env) {
    ENV_CHECK(env, paddle_width, BREAKOUT_PADDLE_WIDTH / 2.0f, BREAKOUT_PADDLE_WIDTH);
    ENV_CHECK(env, paddle_x, 0.0f, BREAKOUT_WIDTH - env->paddle_width);
    ENV_CHECK(env, ball_x, -BREAKOUT_BALL_SIZE, BREAKOUT_WIDTH);
    ENV_CHECK(env, ball_y, -BREAKOUT_BALL_SIZE, BREAKOUT_HEIGHT);
    ENV_CHECK(env, ball_vx, -BREAKOUT_MAX_SPEED, BREAKOUT_MAX_SPEED);
    ENV_CHECK(env, ball_vy, -BREAKOUT_MAX_SPEED, BREAKOUT_MAX_SPEED);
    ENV_CHECK(env, ball_speed, 0.0f, BREAKOUT_MAX_SPEED);
    ENV_CHECK(env, balls_fired, 0, 1);
    ENV_CHECK(env, spare_balls, 0, BREAKOUT_SPARE_BALLS);
    ENV_CHECK(env, hits, 0, ENV_MAX_COUNT);
    ENV_CHECK(env, score, 0, BREAKOUT_MAX_SCORE);
    ENV_CHECK(env, frames, 0, ENV_MAX_COUNT);
    for (int i = 0; i < BREAKOUT_NUM_BRICKS; i++) ENV_CHECK(env, bricks[i], 0, 1);
    return NULL;
}

static const EnvOption breakout_options[] = {
    {"frameskip", 4, 1, 1000, 1, "frames per agent step (same action, rewards summed)"},
    {"continuous", 0, 0, 1, 1, "1: Box(-1, 1, (1,)) paddle velocity instead of Discrete(3)"},
};
static const EnvField breakout_fields[] = {
    {"paddle_x", offsetof(Breakout, paddle_x), FIELD_FLOAT, 1},
    {"paddle_width", offsetof(Breakout, paddle_width), FIELD_FLOAT, 1},
    {"ball_x", offsetof(Breakout, ball_x), FIELD_FLOAT, 1},
    {"ball_y", offsetof(Breakout, ball_y), FIELD_FLOAT, 1},
    {"ball_vx", offsetof(Breakout, ball_vx), FIELD_FLOAT, 1},
    {"ball_vy", offsetof(Breakout, ball_vy), FIELD_FLOAT, 1},
    {"ball_speed", offsetof(Breakout, ball_speed), FIELD_FLOAT, 1},
    {"balls_fired", offsetof(Breakout, balls_fired), FIELD_INT, 1},
    {"spare_balls", offsetof(Breakout, spare_balls), FIELD_INT, 1},
    {"hits", offsetof(Breakout, hits), FIELD_INT, 1},
    {"score", offsetof(Breakout, score), FIELD_INT, 1},
    {"frames", offsetof(Breakout, frames), FIELD_INT, 1},
    {"bricks", offsetof(Breakout, bricks), FIELD_BYTES, BREAKOUT_NUM_BRICKS},
};

PUFFJAX_ENV(Breakout, breakout)

#endif
