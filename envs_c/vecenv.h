/* vecenv.h - N environments stepping in place over shared buffers.
 *
 * The caller (the Python binding, or a C test) owns five contiguous
 * buffers, one row per agent: R = N * K rows for N environments of K agents
 * (EnvShape.num_agents; environment i owns rows i * K .. i * K + K - 1, and
 * its EnvIO points at the first of them):
 *   observations [R, obs_size]  float32, or uint8 (EnvShape.obs_is_uint8)
 *   actions      [R]            int32   (discrete) or [R, action_dim] float32
 *   rewards      [R]            float32
 *   terminals    [R]            uint8 (NumPy bool)
 *   truncations  [R]            uint8 (NumPy bool)
 * Each environment reads its action from its row and writes its results into
 * its rows; nothing is copied. Stepping may be split over T threads: thread k
 * always steps the same contiguous block of environments, and environments
 * share nothing, so results do not depend on T. With T = 1 it is a plain loop
 * on the calling thread.
 */
#ifndef PUFFJAX_VECENV_H
#define PUFFJAX_VECENV_H

#include <stddef.h>
#include <stdint.h>

#include "env_type.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct VecEnv VecEnv;

/* The registered environment types, and lookup by name (NULL if unknown). */
int vec_num_types(void);
const EnvType* vec_type_at(int i);
const EnvType* vec_find_type(const char* name);

/* A type's shapes for these option values, with obs_ndim and obs_size filled
 * in (use this, not type->shape). */
EnvShape vec_type_shape(const EnvType* type, const double* options);

/* The bounds of every observation element (obs_size floats each), from
 * obs_low, obs_high and obs_ranges. */
void vec_obs_bounds(const EnvShape* shape, float* low, float* high);

/* Create N environments over the caller's buffers (see above), seed
 * environment i from (seed, i), and reset them all. `options` holds one
 * value per option of the type, already validated. Returns NULL when out of
 * memory or given num_envs < 1 / num_threads < 1. */
VecEnv* vec_create(const EnvType* type, const double* options, int num_envs, int num_threads,
                   void* observations, void* actions, float* rewards, unsigned char* terminals,
                   unsigned char* truncations, uint64_t seed);
void vec_destroy(VecEnv* vec);

int vec_num_envs(const VecEnv* vec);
int vec_num_rows(const VecEnv* vec); /* num_envs * num_agents */
int vec_num_threads(const VecEnv* vec);
const EnvShape* vec_shape(const VecEnv* vec);

/* Start new episodes everywhere; with reseed, environment i's RNG restarts
 * from (seed, i). Rewards, terminals and truncations are zeroed (all rows). */
void vec_reset(VecEnv* vec, int reseed, uint64_t seed);

/* Row of the first invalid action among buffer rows [start, end) (discrete:
 * outside [0, n); continuous: NaN or infinite), or -1 if all are valid; its
 * value goes to *bad_value. */
int vec_find_bad_action(const VecEnv* vec, int start, int end, double* bad_value);

/* Step every environment once (the actions must have been checked). */
void vec_step(VecEnv* vec);

/* Step environments [start, end) once, on all threads: the rollout steps one
 * group of environments while the policy runs on another. */
void vec_step_range(VecEnv* vec, int start, int end);

/* Sum the logs of episodes finished since the last call into sums
 * (EPISODE_LOG_FIELDS values, then the episode count), and clear them. */
void vec_take_log(VecEnv* vec, double* sums);

/* Snapshots, for exact resume: the N environment structs as vec_state_size
 * bytes. The buffers themselves are not part of the snapshot. */
size_t vec_state_size(const VecEnv* vec);
void vec_get_state(const VecEnv* vec, unsigned char* out);

/* Check a snapshot of vec_state_size bytes, trusting none of it, as
 * env_type.h ("Restoring a saved state") describes: each environment's bytes
 * with this VecEnv's buffer pointers and options, its log finite, and its
 * type's check_state. Returns -1 if every environment is valid; else the
 * index of the first invalid one, with the name of its bad member in
 * *bad_member; or -2 when out of memory. */
int vec_check_state(const VecEnv* vec, const unsigned char* in, const char** bad_member);

/* Restore a snapshot taken from a VecEnv of the same type, options and size
 * (the caller checks those): vec_check_state first, and only if every
 * environment is valid copy them all and point them at this VecEnv's
 * buffers. Returns what vec_check_state returned; on anything but -1 the
 * environments are left as they were. */
int vec_set_state(VecEnv* vec, const unsigned char* in, const char** bad_member);

/* Draw environment i into render_height * render_width * 3 bytes. */
void vec_render(const VecEnv* vec, int i, unsigned char* rgb);

/* Environment i's struct (for the test-only field access below). */
void* vec_env(VecEnv* vec, int i);

/* Test hooks: read or write a named state field (EnvField) of environment
 * i, then refresh its observation. Return 0 on success, -1 for an unknown
 * name, -2 for a bad element index. */
int vec_get_field(VecEnv* vec, int i, const char* name, int element, double* value);
int vec_set_field(VecEnv* vec, int i, const char* name, int element, double value);
const EnvField* vec_find_field(const VecEnv* vec, const char* name);

#ifdef __cplusplus
}
#endif

#endif
