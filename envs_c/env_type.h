/* env_type.h - what every environment header tells the vector layer.
 *
 * An environment header (breakout.h, pong.h, ...) defines a struct, its
 * reset/step/render functions, and one `EnvType` value that describes it:
 * sizes, options, where its EpisodeLog sits, and function pointers. The vector layer
 * (vecenv.c) only ever talks to environments through an EnvType.
 *
 * Convention: every environment struct starts with `uint64_t rng`, its own
 * random number generator state, so the vector layer can seed it.
 */
#ifndef PUFFJAX_ENV_TYPE_H
#define PUFFJAX_ENV_TYPE_H

#include <stddef.h>
#include <stdint.h>

#define ENV_MAX_OPTIONS 8

/* One constructor option, e.g. Breakout's frameskip. */
typedef struct EnvOption {
    const char* name;
    double default_value;
    double min_value;
    double max_value;
    int is_int; /* 1: must be an integer (booleans are 0/1 integers) */
    const char* help;
} EnvOption;

/* The shapes of one environment's observation and action, which can depend
 * on the options (e.g. Squared's grid size, Breakout's continuous flag). */
typedef struct EnvShape {
    int obs_ndim;         /* 1 or 2 */
    int obs_dims[2];      /* per environment */
    int obs_is_uint8;     /* 1: uint8 observations, 0: float32 */
    int obs_size;         /* obs_dims[0] * obs_dims[1] (elements) */
    int action_n;         /* > 0: Discrete(action_n), int32 actions */
    int action_dim;       /* action_n == 0: float32 actions of this size in [-1, 1] */
    int render_width;     /* render() gives render_height x render_width x 3 bytes */
    int render_height;
} EnvShape;

/* A named piece of state, for tests and debugging only (get/set by name). */
enum { FIELD_FLOAT = 0, FIELD_INT = 1, FIELD_DOUBLE = 2, FIELD_BYTES = 3 };
typedef struct EnvField {
    const char* name;
    size_t offset; /* offsetof(Struct, member) */
    int kind;      /* FIELD_* */
    int count;     /* array length for FIELD_BYTES, else 1 */
} EnvField;

/* What every environment logs per finished episode, summed until the vector
 * layer takes it (each header documents what perf and episode_length mean
 * for it). */
typedef struct EpisodeLog {
    float perf; /* the task's score normalised to [0, 1] */
    float score;
    float episode_return;
    float episode_length;
    float n; /* number of finished episodes */
} EpisodeLog;

#define EPISODE_LOG_FIELDS 4 /* not counting n */
static const char* const EPISODE_LOG_NAMES[] = {"perf", "score", "episode_return", "episode_length"};

/* Add a log's sums (then n) into sums, and clear it. */
static inline void episode_log_take(EpisodeLog* log, double* sums) {
    sums[0] += log->perf;
    sums[1] += log->score;
    sums[2] += log->episode_return;
    sums[3] += log->episode_length;
    sums[4] += log->n;
    *log = (EpisodeLog){0};
}

typedef struct EnvType {
    const char* name;
    size_t env_size; /* sizeof(the environment struct) */
    int num_options;
    const EnvOption* options;
    size_t log_offset; /* offsetof(the environment struct, its EpisodeLog) */
    int num_fields;
    const EnvField* fields;

    /* Fill *shape for these option values (in the order of `options`). */
    void (*shape)(const double* options, EnvShape* shape);
    /* Set up a zeroed struct once: store the options, and the pointers to
     * this environment's rows of the shared buffers. */
    void (*init)(void* env, const double* options, void* obs, void* action, float* reward,
                 unsigned char* terminal, unsigned char* truncation);
    /* Start a new episode and write its first observation. */
    void (*reset)(void* env);
    /* Step environments [start, end) of an array of structs. */
    void (*step_range)(void* envs, int start, int end);
    /* Rewrite the observation from the state (after a test edited it). */
    void (*refresh)(void* env);
    /* Draw into render_width * render_height * 3 bytes. */
    void (*render)(const void* env, unsigned char* rgb);
} EnvType;

#endif
