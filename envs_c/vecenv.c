/* vecenv.c - the vector layer: a registry of environment types, N
 * environments over shared buffers, and a small thread pool.
 *
 * The registry is generated, so adding an environment changes nothing here:
 * env_registry.h #includes every header in envs_c/envs/ and lists their
 * EnvTypes in ENV_TYPES (envs/foo.h defines foo_type; see env_type.h).
 * envs_c/gen_registry.py writes it; CMake runs the script when it configures
 * (and configures again when a header is added or removed), and the plain-gcc
 * sanitizer build (tests/test_envs_sanitize.py) runs the same script. */
#include "vecenv.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "env_registry.h" /* generated: every env header, and ENV_TYPES */
#include "rng.h"

int vec_num_types(void) { return ENV_COUNT(ENV_TYPES); }

const EnvType* vec_type_at(int i) {
    if (i < 0 || i >= vec_num_types()) return NULL;
    return ENV_TYPES[i];
}

const EnvType* vec_find_type(const char* name) {
    for (int i = 0; i < vec_num_types(); i++)
        if (strcmp(ENV_TYPES[i]->name, name) == 0) return ENV_TYPES[i];
    return NULL;
}

/* ---- Thread pool ----
 * T - 1 worker threads wait for work. A step bumps a generation counter and
 * wakes them; worker k steps block k, the calling thread steps block 0, then
 * waits until every worker reported back. Waiting first spins briefly
 * (a few tens of microseconds: steps usually come back to back, and waking a
 * sleeping thread costs about that much), then sleeps on a condition
 * variable, so idle threads cost no CPU. `generation`, `pending` and
 * `stopping` are read outside the mutex, so they are accessed atomically. */

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif
#define POOL_SPIN 1000
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

typedef struct Worker {
    VecEnv* vec;
    int index;
    pthread_t thread;
} Worker;

struct VecEnv {
    const EnvType* type;
    EnvShape shape;
    int num_envs;
    char* envs; /* num_envs structs of type->env_size bytes */
    double options[ENV_MAX_OPTIONS];
    void* observations;
    void* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;

    int num_threads;
    Worker* workers; /* num_threads - 1 of them */
    int started;     /* workers actually started */
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    pthread_cond_t done;
    unsigned long generation;
    int pending;
    int stopping;
    int range_start, range_end; /* the environments this step steps (set before waking the workers) */
};

/* Environments [start, end) of block k out of T blocks of the stepped range. */
static void block_range(const VecEnv* vec, int k, int* start, int* end) {
    long long n = vec->range_end - vec->range_start;
    *start = vec->range_start + (int)(n * k / vec->num_threads);
    *end = vec->range_start + (int)(n * (k + 1) / vec->num_threads);
}

static void step_block(VecEnv* vec, int k) {
    int start, end;
    block_range(vec, k, &start, &end);
    if (start < end) vec->type->step_range(vec->envs, start, end);
}

static void* worker_main(void* arg) {
    Worker* w = (Worker*)arg;
    VecEnv* vec = w->vec;
    unsigned long seen = 0;
    for (;;) {
        for (int s = 0; s < POOL_SPIN && LOAD(vec->generation) == seen && !LOAD(vec->stopping); s++) CPU_RELAX();
        pthread_mutex_lock(&vec->mutex);
        while (LOAD(vec->generation) == seen && !LOAD(vec->stopping)) pthread_cond_wait(&vec->wake, &vec->mutex);
        int stop = LOAD(vec->stopping);
        seen = LOAD(vec->generation);
        pthread_mutex_unlock(&vec->mutex);
        if (stop) break;
        step_block(vec, w->index);
        if (__atomic_sub_fetch(&vec->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&vec->mutex);
            pthread_cond_signal(&vec->done);
            pthread_mutex_unlock(&vec->mutex);
        }
    }
    return NULL;
}

static void stop_workers(VecEnv* vec) {
    pthread_mutex_lock(&vec->mutex);
    STORE(vec->stopping, 1);
    pthread_cond_broadcast(&vec->wake);
    pthread_mutex_unlock(&vec->mutex);
    for (int k = 0; k < vec->started; k++) pthread_join(vec->workers[k].thread, NULL);
}

