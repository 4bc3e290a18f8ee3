/* cartpole.h - the classic cart-pole balancing task (Barto, Sutton and
 * Anderson 1983), with the same dynamics and constants as gymnasium's
 * CartPole-v1.
 *
 * Observation (4 float32): cart position, cart velocity, pole angle
 * (radians), pole angular velocity. Actions: Discrete(2): 0 push left,
 * 1 push right. Reward +1 every step, the last one included.
 * Terminal when |position| > 2.4 or |angle| > 12 degrees. An episode that
 * reaches max_steps (500) steps is cut short: that is a truncation
 * (reported in the truncations buffer), not a terminal.
 */
#ifndef PUFFJAX_CARTPOLE_H
#define PUFFJAX_CARTPOLE_H

#include <float.h>
#include <math.h>
#include <stddef.h>

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"

#define CARTPOLE_GRAVITY 9.8
#define CARTPOLE_CART_MASS 1.0
#define CARTPOLE_POLE_MASS 0.1
#define CARTPOLE_HALF_LENGTH 0.5 /* half the pole's length */
#define CARTPOLE_FORCE 10.0
#define CARTPOLE_DT 0.02 /* seconds per step (explicit Euler) */
#define CARTPOLE_X_LIMIT 2.4
#define CARTPOLE_ANGLE_LIMIT (12.0 * 2.0 * 3.14159265358979323846 / 360.0)
#define CARTPOLE_RENDER_WIDTH 600
#define CARTPOLE_RENDER_HEIGHT 400

typedef struct CartPole {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */
    int max_steps;

    double x, x_dot, theta, theta_dot;
    int steps;

    EpisodeLog log; /* finished episodes (kept last: see env_type.h) */
} CartPole;

static inline void cartpole_init(CartPole* env, const double* options) { env->max_steps = (int)options[0]; }

static inline void cartpole_write_observation(CartPole* env) {
    env->io.observations[0] = (float)env->x;
    env->io.observations[1] = (float)env->x_dot;
    env->io.observations[2] = (float)env->theta;
    env->io.observations[3] = (float)env->theta_dot;
}

/* Every state variable starts uniform in [-0.05, 0.05]. */
static inline void cartpole_reset(CartPole* env) {
    env->x = rng_uniform(&env->io.rng, -0.05f, 0.05f);
    env->x_dot = rng_uniform(&env->io.rng, -0.05f, 0.05f);
    env->theta = rng_uniform(&env->io.rng, -0.05f, 0.05f);
    env->theta_dot = rng_uniform(&env->io.rng, -0.05f, 0.05f);
    env->steps = 0;
    cartpole_write_observation(env);
}

static inline void cartpole_step(CartPole* env) {
    const double total_mass = CARTPOLE_CART_MASS + CARTPOLE_POLE_MASS;
    const double pole_mass_length = CARTPOLE_POLE_MASS * CARTPOLE_HALF_LENGTH;
    double force = *env->io.action == 1 ? CARTPOLE_FORCE : -CARTPOLE_FORCE;
    double cos_t = cos(env->theta), sin_t = sin(env->theta);

    /* Equations of motion of the pole and cart (see Florian 2007). */
    double temp = (force + pole_mass_length * env->theta_dot * env->theta_dot * sin_t) / total_mass;
    double theta_acc = (CARTPOLE_GRAVITY * sin_t - cos_t * temp) /
                       (CARTPOLE_HALF_LENGTH * (4.0 / 3.0 - CARTPOLE_POLE_MASS * cos_t * cos_t / total_mass));
    double x_acc = temp - pole_mass_length * theta_acc * cos_t / total_mass;

    /* Explicit Euler, as in gymnasium: positions use the old velocities. */
    env->x += CARTPOLE_DT * env->x_dot;
    env->x_dot += CARTPOLE_DT * x_acc;
    env->theta += CARTPOLE_DT * env->theta_dot;
    env->theta_dot += CARTPOLE_DT * theta_acc;
    env->steps += 1;

    int failed = env->x < -CARTPOLE_X_LIMIT || env->x > CARTPOLE_X_LIMIT ||
                 env->theta < -CARTPOLE_ANGLE_LIMIT || env->theta > CARTPOLE_ANGLE_LIMIT;
    int out_of_time = !failed && env->steps >= env->max_steps;
    *env->io.reward = 1.0f;
    *env->io.terminal = (unsigned char)failed;
    *env->io.truncation = (unsigned char)out_of_time;
    if (failed || out_of_time) {
        /* perf = episode length / max_steps; the return is the length (+1 per step) */
        episode_log_add(&env->log, (float)env->steps / (float)env->max_steps, (float)env->steps,
                        (float)env->steps, (float)env->steps);
        cartpole_reset(env);
        return;
    }
    cartpole_write_observation(env);
}

