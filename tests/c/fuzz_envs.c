/* fuzz_envs.c - step every environment with random and adversarial inputs.
 *
 * Built with -fsanitize=address,undefined by tests/test_envs_sanitize.py
 * (or by hand: see that file). For every env type and a few option sets it
 *   - steps the same seed with 1 and 3 threads (the latter in two ranges split
 *     at a random point) and checks that every buffer matches bit for bit
 *     after every step (determinism across threads and ranges),
 *   - feeds out-of-range / NaN / infinite actions and checks that
 *     vec_find_bad_action catches them, then steps with huge finite values,
 *   - moves Breakout's and Pong's balls to awkward places (corners, inside
 *     bricks, outside the field) and scribbles on Snake's grid through the
 *     test hooks and keeps stepping,
 *   - multi-agent envs (Snake): n environments of K agents, n * K rows,
 *   - renders every few steps and checks rewards and observations are finite.
 * Exit status 0 means all good. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../envs_c/rng.h"
#include "../../envs_c/vecenv.h"

static int failures = 0;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            failures++;                                                    \
        }                                                                  \
    } while (0)

typedef struct Buffers {
    void* obs;
    void* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    size_t obs_bytes, action_bytes;
} Buffers;

static void buffers_alloc(Buffers* b, const EnvShape* s, int n) {
    b->obs_bytes = (size_t)n * s->obs_size * (s->obs_is_uint8 ? 1 : 4);
    b->action_bytes = (size_t)n * (s->action_n > 0 ? 4 : 4 * (size_t)s->action_dim);
    b->obs = calloc(1, b->obs_bytes);
    b->actions = calloc(1, b->action_bytes);
    b->rewards = (float*)calloc((size_t)n, 4);
    b->terminals = (unsigned char*)calloc((size_t)n, 1);
    b->truncations = (unsigned char*)calloc((size_t)n, 1);
}

static void buffers_free(Buffers* b) {
    free(b->obs);
    free(b->actions);
    free(b->rewards);
    free(b->terminals);
    free(b->truncations);
}

static int buffers_equal(const Buffers* a, const Buffers* b, int n) {
    return memcmp(a->obs, b->obs, a->obs_bytes) == 0 && memcmp(a->rewards, b->rewards, (size_t)n * 4) == 0 &&
           memcmp(a->terminals, b->terminals, (size_t)n) == 0 &&
           memcmp(a->truncations, b->truncations, (size_t)n) == 0;
}

/* Random actions, with adversarial ones mixed in when `nasty`; returns the
 * index of the first invalid action written, or -1. */
static int fill_actions(const EnvShape* s, void* actions, int n, uint64_t* rng, int nasty) {
    int first_bad = -1;
    if (s->action_n > 0) {
        int32_t* a = (int32_t*)actions;
        for (int i = 0; i < n; i++) {
            a[i] = rng_int(rng, s->action_n);
            if (nasty && rng_int(rng, 50) == 0) {
                static const int32_t bad[] = {-1, INT32_MIN, INT32_MAX, 3, 5, 1000};
                a[i] = bad[rng_int(rng, 6)];
                if ((a[i] < 0 || a[i] >= s->action_n) && first_bad < 0) first_bad = i;
            }
        }
    } else {
        float* a = (float*)actions;
        for (int i = 0; i < n * s->action_dim; i++) {
            a[i] = rng_uniform(rng, -1.5f, 1.5f);
            if (rng_int(rng, 20) == 0) a[i] = rng_int(rng, 2) ? 1e30f : -3e38f; /* huge but finite */
            if (nasty && rng_int(rng, 50) == 0) {
                a[i] = rng_int(rng, 2) ? NAN : -INFINITY;
                if (first_bad < 0) first_bad = i / s->action_dim;
            }
        }
    }
    return first_bad;
}

