/* pong.h - Pong against a scripted opponent.
 *
 * The field is 512 x 384 pixels, y grows downwards. The agent's paddle is on
 * the right, the opponent's on the left; paddles are 8 x 64, the ball 8 x 8.
 * The opponent tracks the ball's height at a limited speed, so steep shots
 * beat it. Physics at 60 frames per second; one agent step is `frameskip`
 * frames with the same action, rewards summed.
 *
 * Observation (8 float32): agent paddle centre y / 384, opponent paddle
 * centre y / 384, ball centre x / 512, ball centre y / 384, ball vx / 600,
 * ball vy / 600 (pixels per second), agent points / 21, opponent points / 21.
 * Actions: Discrete(3): 0 stay, 1 up, 2 down.
 * Rewards: +1 per point won, -1 per point lost, +0.1 each time the agent
 * returns the ball. The episode ends when either side reaches 21 points.
 */
#ifndef PUFFJAX_PONG_H
#define PUFFJAX_PONG_H

#include <math.h>
#include <stddef.h>

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"
#include "../collision.h"

#define PONG_WIDTH 512.0f
#define PONG_HEIGHT 384.0f
#define PONG_PADDLE_WIDTH 8.0f
#define PONG_PADDLE_HEIGHT 64.0f
#define PONG_AGENT_X 488.0f   /* left edge of the agent's (right) paddle */
#define PONG_OPPONENT_X 16.0f /* left edge of the opponent's (left) paddle */
#define PONG_BALL_SIZE 8.0f
#define PONG_AGENT_SPEED 420.0f    /* pixels per second */
#define PONG_OPPONENT_SPEED 240.0f
#define PONG_SERVE_SPEED 300.0f
#define PONG_SPEEDUP 16.0f /* per return */
#define PONG_MAX_SPEED 600.0f
#define PONG_MAX_BOUNCE 1.04719755f /* pi / 3 */
#define PONG_SERVE_ANGLE 0.52359878f /* pi / 6 */
#define PONG_WIN_POINTS 21
#define PONG_TICK (1.0f / 60.0f)
#define PONG_RETURN_REWARD 0.1f

typedef struct Pong {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */
    int frameskip;

    float agent_y, opponent_y; /* top edges of the paddles */
    float ball_x, ball_y;      /* top-left corner of the ball */
    float ball_vx, ball_vy;    /* pixels per second */
    float ball_speed;
    int agent_points, opponent_points;
    int steps;
    float episode_return;

    EpisodeLog log; /* finished episodes (kept last: see env_type.h) */
} Pong;

static inline void pong_init(Pong* env, const double* options) { env->frameskip = (int)options[0]; }

static inline void pong_write_observation(Pong* env) {
    float* o = env->io.observations;
    o[0] = (env->agent_y + PONG_PADDLE_HEIGHT / 2.0f) / PONG_HEIGHT;
    o[1] = (env->opponent_y + PONG_PADDLE_HEIGHT / 2.0f) / PONG_HEIGHT;
    /* The ball's centre can be just outside the field while a point ends;
     * the observation stays in [0, 1]. */
    o[2] = fminf(fmaxf((env->ball_x + PONG_BALL_SIZE / 2.0f) / PONG_WIDTH, 0.0f), 1.0f);
    o[3] = fminf(fmaxf((env->ball_y + PONG_BALL_SIZE / 2.0f) / PONG_HEIGHT, 0.0f), 1.0f);
    o[4] = env->ball_vx / PONG_MAX_SPEED;
    o[5] = env->ball_vy / PONG_MAX_SPEED;
    o[6] = (float)env->agent_points / (float)PONG_WIN_POINTS;
    o[7] = (float)env->opponent_points / (float)PONG_WIN_POINTS;
}

/* Serve from the centre at a random angle within pi/6 of the horizontal,
 * towards a random side. */
static inline void pong_serve(Pong* env) {
    float angle = rng_uniform(&env->io.rng, -PONG_SERVE_ANGLE, PONG_SERVE_ANGLE);
    float direction = (rng_next(&env->io.rng) & 1) ? 1.0f : -1.0f;
    env->ball_speed = PONG_SERVE_SPEED;
    env->ball_x = PONG_WIDTH / 2.0f - PONG_BALL_SIZE / 2.0f;
    env->ball_y = PONG_HEIGHT / 2.0f - PONG_BALL_SIZE / 2.0f;
    env->ball_vx = direction * cosf(angle) * env->ball_speed;
    env->ball_vy = sinf(angle) * env->ball_speed;
}

static inline void pong_reset(Pong* env) {
    env->agent_y = PONG_HEIGHT / 2.0f - PONG_PADDLE_HEIGHT / 2.0f;
    env->opponent_y = env->agent_y;
    env->agent_points = 0;
    env->opponent_points = 0;
    env->steps = 0;
    env->episode_return = 0.0f;
    pong_serve(env);
    pong_write_observation(env);
}

