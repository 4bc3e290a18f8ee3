/* coin.h - a throwaway environment for tests/test_envs_sanitize.py, which
 * copies envs_c/, drops this file into envs_c/envs/ and builds: it shows
 * that a new environment is one header and nothing else, and that one without
 * a field table registers with PUFFJAX_ENV_TABLES. It is not part of puffjax.
 *
 * Guess a coin flip. Observation (1 float32): the fraction of the episode
 * done. Actions: Discrete(2), the guess (1 = heads). Reward +1 for a right
 * guess, 0 otherwise. An episode is `length` steps, then it is truncated.
 */
#ifndef PUFFJAX_COIN_H
#define PUFFJAX_COIN_H

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"

typedef struct Coin {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */
    int length;

    int heads;
    int t;
    float episode_return;

    EpisodeLog log; /* finished episodes (kept last: see env_type.h) */
} Coin;

static inline void coin_init(Coin* env, const double* options) { env->length = (int)options[0]; }

static inline void coin_write_observation(Coin* env) {
    env->io.observations[0] = (float)env->t / (float)env->length;
}

static inline void coin_reset(Coin* env) {
    env->heads = (int)(rng_next(&env->io.rng) & 1);
    env->t = 0;
    env->episode_return = 0.0f;
    coin_write_observation(env);
}

static inline void coin_step(Coin* env) {
    float r = *env->io.action == env->heads ? 1.0f : 0.0f;
    *env->io.reward = r;
    *env->io.terminal = 0;
    *env->io.truncation = 0;
    env->episode_return += r;
    env->t += 1;
    env->heads = (int)(rng_next(&env->io.rng) & 1);
    if (env->t >= env->length) {
        *env->io.truncation = 1;
        episode_log_add(&env->log, env->episode_return / (float)env->length, env->episode_return,
                        env->episode_return, (float)env->t);
        coin_reset(env);
        return;
    }
    coin_write_observation(env);
}

static inline void coin_render(const Coin* env, unsigned char* rgb) {
    Canvas c = {rgb, 16, 16};
    clear_canvas(&c, env->heads ? (Color){255, 200, 0} : (Color){90, 90, 90});
}

/* ---- For the vector layer (see env_type.h) ---- */

static EnvShape coin_shape(const double* options) {
    (void)options;
    return (EnvShape){
        .obs_dims = {1},
        .obs_low = 0.0f,
        .obs_high = 1.0f,
        .action_n = 2,
        .render_width = 16,
        .render_height = 16,
    };
}

/* A restored state (see env_type.h). */
static const char* coin_check_state(const Coin* env) {
    ENV_CHECK(env, heads, 0, 1);
    ENV_CHECK(env, t, 0, env->length);
    ENV_CHECK_FINITE(env, episode_return);
    return NULL;
}

static const EnvOption coin_options[] = {
    {"length", 10, 1, 1000, 1, "steps per episode"},
};
/* No field table: NULL, 0 in its place. */
PUFFJAX_ENV_TABLES(Coin, coin, coin_options, ENV_COUNT(coin_options), NULL, 0)

#endif