EnvShape vec_type_shape(const EnvType* type, const double* options) {
    EnvShape s = type->shape(options);
    s.obs_ndim = s.obs_dims[1] > 0 ? 2 : 1;
    if (s.obs_ndim == 1) s.obs_dims[1] = 1;
    s.obs_size = s.obs_dims[0] * s.obs_dims[1];
    if (s.action_n > 0) s.action_dim = 1;
    if (s.num_agents < 1) s.num_agents = 1;
    return s;
}

void vec_obs_bounds(const EnvShape* shape, float* low, float* high) {
    for (int j = 0; j < shape->obs_size; j++) {
        low[j] = shape->obs_low;
        high[j] = shape->obs_high;
    }
    for (int k = 0; k < ENV_MAX_RANGES; k++) {
        const EnvRange* r = &shape->obs_ranges[k];
        for (int j = r->first; j < r->first + r->count; j++) {
            if (j < 0 || j >= shape->obs_size) continue; /* a range past the end: ignore */
            low[j] = r->low;
            high[j] = r->high;
        }
    }
}

/* Point the EnvIO of `io`, a struct for environment i, at environment i's
 * rows of the buffers (the first of its num_agents rows), and give it its
 * options. Its RNG and log are left alone (snapshots keep them). */
static void attach_env(const VecEnv* vec, EnvIO* io, int i) {
    const EnvShape* s = &vec->shape;
    size_t row = (size_t)i * s->num_agents;
    if (s->obs_is_uint8) io->observations_u8 = (unsigned char*)vec->observations + row * s->obs_size;
    else io->observations = (float*)vec->observations + row * s->obs_size;
    if (s->action_n > 0) io->action = (const int*)vec->actions + row;
    else io->action_continuous = (const float*)vec->actions + row * s->action_dim;
    io->reward = vec->rewards + row;
    io->terminal = vec->terminals + row;
    io->truncation = vec->truncations + row;
    vec->type->init(io, vec->options);
}

/* The same for environment i's own struct. */
static void init_env(VecEnv* vec, int i) { attach_env(vec, (EnvIO*)vec_env(vec, i), i); }

int vec_num_rows(const VecEnv* vec) { return vec->num_envs * vec->shape.num_agents; }

VecEnv* vec_create(const EnvType* type, const double* options, int num_envs, int num_threads,
                   void* observations, void* actions, float* rewards, unsigned char* terminals,
                   unsigned char* truncations, uint64_t seed) {
    if (type == NULL || num_envs < 1 || num_threads < 1) return NULL;
    if (num_threads > num_envs) num_threads = num_envs;
    VecEnv* vec = (VecEnv*)calloc(1, sizeof(VecEnv));
    if (vec == NULL) return NULL;
    vec->type = type;
    vec->shape = vec_type_shape(type, options);
    vec->num_envs = num_envs;
    for (int k = 0; k < type->num_options && k < ENV_MAX_OPTIONS; k++) vec->options[k] = options[k];
    vec->observations = observations;
    vec->actions = actions;
    vec->rewards = rewards;
    vec->terminals = terminals;
    vec->truncations = truncations;
    vec->envs = (char*)calloc((size_t)num_envs, type->env_size);
    if (vec->envs == NULL) {
        free(vec);
        return NULL;
    }
    for (int i = 0; i < num_envs; i++) {
        EnvIO* io = (EnvIO*)vec_env(vec, i);
        init_env(vec, i);
        io->rng = rng_seed_for(seed, (uint64_t)i);
        type->reset(io);
        /* Seed again, so that a first vec_reset without a seed starts the
         * same episodes as vec_reset with this seed. */
        io->rng = rng_seed_for(seed, (uint64_t)i);
    }
    size_t rows = (size_t)vec_num_rows(vec);
    memset(rewards, 0, rows * sizeof(float));
    memset(terminals, 0, rows);
    memset(truncations, 0, rows);

    pthread_mutex_init(&vec->mutex, NULL);
    pthread_cond_init(&vec->wake, NULL);
    pthread_cond_init(&vec->done, NULL);
    vec->num_threads = 1;
    if (num_threads > 1) {
        vec->workers = (Worker*)calloc((size_t)num_threads - 1, sizeof(Worker));
        if (vec->workers != NULL) {
            /* Blocks are fixed by num_threads; set it before any start. */
            vec->num_threads = num_threads;
            for (int k = 1; k < num_threads; k++) {
                Worker* w = &vec->workers[k - 1];
                w->vec = vec;
                w->index = k;
                if (pthread_create(&w->thread, NULL, worker_main, w) != 0) break;
                vec->started += 1;
            }
            if (vec->started != num_threads - 1) {
                /* Could not start them all: stop those that did, run inline. */
                stop_workers(vec);
                free(vec->workers);
                vec->workers = NULL;
                vec->started = 0;
                vec->stopping = 0;
                vec->num_threads = 1;
            }
        }
    }
    return vec;
}