static inline void cartpole_render(const CartPole* env, unsigned char* rgb) {
    Canvas c = {rgb, CARTPOLE_RENDER_WIDTH, CARTPOLE_RENDER_HEIGHT};
    const float scale = CARTPOLE_RENDER_WIDTH / (2.0f * (float)CARTPOLE_X_LIMIT); /* px per metre */
    const float ground = 300.0f;
    clear_canvas(&c, (Color){255, 255, 255});
    draw_rect(&c, 0, ground, (float)CARTPOLE_RENDER_WIDTH, 1, (Color){0, 0, 0});
    float cart_x = (float)env->x * scale + CARTPOLE_RENDER_WIDTH / 2.0f;
    draw_rect(&c, cart_x - 25.0f, ground - 15.0f, 50, 30, (Color){0, 0, 0});
    /* The pole as a chain of small squares from the cart's top. */
    float pole_pixels = scale * 2.0f * (float)CARTPOLE_HALF_LENGTH;
    for (int i = 0; i <= 40; i++) {
        float d = pole_pixels * (float)i / 40.0f;
        float px = cart_x + d * (float)sin(env->theta), py = ground - 15.0f - d * (float)cos(env->theta);
        draw_rect(&c, px - 4.0f, py - 4.0f, 8, 8, (Color){202, 152, 101});
    }
    draw_rect(&c, cart_x - 3.0f, ground - 18.0f, 6, 6, (Color){129, 132, 203});
}

/* ---- For the vector layer (see env_type.h) ---- */

/* The bounds are gymnasium's CartPole-v1's: twice the limits that end an
 * episode for the position and the angle, and none for the velocities (the
 * largest float32). */
static EnvShape cartpole_shape(const double* options) {
    (void)options;
    return (EnvShape){
        .obs_dims = {4},
        .obs_low = -FLT_MAX,
        .obs_high = FLT_MAX,
        .obs_ranges = {{0, 1, -2 * CARTPOLE_X_LIMIT, 2 * CARTPOLE_X_LIMIT},
                       {2, 1, -2 * CARTPOLE_ANGLE_LIMIT, 2 * CARTPOLE_ANGLE_LIMIT}},
        .action_n = 2,
        .render_width = CARTPOLE_RENDER_WIDTH,
        .render_height = CARTPOLE_RENDER_HEIGHT,
    };
}

/* A restored state (see env_type.h): inside the limits that end an episode,
 * finite velocities, fewer steps than the truncation. */
static const char* cartpole_check_state(const CartPole* env) {
    ENV_CHECK(env, x, -CARTPOLE_X_LIMIT, CARTPOLE_X_LIMIT);
    ENV_CHECK_FINITE(env, x_dot);
    ENV_CHECK(env, theta, -CARTPOLE_ANGLE_LIMIT, CARTPOLE_ANGLE_LIMIT);
    ENV_CHECK_FINITE(env, theta_dot);
    ENV_CHECK(env, steps, 0, env->max_steps);
    return NULL;
}

static const EnvOption cartpole_options[] = {
    {"max_steps", 500, 1, 1e9, 1, "steps after which an episode is truncated"},
};
static const EnvField cartpole_fields[] = {
    {"x", offsetof(CartPole, x), FIELD_DOUBLE, 1},
    {"x_dot", offsetof(CartPole, x_dot), FIELD_DOUBLE, 1},
    {"theta", offsetof(CartPole, theta), FIELD_DOUBLE, 1},
    {"theta_dot", offsetof(CartPole, theta_dot), FIELD_DOUBLE, 1},
    {"steps", offsetof(CartPole, steps), FIELD_INT, 1},
};

PUFFJAX_ENV(CartPole, cartpole)

#endif