static inline float pong_clamp(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* A ball hitting a paddle's front face leaves at an angle set by where it
 * hit: up to pi/3 from the horizontal at the paddle's ends, and 16 px/s
 * faster (up to 600). `away` is +1 to send it right, -1 left. */
static inline void pong_paddle_bounce(Pong* env, float paddle_y, float away) {
    float offset = (env->ball_y + PONG_BALL_SIZE / 2.0f) - (paddle_y + PONG_PADDLE_HEIGHT / 2.0f);
    float rel = pong_clamp(offset / ((PONG_PADDLE_HEIGHT + PONG_BALL_SIZE) / 2.0f), -1.0f, 1.0f);
    float angle = rel * PONG_MAX_BOUNCE;
    env->ball_speed = fminf(env->ball_speed + PONG_SPEEDUP, PONG_MAX_SPEED);
    env->ball_vx = away * cosf(angle) * env->ball_speed;
    env->ball_vy = sinf(angle) * env->ball_speed;
}

enum { PONG_HIT_NONE, PONG_HIT_WALL, PONG_HIT_AGENT, PONG_HIT_OPPONENT };

/* One frame. Returns 1 when the episode is over. */
static inline int pong_frame(Pong* env, int action) {
    /* Move the agent's paddle (1 up, 2 down), inside the field. */
    float move = action == 1 ? -1.0f : (action == 2 ? 1.0f : 0.0f);
    env->agent_y = pong_clamp(env->agent_y + move * PONG_AGENT_SPEED * PONG_TICK, 0.0f,
                              PONG_HEIGHT - PONG_PADDLE_HEIGHT);
    /* The opponent moves its centre towards the ball's centre, at most
     * 240 px/s. */
    float target = env->ball_y + PONG_BALL_SIZE / 2.0f - PONG_PADDLE_HEIGHT / 2.0f;
    float max_step = PONG_OPPONENT_SPEED * PONG_TICK;
    env->opponent_y = pong_clamp(env->opponent_y + pong_clamp(target - env->opponent_y, -max_step, max_step),
                                 0.0f, PONG_HEIGHT - PONG_PADDLE_HEIGHT);

    /* Move the ball with swept collisions: the first thing it touches this
     * frame stops it there and makes it bounce. */
    float x = env->ball_x, y = env->ball_y;
    float dx = env->ball_vx * PONG_TICK, dy = env->ball_vy * PONG_TICK;
    float best_t = 2.0f, t;
    int hit = PONG_HIT_NONE, side = COLLISION_SIDE_Y, s;
    if (dy < 0.0f && y + dy < 0.0f) { /* top wall */
        best_t = fmaxf(y / -dy, 0.0f);
        hit = PONG_HIT_WALL;
    }
    if (dy > 0.0f && y + PONG_BALL_SIZE + dy > PONG_HEIGHT) { /* bottom wall */
        best_t = fmaxf((PONG_HEIGHT - PONG_BALL_SIZE - y) / dy, 0.0f);
        hit = PONG_HIT_WALL;
    }
    if (collide_boxes(x, y, PONG_BALL_SIZE, PONG_BALL_SIZE, dx, dy, PONG_AGENT_X, env->agent_y,
                      PONG_PADDLE_WIDTH, PONG_PADDLE_HEIGHT, &t, &s) && t < best_t) {
        best_t = t;
        side = s;
        hit = PONG_HIT_AGENT;
    }
    if (collide_boxes(x, y, PONG_BALL_SIZE, PONG_BALL_SIZE, dx, dy, PONG_OPPONENT_X, env->opponent_y,
                      PONG_PADDLE_WIDTH, PONG_PADDLE_HEIGHT, &t, &s) && t < best_t) {
        best_t = t;
        side = s;
        hit = PONG_HIT_OPPONENT;
    }
    if (hit == PONG_HIT_NONE) {
        env->ball_x = x + dx;
        env->ball_y = y + dy;
    } else {
        env->ball_x = x + dx * best_t;
        env->ball_y = y + dy * best_t;
        if (hit == PONG_HIT_WALL || side == COLLISION_SIDE_Y) {
            /* Walls and the paddles' short ends just reflect vertically. */
            env->ball_vy = -env->ball_vy;
        } else if (hit == PONG_HIT_AGENT) {
            pong_paddle_bounce(env, env->agent_y, -1.0f);
            *env->io.reward += PONG_RETURN_REWARD; /* a return */
            env->episode_return += PONG_RETURN_REWARD;
        } else {
            pong_paddle_bounce(env, env->opponent_y, 1.0f);
        }
    }

    /* A point ends when the ball leaves the field on the left or right. */
    if (env->ball_x + PONG_BALL_SIZE < 0.0f) {
        env->agent_points += 1;
        *env->io.reward += 1.0f;
        env->episode_return += 1.0f;
        pong_serve(env);
    } else if (env->ball_x > PONG_WIDTH) {
        env->opponent_points += 1;
        *env->io.reward -= 1.0f;
        env->episode_return -= 1.0f;
        pong_serve(env);
    }
    return env->agent_points >= PONG_WIN_POINTS || env->opponent_points >= PONG_WIN_POINTS;
}

static inline void pong_step(Pong* env) {
    int action = *env->io.action;
    *env->io.reward = 0.0f;
    *env->io.terminal = 0;
    *env->io.truncation = 0;
    env->steps += 1;
    for (int i = 0; i < env->frameskip; i++) {
        if (pong_frame(env, action)) {
            /* perf = points won / points played; score = points won;
             * episode_length in agent steps. */
            int played = env->agent_points + env->opponent_points;
            episode_log_add(&env->log, (float)env->agent_points / (float)played, (float)env->agent_points,
                            env->episode_return, (float)env->steps);
            *env->io.terminal = 1;
            pong_reset(env);
            return;
        }
    }
    pong_write_observation(env);
}

static inline void pong_render(const Pong* env, unsigned char* rgb) {
    Canvas c = {rgb, (int)PONG_WIDTH, (int)PONG_HEIGHT};
    clear_canvas(&c, (Color){6, 24, 24});
    for (int y = 0; y < (int)PONG_HEIGHT; y += 16) /* centre line */
        draw_rect(&c, PONG_WIDTH / 2.0f - 1.0f, (float)y, 2, 8, (Color){80, 80, 80});
    draw_rect(&c, PONG_OPPONENT_X, env->opponent_y, PONG_PADDLE_WIDTH, PONG_PADDLE_HEIGHT,
              (Color){255, 80, 80});
    draw_rect(&c, PONG_AGENT_X, env->agent_y, PONG_PADDLE_WIDTH, PONG_PADDLE_HEIGHT, (Color){0, 255, 255});
    draw_rect(&c, env->ball_x, env->ball_y, PONG_BALL_SIZE, PONG_BALL_SIZE, (Color){255, 255, 255});
    /* Points as tally marks along the top. */
    for (int i = 0; i < env->opponent_points && i < 21; i++)
        draw_rect(&c, 8.0f + 10.0f * i, 4, 6, 6, (Color){255, 80, 80});
    for (int i = 0; i < env->agent_points && i < 21; i++)
        draw_rect(&c, PONG_WIDTH - 14.0f - 10.0f * i, 4, 6, 6, (Color){0, 255, 255});
}

/* ---- For the vector layer (see env_type.h) ---- */

/* Every observation is in [0, 1], but the ball velocity is in [-1, 1]. */
static EnvShape pong_shape(const double* options) {
    (void)options;
    return (EnvShape){
        .obs_dims = {8},
        .obs_low = 0.0f,
        .obs_high = 1.0f,
        .obs_ranges = {{4, 2, -1.0f, 1.0f}}, /* elements 4 and 5: the ball velocity */
        .action_n = 3,
        .render_width = (int)PONG_WIDTH,
        .render_height = (int)PONG_HEIGHT,
    };
}

/* A restored state (see env_type.h): paddles inside the field, the ball
 * within a ball's size of it at no more than the top speed, points below
 * the winning score. */
static const char* pong_check_state(const Pong* env) {
    ENV_CHECK(env, agent_y, 0.0f, PONG_HEIGHT - PONG_PADDLE_HEIGHT);
    ENV_CHECK(env, opponent_y, 0.0f, PONG_HEIGHT - PONG_PADDLE_HEIGHT);
    ENV_CHECK(env, ball_x, -PONG_BALL_SIZE, PONG_WIDTH);
    ENV_CHECK(env, ball_y, -PONG_BALL_SIZE, PONG_HEIGHT);
    ENV_CHECK(env, ball_vx, -PONG_MAX_SPEED, PONG_MAX_SPEED);
    ENV_CHECK(env, ball_vy, -PONG_MAX_SPEED, PONG_MAX_SPEED);
    ENV_CHECK(env, ball_speed, 0.0f, PONG_MAX_SPEED);
    ENV_CHECK(env, agent_points, 0, PONG_WIN_POINTS - 1);
    ENV_CHECK(env, opponent_points, 0, PONG_WIN_POINTS - 1);
    ENV_CHECK(env, steps, 0, ENV_MAX_COUNT);
    ENV_CHECK_FINITE(env, episode_return);
    return NULL;
}

static const EnvOption pong_options[] = {
    {"frameskip", 4, 1, 1000, 1, "frames per agent step (same action, rewards summed)"},
};
static const EnvField pong_fields[] = {
    {"agent_y", offsetof(Pong, agent_y), FIELD_FLOAT, 1},
    {"opponent_y", offsetof(Pong, opponent_y), FIELD_FLOAT, 1},
    {"ball_x", offsetof(Pong, ball_x), FIELD_FLOAT, 1},
    {"ball_y", offsetof(Pong, ball_y), FIELD_FLOAT, 1},
    {"ball_vx", offsetof(Pong, ball_vx), FIELD_FLOAT, 1},
    {"ball_vy", offsetof(Pong, ball_vy), FIELD_FLOAT, 1},
    {"agent_points", offsetof(Pong, agent_points), FIELD_INT, 1},
    {"opponent_points", offsetof(Pong, opponent_points), FIELD_INT, 1},
};

PUFFJAX_ENV(Pong, pong)

#endif
