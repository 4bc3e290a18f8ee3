/* env_type.h - what every environment header tells the vector layer.
 *
 * An environment is one header, envs_c/envs/foo.h, and nothing else. The
 * names it defines start with the file name (Foo for its struct, FOO_ for
 * its constants, foo_ for the rest). It defines
 *   - the struct Foo. Its first member is `EnvIO io` (below), which the
 *     vector layer fills in: the env reads *env->io.action and writes
 *     env->io.observations[...], *env->io.reward, ... Its last member is
 *     `EpisodeLog log`, to which it adds each finished episode with
 *     episode_log_add (last, away from the fields every step touches),
 *   - six typed functions:
 *       void foo_init(Foo* env, const double* options)  store the options
 *       void foo_reset(Foo* env)                        start an episode
 *       void foo_step(Foo* env)                         one step
 *       void foo_write_observation(Foo* env)            observation from the
 *           state; also called after a test edited the state (EnvField)
 *       void foo_render(const Foo* env, unsigned char* rgb)
 *       const char* foo_check_state(const Foo* env)     NULL if a restored
 *           state is safe to step, else the name of a member out of bounds
 *           (see "Restoring a saved state" below)
 *   - EnvShape foo_shape(const double* options): shapes and bounds,
 *   - static const EnvOption foo_options[]: its options, which reach
 *     foo_init and foo_shape as doubles, in this order,
 *   - static const EnvField foo_fields[]: named pieces of its state, which
 *     tests read and write by name,
 *   - and last the line PUFFJAX_ENV(Foo, foo). It defines foo_type, the
 *     EnvType the vector layer steps (named "foo").
 * An environment without options or without fields ends with the longer
 * form PUFFJAX_ENV_TABLES(Foo, foo, options, num_options, fields,
 * num_fields) instead, NULL, 0 standing for a table it has not got (see
 * tests/c/coin.h). envs/memory.h is the shortest complete example.
 *
 * Many agents: an environment with K agents (EnvShape.num_agents = K) owns
 * K consecutive rows of every buffer, and its EnvIO points at the first: agent
 * k reads action[k] and writes observations[k * obs_size + j], reward[k],
 * terminal[k] and truncation[k]. Its agents step together (one foo_step).
 * envs/snake.h is the example.
 *
 * Restoring a saved state: a snapshot (vec_get_state) is the raw bytes of
 * the structs, and a checkpoint file that holds one may be damaged or
 * crafted. Before anything is restored, the vector layer takes each
 * environment's bytes aside, points their EnvIO at this environment's rows
 * (pointers are never taken from the bytes; the RNG is), stores this vector's
 * options with foo_init, checks that the EpisodeLog holds finite numbers, and
 * calls foo_check_state. Only if every environment passes is anything
 * copied; otherwise the caller gets the environment's index and the name
 * foo_check_state returned. So foo_check_state checks every member that
 * foo_init does not set, one ENV_CHECK (below) each, with bounds that
 *   - keep every array index, cell number and count inside its array (the
 *     options are already this environment's own, so bounds may use them:
 *     ENV_CHECK(env, row, 0, env->size - 1)),
 *   - keep floats finite (NaN fails every ENV_CHECK) and small enough that
 *     the environment's arithmetic stays defined (e.g. a position that is
 *     converted to an int),
 *   - keep counters that only grow (frames, hits) at most ENV_MAX_COUNT,
 *   - and admit every state the environment can be in between two steps,
 *     or a good checkpoint is refused.
 * Members that are never read (spare array entries, agents beyond the
 * option's count) need no check. envs/squared.h is a short example.
 *
 * Out of tree: a header like these, kept anywhere, builds against the copies
 * of env_type.h, rng.h and render.h that puffjax installs (include them as
 * "puffjax/env_type.h", ...); puffjax.envs.make("path/to/foo.h") compiles it
 * into a shared library that exports puffjax_env_type() and
 * puffjax_env_abi() (PUFFJAX_ENV_ABI, below), and steps it with this same
 * vector layer. See examples/walker.h.
 *
 * The registry: envs_c/gen_registry.py lists the headers in envs/ and writes
 * env_registry.h (their #includes and the table of their foo_types, sorted by
 * file name), which vecenv.c includes. CMake runs it when it configures, and
 * configures again when a header is added or removed; the sanitizer test,
 * which builds with plain gcc, runs the same script.
 */
