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

#include "env_type.h"
#include "render.h"
#include "rng.h"

typedef EpisodeLog MemoryLog; /* perf = 1 if the bit was recalled */

typedef struct Memory {
    uint64_t rng; /* must come first (see env_type.h) */
    float* observations;
    const int* action;
    float* reward;
    unsigned char* terminal;
    unsigned char* truncation;
    int delay;

    int bit;
    int t; /* index of the current observation in the episode */
    MemoryLog log;
} Memory;

static inline void memory_write_observation(Memory* env) {
    int query_step = env->delay + 1;
    env->observations[0] = env->t == 0 ? (env->bit ? 1.0f : -1.0f) : 0.0f;
    env->observations[1] = env->t == query_step ? 1.0f : 0.0f;
}

static inline void memory_reset(Memory* env) {
    env->bit = (int)(rng_next(&env->rng) & 1);
    env->t = 0;
    memory_write_observation(env);
}

static inline void memory_step(Memory* env) {
    *env->reward = 0.0f;
    *env->terminal = 0;
    *env->truncation = 0;
    if (env->t == env->delay + 1) {
        /* The agent answered the query. */
        float r = *env->action == env->bit ? 1.0f : -1.0f;
        *env->reward = r;
        *env->terminal = 1;
        env->log.perf += r > 0.0f ? 1.0f : 0.0f;
        env->log.score += r > 0.0f ? 1.0f : 0.0f;
        env->log.episode_return += r;
        env->log.episode_length += (float)(env->t + 1);
        env->log.n += 1.0f;
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

/* ---- Glue for the vector layer (see env_type.h). ---- */

static void memory_shape(const double* options, EnvShape* s) {
    (void)options;
    s->obs_ndim = 1;
    s->obs_dims[0] = 2;
    s->obs_dims[1] = 1;
    s->obs_is_uint8 = 0;
    s->obs_size = 2;
    s->action_n = 2;
    s->action_dim = 1;
    s->render_width = 96;
    s->render_height = 32;
}

static void memory_init(void* e, const double* options, void* obs, void* action, float* reward,
                        unsigned char* terminal, unsigned char* truncation) {
    Memory* env = (Memory*)e;
    env->delay = (int)options[0];
    env->observations = (float*)obs;
    env->action = (const int*)action;
    env->reward = reward;
    env->terminal = terminal;
    env->truncation = truncation;
}

static void memory_reset_any(void* env) { memory_reset((Memory*)env); }

static void memory_step_range(void* envs, int start, int end) {
    Memory* e = (Memory*)envs;
    for (int i = start; i < end; i++) memory_step(&e[i]);
}

static void memory_refresh(void* env) { memory_write_observation((Memory*)env); }

static void memory_render_any(const void* env, unsigned char* rgb) { memory_render((const Memory*)env, rgb); }

static const EnvOption MEMORY_OPTIONS[] = {
    {"delay", 4, 0, 1e6, 1, "blank steps between the cue and the query"},
};
static const EnvField MEMORY_FIELDS[] = {
    {"bit", offsetof(Memory, bit), FIELD_INT, 1},
    {"t", offsetof(Memory, t), FIELD_INT, 1},
};

static const EnvType MEMORY_TYPE = {
    "memory", sizeof(Memory),
    1, MEMORY_OPTIONS,
    offsetof(Memory, log),
    (int)(sizeof(MEMORY_FIELDS) / sizeof(MEMORY_FIELDS[0])), MEMORY_FIELDS,
    memory_shape, memory_init, memory_reset_any, memory_step_range,
    memory_refresh, memory_render_any,
};

#endif