void vec_destroy(VecEnv* vec) {
    if (vec == NULL) return;
    if (vec->started > 0) stop_workers(vec);
    pthread_cond_destroy(&vec->done);
    pthread_cond_destroy(&vec->wake);
    pthread_mutex_destroy(&vec->mutex);
    free(vec->workers);
    free(vec->envs);
    free(vec);
}

int vec_num_envs(const VecEnv* vec) { return vec->num_envs; }
int vec_num_threads(const VecEnv* vec) { return vec->num_threads; }
const EnvShape* vec_shape(const VecEnv* vec) { return &vec->shape; }

void* vec_env(VecEnv* vec, int i) { return vec->envs + (size_t)i * vec->type->env_size; }

void vec_reset(VecEnv* vec, int reseed, uint64_t seed) {
    for (int i = 0; i < vec->num_envs; i++) {
        EnvIO* io = (EnvIO*)vec_env(vec, i);
        if (reseed) io->rng = rng_seed_for(seed, (uint64_t)i);
        vec->type->reset(io);
    }
    size_t rows = (size_t)vec_num_rows(vec);
    memset(vec->rewards, 0, rows * sizeof(float));
    memset(vec->terminals, 0, rows);
    memset(vec->truncations, 0, rows);
}

int vec_find_bad_action(const VecEnv* vec, int start, int end, double* bad_value) {
    if (vec->shape.action_n > 0) {
        const int32_t* a = (const int32_t*)vec->actions;
        uint32_t limit = (uint32_t)vec->shape.action_n;
        /* One unsigned compare catches negatives too. First a cheap scan
         * without early exit (vectorizes), then locate the culprit. */
        int any_bad = 0;
        for (int i = start; i < end; i++) any_bad |= (uint32_t)a[i] >= limit;
        if (!any_bad) return -1;
        for (int i = start; i < end; i++) {
            if ((uint32_t)a[i] >= limit) {
                *bad_value = (double)a[i];
                return i;
            }
        }
        return -1;
    }
    const float* a = (const float*)vec->actions;
    long count = (long)end * vec->shape.action_dim;
    for (long j = (long)start * vec->shape.action_dim; j < count; j++) {
        if (!isfinite(a[j])) {
            *bad_value = (double)a[j];
            return (int)(j / vec->shape.action_dim);
        }
    }
    return -1;
}

void vec_step(VecEnv* vec) { vec_step_range(vec, 0, vec->num_envs); }

void vec_step_range(VecEnv* vec, int start, int end) {
    if (vec->num_threads == 1) {
        vec->type->step_range(vec->envs, start, end);
        return;
    }
    pthread_mutex_lock(&vec->mutex);
    vec->range_start = start; /* the workers read these after the wake-up below */
    vec->range_end = end;
    STORE(vec->pending, vec->num_threads - 1);
    STORE(vec->generation, vec->generation + 1);
    pthread_cond_broadcast(&vec->wake);
    pthread_mutex_unlock(&vec->mutex);
    step_block(vec, 0);
    for (int s = 0; s < POOL_SPIN && LOAD(vec->pending) > 0; s++) CPU_RELAX();
    if (LOAD(vec->pending) == 0) return;
    pthread_mutex_lock(&vec->mutex);
    while (LOAD(vec->pending) > 0) pthread_cond_wait(&vec->done, &vec->mutex);
    pthread_mutex_unlock(&vec->mutex);
}

