/* walker.h - a template for your own C environment, built out of tree.
 *
 * Copy this file anywhere, rename it (the file name names the env: in foo.h
 * every name starts with foo, and the last line is PUFFJAX_ENV(Foo, foo)),
 * and train it with no fork and no rebuild of puffjax:
 *
 *     puffjax train path/to/walker.h --env.num-envs 256
 *     env = puffjax.envs.make("path/to/walker.h", num_envs=256)   # from Python
 *
 * puffjax compiles it with the system C compiler against the headers it
 * installs, caches the library, and steps it with its own vector layer
 * (threads, zero-copy buffers, checks). Rules: see puffjax/env_type.h.
 *
 * The game: walk along a line of `length` cells to a target cell.
 * Observation (2 float32 in [0, 1]): [position, target] / (length - 1).
 * Actions: Discrete(3): 0 left, 1 stay, 2 right.
 * Reward: +0.1 for a step closer to the target, -0.1 for a step away (or
 * into the end of the line), and +1 on reaching it, which ends the episode;
 * the episode is truncated after `max_steps` steps.
 */
#ifndef WALKER_H
#define WALKER_H

#include <stddef.h>
#include <stdlib.h> /* abs */

#include "puffjax/env_type.h" /* EnvIO, EnvShape, PUFFJAX_ENV, ... */
#include "puffjax/render.h"   /* Canvas, draw_rect, clear_canvas */
#include "puffjax/rng.h"      /* rng_int, rng_float, ... on env->io.rng */

typedef struct Walker {
    EnvIO io; /* must come first: puffjax points it at this env's buffer rows */
    int length, max_steps; /* options */

    int position, target, t;
    float episode_return;

    EpisodeLog log; /* finished episodes; kept last */
} Walker;

static inline void walker_init(Walker* env, const double* options) {
    env->length = (int)options[0];
    env->max_steps = (int)options[1];
}

static inline void walker_write_observation(Walker* env) {
    float scale = 1.0f / (float)(env->length - 1);
    env->io.observations[0] = (float)env->position * scale;
    env->io.observations[1] = (float)env->target * scale;
}

static inline void walker_reset(Walker* env) {
    env->position = rng_int(&env->io.rng, env->length);
    do {
        env->target = rng_int(&env->io.rng, env->length);
    } while (env->target == env->position);
    env->t = 0;
    env->episode_return = 0.0f;
    walker_write_observation(env);
}

static inline void walker_step(Walker* env) {
    int move = *env->io.action - 1; /* -1, 0 or +1 */
    int before = abs(env->target - env->position);
    int p = env->position + move;
    env->position = p < 0 ? 0 : (p >= env->length ? env->length - 1 : p);
    env->t += 1;
    int after = abs(env->target - env->position);
    int reached = after == 0;
    float reward = reached ? 1.0f : (after < before ? 0.1f : (move != 0 ? -0.1f : 0.0f));
    env->episode_return += reward;
    *env->io.reward = reward;
    *env->io.terminal = (unsigned char)reached;
    *env->io.truncation = (unsigned char)(!reached && env->t >= env->max_steps);
    if (reached || env->t >= env->max_steps) {
        /* perf, score, return, length of the finished episode */
        episode_log_add(&env->log, reached ? 1.0f : 0.0f, reached ? 1.0f : 0.0f, env->episode_return,
                        (float)env->t);
        walker_reset(env); /* auto-reset: the row now holds the next episode's first observation */
        return;
    }
    walker_write_observation(env);
}

static inline void walker_render(const Walker* env, unsigned char* rgb) {
    Canvas c = {rgb, env->length * 16, 16};
    clear_canvas(&c, (Color){20, 20, 30});
    draw_rect(&c, (float)(env->target * 16 + 2), 2, 12, 12, (Color){255, 200, 0});
    draw_rect(&c, (float)(env->position * 16 + 4), 4, 8, 8, (Color){0, 200, 255});
}

/* ---- What puffjax needs (see puffjax/env_type.h) ---- */

static EnvShape walker_shape(const double* options) {
    return (EnvShape){
        .obs_dims = {2},        /* 2 float32 */
        .obs_low = 0.0f,
        .obs_high = 1.0f,
        .action_n = 3,          /* Discrete(3) */
        .render_width = (int)options[0] * 16,
        .render_height = 16,
        .num_agents = 1,        /* agents per env: K > 1 gives each env K rows */
    };
}

/* Before a saved state is restored, puffjax asks whether it is safe to step:
 * NULL if so, else the name of a member out of its bounds. Check every
 * member but the options (foo_init has just set those), so that no index
 * leaves its array and no float is NaN (see puffjax/env_type.h). */
static const char* walker_check_state(const Walker* env) {
    ENV_CHECK(env, position, 0, env->length - 1); /* name, lowest, highest */
    ENV_CHECK(env, target, 0, env->length - 1);
    ENV_CHECK(env, t, 0, env->max_steps);
    ENV_CHECK_FINITE(env, episode_return);
    return NULL;
}

static const EnvOption walker_options[] = {
    /* name, default, min, max, integer?, help */
    {"length", 8, 2, 64, 1, "cells on the line"},
    {"max_steps", 32, 1, 1e6, 1, "steps before the episode is truncated"},
};
/* Named pieces of the state, which tests read and write by name. */
static const EnvField walker_fields[] = {
    {"position", offsetof(Walker, position), FIELD_INT, 1},
    {"target", offsetof(Walker, target), FIELD_INT, 1},
};

/* Defines walker_type, the environment "walker", from the names above. */
PUFFJAX_ENV(Walker, walker)

#endif