/* Replace invalid actions by valid ones. */
static void fix_actions(const EnvShape* s, void* actions, int n) {
    if (s->action_n > 0) {
        int32_t* a = (int32_t*)actions;
        for (int i = 0; i < n; i++)
            if (a[i] < 0 || a[i] >= s->action_n) a[i] = 0;
    } else {
        float* a = (float*)actions;
        for (int i = 0; i < n * s->action_dim; i++)
            if (!isfinite(a[i])) a[i] = 0.0f;
    }
}

static void poke_state(VecEnv* vec, const char* type, int i, uint64_t* rng) {
    if (strcmp(type, "breakout") == 0) {
        static const float xs[] = {-40.0f, 0.0f, 16.0f, 31.9f, 32.0f, 280.0f, 544.0f, 560.0f, 700.0f};
        static const float ys[] = {-40.0f, 0.0f, 38.0f, 50.0f, 61.9f, 100.0f, 122.0f, 280.0f, 312.0f, 400.0f};
        vec_set_field(vec, i, "ball_x", 0, xs[rng_int(rng, 9)]);
        vec_set_field(vec, i, "ball_y", 0, ys[rng_int(rng, 10)]);
        vec_set_field(vec, i, "ball_vx", 0, rng_uniform(rng, -448.0f, 448.0f));
        vec_set_field(vec, i, "ball_vy", 0, rng_int(rng, 2) ? -448.0f : 0.0f);
        vec_set_field(vec, i, "balls_fired", 0, 1);
        vec_set_field(vec, i, "paddle_x", 0, rng_uniform(rng, -100.0f, 700.0f));
        if (rng_int(rng, 4) == 0) vec_set_field(vec, i, "score", 0, 432);
        for (int b = 0; b < 108; b++) vec_set_field(vec, i, "bricks", b, rng_int(rng, 2));
    } else if (strcmp(type, "pong") == 0) {
        vec_set_field(vec, i, "ball_x", 0, rng_uniform(rng, -20.0f, 530.0f));
        vec_set_field(vec, i, "ball_y", 0, rng_uniform(rng, -20.0f, 400.0f));
        vec_set_field(vec, i, "ball_vx", 0, rng_uniform(rng, -600.0f, 600.0f));
        vec_set_field(vec, i, "ball_vy", 0, rng_uniform(rng, -600.0f, 600.0f));
    } else if (strcmp(type, "snake") == 0) {
        /* Scribble on the grid: stray pellets, stray body cells, any heading. */
        for (int k = 0; k < 6; k++) vec_set_field(vec, i, "grid", rng_int(rng, 32 * 32), rng_int(rng, 12));
        vec_set_field(vec, i, "heading", 0, rng_int(rng, 4));
    } else if (strcmp(type, "squared") == 0) {
        vec_set_field(vec, i, "agent_row", 0, rng_int(rng, 400) - 100);
        vec_set_field(vec, i, "target_col", 0, rng_int(rng, 400) - 100);
    }
}