#ifndef PUFFJAX_ENV_TYPE_H
#define PUFFJAX_ENV_TYPE_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>

#define ENV_MAX_OPTIONS 8
#define ENV_MAX_RANGES 4

/* The version of the structs below as a compiled library sees them: raise it
 * whenever EnvIO, EnvShape, EnvType or EpisodeLog change, so that an
 * out-of-tree environment built against other headers is refused. */
#define PUFFJAX_ENV_ABI 3

/* The number of entries of a static array. */
#define ENV_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* In foo_check_state: return the member's name (as written, e.g.
 * "bricks[i]") unless lo <= env->member <= hi. NaN is never in bounds. */
#define ENV_CHECK(env, member, lo, hi)                                                                 \
    do {                                                                                               \
        if (!((env)->member >= (lo) && (env)->member <= (hi))) return #member;                         \
    } while (0)

/* The same for a float or double that only has to be a finite float. */
#define ENV_CHECK_FINITE(env, member) ENV_CHECK(env, member, -FLT_MAX, FLT_MAX)

/* The bound of a counter that only grows (frames, hits) in foo_check_state:
 * far above what any episode reaches, and far enough below INT_MAX that
 * stepping on cannot overflow. */
#define ENV_MAX_COUNT (1 << 30)

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

/* Add one finished episode to a log (an environment calls this when an
 * episode ends). */
static inline void episode_log_add(EpisodeLog* log, float perf, float score, float episode_return,
                                   float episode_length) {
    log->perf += perf;
    log->score += score;
    log->episode_return += episode_return;
    log->episode_length += episode_length;
    log->n += 1.0f;
}

/* Add a log's sums (then n) into sums, and clear it. */
static inline void episode_log_take(EpisodeLog* log, double* sums) {
    sums[0] += log->perf;
    sums[1] += log->score;
    sums[2] += log->episode_return;
    sums[3] += log->episode_length;
    sums[4] += log->n;
    *log = (EpisodeLog){0};
}

/* The first member of every environment struct. The vector layer seeds the
 * RNG and points the buffer pointers at this environment's rows of the
 * shared buffers (see vecenv.h), so a header never has to. Each union holds
 * one pointer, seen with the type that the environment's shape says: use
 * observations_u8 if obs_is_uint8, and action_continuous if action_n is 0.
 * With K agents each pointer is the first of K rows (see "Many agents"). */
typedef struct EnvIO {
    uint64_t rng; /* this environment's random numbers (rng.h) */
    union {
        float* observations;
        unsigned char* observations_u8;
    };
    union {
        const int* action;              /* Discrete: one int */
        const float* action_continuous; /* Box: action_dim floats */
    };
    float* reward;
    unsigned char* terminal;
    unsigned char* truncation;
} EnvIO;

/* One constructor option, e.g. Breakout's frameskip. */
typedef struct EnvOption {
    const char* name;
    double default_value;
    double min_value;
    double max_value;
    int is_int; /* 1: must be an integer (booleans are 0/1 integers) */
    const char* help;
} EnvOption;

/* Observation elements [first, first + count) lie in [low, high]. */
typedef struct EnvRange {
    int first;
    int count;
    float low;
    float high;
} EnvRange;

/* The shapes of one environment's observation and action, and the bounds of
 * its observation elements (Python builds the gymnasium spaces from them).
 * They can depend on the options (e.g. Squared's grid size, Breakout's
 * continuous flag). A header fills the first group; the vector layer
 * (vec_type_shape) fills the second. */
typedef struct EnvShape {
    int obs_dims[2];   /* {n} for n elements, or {rows, cols} */
    int obs_is_uint8;  /* 1: uint8 observations, 0: float32 */
    float obs_low;     /* every observation element lies in [obs_low, obs_high]... */
    float obs_high;
    EnvRange obs_ranges[ENV_MAX_RANGES]; /* ...except these (unused ones have count 0) */
    int action_n;      /* > 0: Discrete(action_n), int32 actions */
    int action_dim;    /* action_n == 0: float32 actions of this size in [-1, 1] */
    int render_width;  /* render() gives render_height x render_width x 3 bytes */
    int render_height;
    int num_agents;    /* agents per environment, each one buffer row (0 means 1) */

    int obs_ndim;      /* 1 or 2 */
    int obs_size;      /* obs_dims[0] * obs_dims[1] (elements) */
} EnvShape;

