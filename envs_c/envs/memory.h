/* memory.h - remember a bit across a delay (needs a recurrent policy).
 *
 * Observation (2 float32): [signal, query].
 *   step 0 (the cue):         signal = +1 if the bit is 1, -1 if it is 0
 *   the next `delay` steps:   both 0 (blank)
 *   the step after (query):   signal = 0, query = 1
 * Actions: Discrete(2), the agent's guess of the bit. Actions before the
 * query are ignored (reward 0); the action taken on the query observation
 * is judged: +1 if it equals the bit, -1 otherwise, and the episode ends.
 * So an episode is delay + 2 steps long.
 */
#ifndef PUFFJAX_MEMORY_H
#define PUFFJAX_MEMORY_H

#include <stddef.h>

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"

typedef struct Memory {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */
    int delay;

    int bit;
    int t; /* index of the current observation in the episode */

    EpisodeLog log; /* finished episodes (kept last: see env_type.h) */
} Memory;

static inline void memory_init(Memory* env, const double* options) { env->delay = (int)options[0]; }

static inline void memory_write_observation(Memory* env) {
    int query_step = env->delay + 1;
    env->io.observations[0] = env->t == 0 ? (env->bit ? 1.0f : -1.0f) : 0.0f;
    env->io.observations[1] = env->t == query_step ? 1.0f : 0.0f;
}

static inline void memory_reset(Memory* env) {
    env->bit = (int)(rng_next(&env->io.rng) & 1);
    env->t = 0;
    memory_write_observation(env);
}

static inline void memory_step(Memory* env) {
    *env->io.reward = 0.0f;
    *env->io.terminal = 0;
    *env->io.truncation = 0;
    if (env->t == env->delay + 1) {
        /* The agent answered the query. perf = 1 if the bit was recalled. */
        float r = *env->io.action == env->bit ? 1.0f : -1.0f;
        *env->io.reward = r;
        *env->io.terminal = 1;
        episode_log_add(&env->log, r > 0.0f ? 1.0f : 0.0f, r > 0.0f ? 1.0f : 0.0f, r, (float)(env->t + 1));
        memory_reset(env);
        return;
    }
    env->t += 1;
    memory_write_observation(env);
}

static inline void memory_render(const Memory* env, unsigned char* rgb) {
    /* Three 32 px cells: the cue, the query flag, and the hidden bit. */
    Canvas c = {rgb, 96, 32};
    clear_canvas(&c, (Color){6, 24, 24});
    float signal = env->t == 0 ? (env->bit ? 1.0f : -1.0f) : 0.0f;
    Color cue = signal > 0 ? (Color){0, 255, 0} : (signal < 0 ? (Color){255, 0, 0} : (Color){40, 40, 40});
    draw_rect(&c, 2, 2, 28, 28, cue);
    draw_rect(&c, 34, 2, 28, 28, env->t == env->delay + 1 ? (Color){255, 255, 0} : (Color){40, 40, 40});
    draw_rect(&c, 66, 2, 28, 28, env->bit ? (Color){0, 90, 0} : (Color){90, 0, 0});
}

/* ---- For the vector layer (see env_type.h) ---- */

static EnvShape memory_shape(const double* options) {
    (void)options;
    return (EnvShape){
        .obs_dims = {2},
        .obs_low = 0.0f,
        .obs_high = 1.0f,
        .obs_ranges = {{0, 1, -1.0f, 1.0f}}, /* the cue is -1 or +1 */
        .action_n = 2,
        .render_width = 96,
        .render_height = 32,
    };
}

/* A restored state (see env_type.h): a bit, and a step of the episode. */
static const char* memory_check_state(const Memory* env) {
    ENV_CHECK(env, bit, 0, 1);
    ENV_CHECK(env, t, 0, env->delay + 1);
    return NULL;
}

static const EnvOption memory_options[] = {
    {"delay", 4, 0, 1e6, 1, "blank steps between the cue and the query"},
};
static const EnvField memory_fields[] = {
    {"bit", offsetof(Memory, bit), FIELD_INT, 1},
    {"t", offsetof(Memory, t), FIELD_INT, 1},
};

PUFFJAX_ENV(Memory, memory)

#endif