/* n environments of `type`: n * num_agents buffer rows. */
static void run_case(const EnvType* type, const double* options, int n, int steps, uint64_t seed) {
    EnvShape shape = vec_type_shape(type, options);
    int rows = n * shape.num_agents;
    Buffers b1, b3;
    buffers_alloc(&b1, &shape, rows);
    buffers_alloc(&b3, &shape, rows);
    VecEnv* v1 = vec_create(type, options, n, 1, b1.obs, b1.actions, b1.rewards, b1.terminals, b1.truncations, seed);
    VecEnv* v3 = vec_create(type, options, n, 3, b3.obs, b3.actions, b3.rewards, b3.terminals, b3.truncations, seed);
    CHECK(v1 && v3, "%s: vec_create failed", type->name);
    if (!v1 || !v3) return;
    CHECK(buffers_equal(&b1, &b3, rows), "%s: reset differs across thread counts", type->name);
    unsigned char* rgb = (unsigned char*)malloc((size_t)shape.render_width * shape.render_height * 3);
    uint64_t rng = seed * 7919 + 1;
    long episodes = 0;
    for (int t = 0; t < steps; t++) {
        int expected_bad = fill_actions(&shape, b1.actions, rows, &rng, t % 3 == 0);
        double bad_value = 0.0;
        int found = vec_find_bad_action(v1, 0, rows, &bad_value);
        CHECK(found == expected_bad, "%s: bad action at %d not found (got %d)", type->name, expected_bad, found);
        fix_actions(&shape, b1.actions, rows);
        CHECK(vec_find_bad_action(v1, 0, rows, &bad_value) == -1, "%s: fixed actions still flagged", type->name);
        memcpy(b3.actions, b1.actions, b1.action_bytes);
        if (t % 97 == 13) {
            int i = rng_int(&rng, n);
            uint64_t r2 = rng;
            poke_state(v1, type->name, i, &rng);
            poke_state(v3, type->name, i, &r2);
        }
        vec_step(v1);
        /* The 3-thread copy steps in two ranges of environments split at a random point: the
         * same as one step. */
        int split = rng_int(&rng, n + 1);
        vec_step_range(v3, 0, split);
        vec_step_range(v3, split, n);
        if (!buffers_equal(&b1, &b3, rows)) {
            CHECK(0, "%s: step %d differs between 1 and 3 threads", type->name, t);
            break;
        }
        for (int i = 0; i < rows; i++) {
            CHECK(isfinite(b1.rewards[i]), "%s: non-finite reward", type->name);
            episodes += b1.terminals[i] | b1.truncations[i];
        }
        if (!shape.obs_is_uint8) {
            const float* o = (const float*)b1.obs;
            for (long j = 0; j < (long)rows * shape.obs_size; j++)
                if (!isfinite(o[j])) {
                    CHECK(0, "%s: non-finite observation", type->name);
                    break;
                }
        }
        if (t % 50 == 0) vec_render(v1, t % n, rgb);
        if (t % 500 == 499) {
            double sums[EPISODE_LOG_FIELDS + 1];
            vec_take_log(v1, sums);
            vec_take_log(v3, sums);
        }
        if (t == steps / 2) {
            vec_reset(v1, 1, seed + 1);
            vec_reset(v3, 1, seed + 1);
        }
    }
    printf("%-9s n=%d agents=%d steps=%d episodes=%ld\n", type->name, n, shape.num_agents, steps, episodes);
    free(rgb);
    vec_destroy(v1);
    vec_destroy(v3);
    buffers_free(&b1);
    buffers_free(&b3);
}

int main(int argc, char** argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 3000;
    for (int k = 0; k < vec_num_types(); k++) {
        const EnvType* type = vec_type_at(k);
        double options[ENV_MAX_OPTIONS];
        for (int j = 0; j < type->num_options; j++) options[j] = type->options[j].default_value;
        run_case(type, options, 37, steps, 1 + k);
        /* Extreme options: every option at its minimum, then at a large value. */
        for (int j = 0; j < type->num_options; j++) options[j] = type->options[j].min_value;
        run_case(type, options, 5, steps / 3, 100 + k);
        for (int j = 0; j < type->num_options; j++)
            options[j] = fmin(type->options[j].max_value, strcmp(type->name, "squared") == 0 ? 255 : 9);
        run_case(type, options, 4, steps / 10, 200 + k);
    }
    /* Degenerate vectors: one env with more threads than envs. */
    {
        const EnvType* type = vec_find_type("breakout");
        double options[2] = {4, 0};
        run_case(type, options, 1, 200, 7);
        CHECK(vec_find_type("nope") == NULL, "unknown type found");
        CHECK(vec_create(type, options, 0, 1, NULL, NULL, NULL, NULL, NULL, 0) == NULL, "n=0 accepted");
    }
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("fuzz_envs: all good\n");
    return 0;
}