void vec_take_log(VecEnv* vec, double* sums) {
    for (int k = 0; k <= EPISODE_LOG_FIELDS; k++) sums[k] = 0.0;
    for (int i = 0; i < vec->num_envs; i++)
        episode_log_take((EpisodeLog*)((char*)vec_env(vec, i) + vec->type->log_offset), sums);
}

size_t vec_state_size(const VecEnv* vec) { return (size_t)vec->num_envs * vec->type->env_size; }

void vec_get_state(const VecEnv* vec, unsigned char* out) { memcpy(out, vec->envs, vec_state_size(vec)); }

/* Every number of a log is finite, and its episode count is not negative. */
static int log_is_valid(const EpisodeLog* log) {
    const float v[] = {log->perf, log->score, log->episode_return, log->episode_length, log->n};
    for (int k = 0; k < ENV_COUNT(v); k++)
        if (!isfinite(v[k])) return 0;
    return log->n >= 0.0f;
}

int vec_check_state(const VecEnv* vec, const unsigned char* in, const char** bad_member) {
    size_t size = vec->type->env_size;
    /* One struct at a time, in a copy that we may point and initialise (calloc: aligned for any
     * member). */
    void* env = calloc(1, size);
    if (env == NULL) return -2;
    int bad = -1;
    for (int i = 0; i < vec->num_envs && bad < 0; i++) {
        memcpy(env, in + (size_t)i * size, size);
        attach_env(vec, (EnvIO*)env, i); /* pointers from this VecEnv, never from the bytes */
        EpisodeLog log;
        memcpy(&log, (const char*)env + vec->type->log_offset, sizeof log);
        const char* member = log_is_valid(&log) ? vec->type->check_state(env) : "log";
        if (member != NULL) {
            *bad_member = member;
            bad = i;
        }
    }
    free(env);
    return bad;
}

int vec_set_state(VecEnv* vec, const unsigned char* in, const char** bad_member) {
    int bad = vec_check_state(vec, in, bad_member);
    if (bad != -1) return bad;
    memcpy(vec->envs, in, vec_state_size(vec));
    /* The copied structs hold whatever pointers the bytes held: point them at our buffers
     * (init_env only sets pointers and options). */
    for (int i = 0; i < vec->num_envs; i++) init_env(vec, i);
    return -1;
}

void vec_render(const VecEnv* vec, int i, unsigned char* rgb) {
    vec->type->render(vec->envs + (size_t)i * vec->type->env_size, rgb);
}

const EnvField* vec_find_field(const VecEnv* vec, const char* name) {
    for (int k = 0; k < vec->type->num_fields; k++)
        if (strcmp(vec->type->fields[k].name, name) == 0) return &vec->type->fields[k];
    return NULL;
}

int vec_get_field(VecEnv* vec, int i, const char* name, int element, double* value) {
    const EnvField* f = vec_find_field(vec, name);
    if (f == NULL) return -1;
    if (element < 0 || element >= f->count) return -2;
    char* p = (char*)vec_env(vec, i) + f->offset;
    switch (f->kind) {
    case FIELD_FLOAT: { float v; memcpy(&v, p, sizeof v); *value = v; break; }
    case FIELD_INT: { int v; memcpy(&v, p, sizeof v); *value = v; break; }
    case FIELD_DOUBLE: { double v; memcpy(&v, p, sizeof v); *value = v; break; }
    default: *value = ((unsigned char*)p)[element]; break;
    }
    return 0;
}

int vec_set_field(VecEnv* vec, int i, const char* name, int element, double value) {
    const EnvField* f = vec_find_field(vec, name);
    if (f == NULL) return -1;
    if (element < 0 || element >= f->count) return -2;
    char* p = (char*)vec_env(vec, i) + f->offset;
    switch (f->kind) {
    case FIELD_FLOAT: { float v = (float)value; memcpy(p, &v, sizeof v); break; }
    case FIELD_INT: { int v = (int)value; memcpy(p, &v, sizeof v); break; }
    case FIELD_DOUBLE: memcpy(p, &value, sizeof value); break;
    default: ((unsigned char*)p)[element] = (unsigned char)value; break;
    }
    vec->type->refresh(vec_env(vec, i));
    return 0;
}