/* A named piece of state, for tests and debugging only (get/set by name). */
enum { FIELD_FLOAT = 0, FIELD_INT = 1, FIELD_DOUBLE = 2, FIELD_BYTES = 3 };
typedef struct EnvField {
    const char* name;
    size_t offset; /* offsetof(Struct, member) */
    int kind;      /* FIELD_* */
    int count;     /* array length for FIELD_BYTES, else 1 */
} EnvField;

typedef struct EnvType {
    const char* name;  /* as in puffjax.envs.make(name) */
    size_t env_size;   /* sizeof(the environment struct) */
    size_t log_offset; /* offsetof(the environment struct, log) */
    const EnvOption* options;
    int num_options;
    const EnvField* fields;
    int num_fields;

    /* Shapes and bounds for these option values (in the order of `options`). */
    EnvShape (*shape)(const double* options);
    /* The rest are made by PUFFJAX_ENV from the typed functions. */
    void (*init)(void* env, const double* options);
    void (*reset)(void* env);
    void (*step_range)(void* envs, int start, int end); /* envs [start, end) of an array */
    void (*refresh)(void* env); /* rewrite the observation after a test edited the state */
    void (*render)(const void* env, unsigned char* rgb);
    /* NULL if a restored state is valid, else the name of a member out of
     * its bounds (called after init stored the options). */
    const char* (*check_state)(const void* env);
} EnvType;

/* PUFFJAX_ENV_TABLES(Foo, foo, options, num_options, fields, num_fields)
 * defines the EnvType foo_type, named "foo". Its function pointers take
 * void* because the vector layer does not know the struct Foo, so the macro
 * first defines foo_init_any, foo_reset_any, foo_step_range, foo_refresh_any,
 * foo_render_any and foo_check_state_any, each of which just calls the typed
 * function (so the compiler inlines foo_step into the foo_step_range loop).
 * foo_check_state_any takes the typed function's address first, so a header
 * without foo_check_state, or with another signature, does not compile. */
#define PUFFJAX_ENV_TABLES(Struct, prefix, options_table, options_count, fields_table, fields_count)    \
    static void prefix##_init_any(void* env, const double* options) {                                  \
        prefix##_init((Struct*)env, options);                                                          \
    }                                                                                                  \
    static void prefix##_reset_any(void* env) { prefix##_reset((Struct*)env); }                        \
    static void prefix##_step_range(void* envs, int start, int end) {                                  \
        Struct* e = (Struct*)envs;                                                                     \
        for (int i = start; i < end; i++) prefix##_step(&e[i]);                                        \
    }                                                                                                  \
    static void prefix##_refresh_any(void* env) { prefix##_write_observation((Struct*)env); }          \
    static void prefix##_render_any(const void* env, unsigned char* rgb) {                             \
        prefix##_render((const Struct*)env, rgb);                                                      \
    }                                                                                                  \
    static const char* prefix##_check_state_any(const void* env) {                                     \
        const char* (*check)(const Struct*) = prefix##_check_state;                                    \
        return check((const Struct*)env);                                                              \
    }                                                                                                  \
    static const EnvType prefix##_type = {                                                             \
        .name = #prefix,                                                                               \
        .env_size = sizeof(Struct),                                                                    \
        .log_offset = offsetof(Struct, log),                                                           \
        .options = options_table,                                                                      \
        .num_options = options_count,                                                                  \
        .fields = fields_table,                                                                        \
        .num_fields = fields_count,                                                                    \
        .shape = prefix##_shape,                                                                       \
        .init = prefix##_init_any,                                                                     \
        .reset = prefix##_reset_any,                                                                   \
        .step_range = prefix##_step_range,                                                             \
        .refresh = prefix##_refresh_any,                                                               \
        .render = prefix##_render_any,                                                                 \
        .check_state = prefix##_check_state_any,                                                       \
    };

/* PUFFJAX_ENV(Foo, foo): the same, with the tables foo_options and
 * foo_fields. */
#define PUFFJAX_ENV(Struct, prefix)                                                                    \
    PUFFJAX_ENV_TABLES(Struct, prefix, prefix##_options, ENV_COUNT(prefix##_options), prefix##_fields, \
                       ENV_COUNT(prefix##_fields))

#endif
