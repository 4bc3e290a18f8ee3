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
 *   - renders every few steps and checks rewards and observations are finite,
 *   - snapshots (state_case): every state reached by stepping passes
 *     vec_check_state; random bytes, and good snapshots with a few words
 *     overwritten by awkward values (NaN, infinities, extreme and off-by-one
 *     integers, stray pointers), are either refused, naming an environment and
 *     a member and leaving the target unchanged, or restored and then stepped
 *     and rendered: under the sanitizers, never an out-of-bounds access.
 * Exit status 0 means all good. */
#include <float.h>
#include <limits.h>
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

/* Buffers for `rows` rows and a vector of n environments stepping on them. */
static VecEnv* vec_on(const EnvType* type, const double* options, int n, int threads, const EnvShape* shape,
                      int rows, Buffers* b, uint64_t seed) {
    buffers_alloc(b, shape, rows);
    return vec_create(type, options, n, threads, b->obs, b->actions, b->rewards, b->terminals, b->truncations, seed);
}

/* n environments of `type`: n * num_agents buffer rows. */
static void run_case(const EnvType* type, const double* options, int n, int steps, uint64_t seed) {
    EnvShape shape = vec_type_shape(type, options);
    int rows = n * shape.num_agents;
    Buffers b1, b3;
    VecEnv* v1 = vec_on(type, options, n, 1, &shape, rows, &b1, seed);
    VecEnv* v3 = vec_on(type, options, n, 3, &shape, rows, &b3, seed);
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

/* Overwrite one aligned word of environment `i`'s bytes in a snapshot with an awkward value. */
static void mutate(unsigned char* state, size_t env_size, int i, uint64_t* rng) {
    static const uint32_t words[] = {
        0u, 1u, 2u, 3u, 0xFFFFFFFFu /* -1 */, 0x7FFFFFFFu, 0x80000000u, 0x40000000u, 0x40000001u,
        0x7FC00000u /* NaN */, 0x7F800000u /* inf */, 0xFF800000u /* -inf */, 0x7F7FFFFFu /* FLT_MAX */,
        0x501502F9u /* 1e10f */, 0xC2040000u /* -33.0f */, 0x44100000u /* 576.0f */, 0x43E00000u /* 448.0f */,
        0x43E00001u /* just above 448 */, 0x3F800000u /* 1.0f */, 0x00000001u /* a denormal */};
    unsigned char* env = state + (size_t)i * env_size;
    size_t offset = (size_t)rng_int(rng, (int)(env_size / 4)) * 4;
    int kind = rng_int(rng, 5);
    if (kind == 0 && offset + 8 <= env_size) { /* a double, or a pointer */
        static const double doubles[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300, 4.8, 2.4000001};
        double d = doubles[rng_int(rng, 7)];
        if (rng_int(rng, 3) == 0) memcpy(&d, &(uint64_t){rng_next(rng)}, 8); /* any 8 bytes */
        memcpy(env + offset, &d, 8);
    } else if (kind == 1) { /* a small integer, near most bounds */
        int32_t v = rng_int(rng, 80) - 8;
        memcpy(env + offset, &v, 4);
    } else if (kind == 2) { /* one byte */
        env[offset + (size_t)rng_int(rng, 4)] = (unsigned char)rng_int(rng, 256);
    } else {
        uint32_t v = words[rng_int(rng, ENV_COUNT(words))];
        memcpy(env + offset, &v, 4);
    }
}

/* Awkward values for a named field (EnvField) of each kind. */
static const float AWKWARD_FLOATS[] = {NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e10f, -1e10f, -33.0f,
                                       -0.001f, 329.0f, 448.5f, 600.5f, 1e-40f};
static const int AWKWARD_INTS[] = {INT_MIN, INT_MAX, -1, 0, 1, 2, 3, 4, 5, 6, 20, 21, 64, 1000, (1 << 30) + 1};
static const double AWKWARD_DOUBLES[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300, 2.4000001, 4.8, 0.25};
static const unsigned char AWKWARD_BYTES[] = {0, 1, 2, 5, 6, 12, 255};

/* Set field f to awkward value number v of its kind (element `element` of a byte array) in every
 * environment of a snapshot; 0 when there is no value number v. */
static int set_awkward(unsigned char* state, size_t env_size, int n, const EnvField* f, int v, int element) {
    const void* value;
    size_t bytes;
    switch (f->kind) {
    case FIELD_FLOAT: if (v >= ENV_COUNT(AWKWARD_FLOATS)) return 0; value = &AWKWARD_FLOATS[v]; bytes = 4; break;
    case FIELD_INT: if (v >= ENV_COUNT(AWKWARD_INTS)) return 0; value = &AWKWARD_INTS[v]; bytes = 4; break;
    case FIELD_DOUBLE: if (v >= ENV_COUNT(AWKWARD_DOUBLES)) return 0; value = &AWKWARD_DOUBLES[v]; bytes = 8; break;
    default: if (v >= ENV_COUNT(AWKWARD_BYTES)) return 0; value = &AWKWARD_BYTES[v]; bytes = 1; break;
    }
    for (int i = 0; i < n; i++) memcpy(state + (size_t)i * env_size + f->offset + (size_t)element, value, bytes);
    return 1;
}

typedef struct Tally {
    int refused, restored;
} Tally;

/* Offer a crafted snapshot to vb: either refused (naming an environment and a member, the
 * environments unchanged) or restored, then stepped and its log taken like any state; then
 * vb goes back to `good`. */
static void try_snapshot(VecEnv* vb, Buffers* bb, const EnvShape* shape, const char* name, const unsigned char* crafted,
                         const unsigned char* good, unsigned char* before, unsigned char* after, unsigned char* rgb,
                         uint64_t* rng, Tally* tally) {
    int n = vec_num_envs(vb), rows = vec_num_rows(vb);
    size_t size = vec_state_size(vb);
    const char* member = NULL;
    vec_get_state(vb, before);
    int bad = vec_set_state(vb, crafted, &member);
    CHECK(bad >= -1 && bad < n, "%s: vec_set_state returned %d", name, bad);
    if (bad >= 0) {
        tally->refused++;
        vec_get_state(vb, after);
        CHECK(memcmp(before, after, size) == 0, "%s: a refused snapshot changed the environments", name);
        CHECK(member != NULL && member[0] != '\0', "%s: a refused snapshot names no member", name);
        return;
    }
    tally->restored++;
    for (int t = 0; t < 3; t++) {
        fill_actions(shape, bb->actions, rows, rng, 0);
        vec_step(vb);
        for (int i = 0; i < rows; i++) CHECK(isfinite(bb->rewards[i]), "%s: non-finite reward", name);
    }
    if (tally->restored % 8 == 1) vec_render(vb, rng_int(rng, n), rgb); /* a render costs many steps */
    double sums[EPISODE_LOG_FIELDS + 1];
    vec_take_log(vb, sums);
    for (int j = 0; j <= EPISODE_LOG_FIELDS; j++) CHECK(isfinite(sums[j]), "%s: non-finite log", name);
    CHECK(vec_set_state(vb, good, &member) == -1, "%s: a good snapshot is refused", name);
}

/* Snapshots of n environments of `type`, along `steps` steps of one vector: every state reached
 * passes vec_check_state; at 8 of them, each named field set to each awkward value of its kind
 * (in every environment at once); and at the first `trials`, random bytes or a few words
 * overwritten (any member, EnvIO and log included). */
static void state_case(const EnvType* type, const double* options, int n, int steps, int trials, uint64_t seed) {
    EnvShape shape = vec_type_shape(type, options);
    int rows = n * shape.num_agents;
    Buffers ba, bb;
    VecEnv* va = vec_on(type, options, n, 1, &shape, rows, &ba, seed);
    VecEnv* vb = vec_on(type, options, n, 2, &shape, rows, &bb, ~seed);
    CHECK(va && vb, "%s: vec_create failed", type->name);
    if (!va || !vb) return;
    size_t size = vec_state_size(va), env_size = size / (size_t)n;
    unsigned char* good = (unsigned char*)malloc(size);
    unsigned char* crafted = (unsigned char*)malloc(size);
    unsigned char* before = (unsigned char*)malloc(size);
    unsigned char* after = (unsigned char*)malloc(size);
    unsigned char* rgb = (unsigned char*)malloc((size_t)shape.render_width * shape.render_height * 3);
    uint64_t rng = seed * 104729 + 3;
    Tally tally = {0, 0};
    int stride = steps / 8 > 0 ? steps / 8 : 1;
    for (int t = 0; t < steps; t++) {
        fill_actions(&shape, ba.actions, rows, &rng, 0);
        vec_step(va);
        vec_get_state(va, good);
        const char* member = NULL;
        int bad = vec_check_state(va, good, &member);
        if (bad != -1) {
            CHECK(0, "%s: the state reached at step %d is refused: environment %d, %s", type->name, t, bad,
                  bad >= 0 ? member : "out of memory");
            break;
        }
        CHECK(vec_set_state(vb, good, &member) == -1, "%s: a good snapshot is refused", type->name);
        if (t % stride == 0) {
            for (int k = 0; k < type->num_fields; k++) {
                const EnvField* f = &type->fields[k];
                for (int v = 0;; v++) {
                    memcpy(crafted, good, size);
                    if (!set_awkward(crafted, env_size, n, f, v, rng_int(&rng, f->count))) break;
                    try_snapshot(vb, &bb, &shape, type->name, crafted, good, before, after, rgb, &rng, &tally);
                }
            }
        }
        if (t < trials) {
            if (t % 8 == 0) {
                for (size_t j = 0; j < size; j++) crafted[j] = (unsigned char)rng_next(&rng);
            } else {
                memcpy(crafted, good, size);
                int edits = 1 + rng_int(&rng, 3);
                for (int e = 0; e < edits; e++) mutate(crafted, env_size, rng_int(&rng, n), &rng);
            }
            try_snapshot(vb, &bb, &shape, type->name, crafted, good, before, after, rgb, &rng, &tally);
        }
    }
    CHECK(tally.refused > 0, "%s: no crafted snapshot was refused", type->name);
    printf("%-9s n=%d snapshots: %d reached, %d crafted: %d refused, %d restored and stepped\n", type->name, n,
           steps, tally.refused + tally.restored, tally.refused, tally.restored);
    free(good);
    free(crafted);
    free(before);
    free(after);
    free(rgb);
    vec_destroy(va);
    vec_destroy(vb);
    buffers_free(&ba);
    buffers_free(&bb);
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
    /* Snapshots: defaults, every option at its minimum, then at a large value. */
    for (int k = 0; k < vec_num_types(); k++) {
        const EnvType* type = vec_type_at(k);
        double options[ENV_MAX_OPTIONS];
        for (int j = 0; j < type->num_options; j++) options[j] = type->options[j].default_value;
        state_case(type, options, 7, steps / 2, steps / 4, 300 + k);
        for (int j = 0; j < type->num_options; j++) options[j] = type->options[j].min_value;
        state_case(type, options, 3, steps / 6, steps / 8, 400 + k);
        for (int j = 0; j < type->num_options; j++)
            options[j] = fmin(type->options[j].max_value, strcmp(type->name, "squared") == 0 ? 255 : 9);
        state_case(type, options, 2, steps / 10, steps / 8, 500 + k);
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
