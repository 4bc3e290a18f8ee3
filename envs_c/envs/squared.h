/* squared.h - walk to a target on a small grid.
 *
 * A size x size grid (default 11). The agent starts in the centre and a
 * target sits on a random other cell. Observation: the grid as uint8,
 * 0 empty, 1 agent, 2 target (row-major, shape (size, size)).
 * Actions: Discrete(5): 0 stay, 1 up, 2 down, 3 left, 4 right.
 * Every episode is one attempt: +1 and the episode ends on reaching the
 * target. Nothing else is rewarded or punished: a move into the edge leaves
 * the agent where it is, and after 3 * size steps without reaching the
 * target the episode is truncated (reward 0; a time limit, not a terminal:
 * the observation does not show the time). The only reward is the target's,
 * so with any discount < 1 the fastest way to the target is optimal, and no
 * penalty can be postponed by standing still (standing still earns nothing).
 */
#ifndef PUFFJAX_SQUARED_H
#define PUFFJAX_SQUARED_H

#include <stddef.h>
#include <string.h>

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"

#define SQUARED_EMPTY 0
#define SQUARED_AGENT 1
#define SQUARED_TARGET 2
#define SQUARED_CELL_PIXELS 16

typedef struct Squared {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */
    int size;

    int agent_row, agent_col;
    int target_row, target_col;
    int steps;

    EpisodeLog log; /* finished episodes (kept last: see env_type.h) */
} Squared;

static inline void squared_init(Squared* env, const double* options) { env->size = (int)options[0]; }

/* Draw the whole grid (size * size cells). */
static inline void squared_draw(Squared* env) {
    unsigned char* o = env->io.observations_u8;
    memset(o, SQUARED_EMPTY, (size_t)env->size * (size_t)env->size);
    o[env->target_row * env->size + env->target_col] = SQUARED_TARGET;
    o[env->agent_row * env->size + env->agent_col] = SQUARED_AGENT;
}

static inline void squared_reset(Squared* env) {
    int centre = env->size / 2;
    env->agent_row = centre;
    env->agent_col = centre;
    /* The target is any cell but the centre, uniformly. */
    int cell = rng_int(&env->io.rng, env->size * env->size - 1);
    if (cell >= centre * env->size + centre) cell += 1;
    env->target_row = cell / env->size;
    env->target_col = cell % env->size;
    env->steps = 0;
    squared_draw(env);
}

/* An episode ends: log it (perf = score = return = 1 if the target was reached) and start the next. */
static inline void squared_end(Squared* env, int reached) {
    if (reached) {
        *env->io.reward = 1.0f;
        *env->io.terminal = 1;
    } else {
        *env->io.truncation = 1;
    }
    episode_log_add(&env->log, (float)reached, (float)reached, (float)reached, (float)env->steps);
    squared_reset(env);
}

static inline void squared_step(Squared* env) {
    static const int drow[5] = {0, -1, 1, 0, 0};
    static const int dcol[5] = {0, 0, 0, -1, 1};
    int a = *env->io.action;
    if (a < 0 || a > 4) a = 0; /* never happens: the vector layer checks actions */
    *env->io.reward = 0.0f;
    *env->io.terminal = 0;
    *env->io.truncation = 0;
    env->steps += 1;
    int row = env->agent_row + drow[a], col = env->agent_col + dcol[a];
    /* A move into the edge: stay put. */
    if (row < 0 || row >= env->size || col < 0 || col >= env->size) {
        row = env->agent_row;
        col = env->agent_col;
    }
    /* Reaching the target: +1, episode over. */
    if (row == env->target_row && col == env->target_col) {
        squared_end(env, 1);
        return;
    }
    /* Out of time after 3 * size steps: truncated, reward 0. */
    if (env->steps >= 3 * env->size) {
        squared_end(env, 0);
        return;
    }
    /* Otherwise move: only two cells of the observation change. */
    env->io.observations_u8[env->agent_row * env->size + env->agent_col] = SQUARED_EMPTY;
    env->agent_row = row;
    env->agent_col = col;
    env->io.observations_u8[row * env->size + col] = SQUARED_AGENT;
}

static inline void squared_render(const Squared* env, unsigned char* rgb) {
    int px = SQUARED_CELL_PIXELS;
    Canvas c = {rgb, env->size * px, env->size * px};
    clear_canvas(&c, (Color){6, 24, 24});
    for (int r = 0; r < env->size; r++)
        for (int k = 0; k < env->size; k++)
            draw_rect(&c, (float)(k * px + 1), (float)(r * px + 1), (float)(px - 2), (float)(px - 2),
                      (Color){20, 50, 50});
    draw_rect(&c, (float)(env->target_col * px), (float)(env->target_row * px), (float)px, (float)px,
              (Color){255, 80, 80});
    draw_rect(&c, (float)(env->agent_col * px), (float)(env->agent_row * px), (float)px, (float)px,
              (Color){0, 255, 255});
}

/* ---- For the vector layer (see env_type.h) ---- */

static inline int squared_clamp(int v, int size) { return v < 0 ? 0 : (v >= size ? size - 1 : v); }

/* Only called after a test edited the state: keep the positions on the grid
 * (so that the writes stay inside the observation), then redraw. */
static inline void squared_write_observation(Squared* env) {
    env->agent_row = squared_clamp(env->agent_row, env->size);
    env->agent_col = squared_clamp(env->agent_col, env->size);
    env->target_row = squared_clamp(env->target_row, env->size);
    env->target_col = squared_clamp(env->target_col, env->size);
    squared_draw(env);
}

static EnvShape squared_shape(const double* options) {
    int size = (int)options[0];
    return (EnvShape){
        .obs_dims = {size, size},
        .obs_is_uint8 = 1,
        .obs_low = SQUARED_EMPTY,
        .obs_high = SQUARED_TARGET,
        .action_n = 5,
        .render_width = size * SQUARED_CELL_PIXELS,
        .render_height = size * SQUARED_CELL_PIXELS,
    };
}

/* A restored state (see env_type.h): both positions on the grid (they index
 * the observation), fewer steps than the time limit. */
static const char* squared_check_state(const Squared* env) {
    ENV_CHECK(env, agent_row, 0, env->size - 1);
    ENV_CHECK(env, agent_col, 0, env->size - 1);
    ENV_CHECK(env, target_row, 0, env->size - 1);
    ENV_CHECK(env, target_col, 0, env->size - 1);
    ENV_CHECK(env, steps, 0, 3 * env->size);
    return NULL;
}

static const EnvOption squared_options[] = {
    {"size", 11, 3, 255, 1, "grid side length (the agent starts in the centre)"},
};
static const EnvField squared_fields[] = {
    {"agent_row", offsetof(Squared, agent_row), FIELD_INT, 1},
    {"agent_col", offsetof(Squared, agent_col), FIELD_INT, 1},
    {"target_row", offsetof(Squared, target_row), FIELD_INT, 1},
    {"target_col", offsetof(Squared, target_col), FIELD_INT, 1},
    {"steps", offsetof(Squared, steps), FIELD_INT, 1},
};

PUFFJAX_ENV(Squared, squared)

#endif
