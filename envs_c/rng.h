/* rng.h - a tiny random number generator that every environment owns.
 *
 * Each environment keeps one 64-bit number (its RNG state) and draws from it
 * with splitmix64. Nothing is global, so environments stepped on different
 * threads never share state: the same seed gives the same trajectories
 * whatever the number of threads.
 */
#ifndef PUFFJAX_RNG_H
#define PUFFJAX_RNG_H

#include <stdint.h>

/* Advance the state and return 64 random bits (splitmix64). */
static inline uint64_t rng_next(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A float uniform in [0, 1), using the top 24 bits. */
static inline float rng_float(uint64_t* state) {
    return (float)(rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

/* A float uniform in [lo, hi). */
static inline float rng_uniform(uint64_t* state, float lo, float hi) {
    return lo + (hi - lo) * rng_float(state);
}

/* An integer uniform in [0, n), n > 0 (the modulo bias is negligible). */
static inline int rng_int(uint64_t* state, int n) {
    return (int)((rng_next(state) >> 33) % (uint64_t)n);
}

/* The starting state of environment number `index` for a given user seed.
 * Mixing both through splitmix64 keeps nearby seeds and indices unrelated. */
static inline uint64_t rng_seed_for(uint64_t seed, uint64_t index) {
    uint64_t s = seed ^ 0x5851F42D4C957F2Dull;
    uint64_t a = rng_next(&s);
    s = a ^ (index * 0xD1B54A32D192ED03ull);
    return rng_next(&s);
}

#endif
