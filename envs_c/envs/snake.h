/* snake.h - many snakes on one grid: a multi-agent environment.
 *
 * `agents` snakes share a width x height grid walled on all sides, with `food`
 * pellets on it. Every snake is one agent (one buffer row); all of them move
 * at once, in agent order, each step.
 *
 * Observation (uint8, 0 or 1): the 7 x 7 cells around the snake's head, turned
 * so that the snake looks "up" (row 0 is 3 cells ahead), with 4 channels per
 * cell: food, wall, this snake's body, another snake's body. 196 values.
 * Actions: Discrete(3): 0 turn left, 1 go straight, 2 turn right.
 * Rewards: +1 for eating a pellet (the snake grows by one cell, up to
 * SNAKE_MAX_LEN, and a new pellet appears), -1 for dying: running into a
 * wall or into any snake's body (its own included). A dead snake's episode
 * ends (terminal) and it starts again at once, one cell long, somewhere free.
 * An episode also ends (truncation) after `max_steps` steps.
 *
 * Log, per snake episode: score = pellets eaten, perf = min(score / 10, 1),
 * episode_return, episode_length (steps).
 */
#ifndef PUFFJAX_SNAKE_H
#define PUFFJAX_SNAKE_H

#include <stddef.h>
#include <string.h>

#include "../env_type.h"
#include "../render.h"
#include "../rng.h"

#define SNAKE_MAX_SIDE 32
#define SNAKE_MAX_AGENTS 8
#define SNAKE_MAX_LEN 64
#define SNAKE_VIEW 3 /* cells seen on each side of the head */
#define SNAKE_SEE (2 * SNAKE_VIEW + 1)
#define SNAKE_CHANNELS 4
#define SNAKE_CELL_PX 8

/* What a grid cell holds: EMPTY, FOOD, or SNAKE_BODY + k for snake k. */
enum { SNAKE_EMPTY = 0, SNAKE_FOOD = 1, SNAKE_BODY = 2 };

/* Headings, clockwise: up, right, down, left. */
static const int SNAKE_DX[4] = {0, 1, 0, -1};
static const int SNAKE_DY[4] = {-1, 0, 1, 0};

typedef struct SnakeAgent {
    short body[SNAKE_MAX_LEN]; /* cell indices, a ring: body[head] is the head */
    int head;                  /* index of the head in body[] */
    int length;
    int heading;               /* 0..3 */
    int steps;                 /* in this episode */
    int eaten;
    float episode_return;
} SnakeAgent;

typedef struct Snake {
    EnvIO io; /* must come first: RNG and buffer rows (see env_type.h) */
    int width, height, agents, food, max_steps;

    unsigned char grid[SNAKE_MAX_SIDE * SNAKE_MAX_SIDE];
    SnakeAgent snake[SNAKE_MAX_AGENTS];

    EpisodeLog log; /* finished episodes of every snake (kept last: see env_type.h) */
} Snake;

static inline void snake_init(Snake* env, const double* options) {
    env->width = (int)options[0];
    env->height = (int)options[1];
    env->agents = (int)options[2];
    env->food = (int)options[3];
    env->max_steps = (int)options[4];
}

/* A random empty cell, or -1 if the grid is full. */
static inline int snake_free_cell(Snake* env) {
    int cells = env->width * env->height;
    for (int tries = 0; tries < 64; tries++) {
        int c = rng_int(&env->io.rng, cells);
        if (env->grid[c] == SNAKE_EMPTY) return c;
    }
    int start = rng_int(&env->io.rng, cells);
    for (int k = 0; k < cells; k++) {
        int c = (start + k) % cells;
        if (env->grid[c] == SNAKE_EMPTY) return c;
    }
    return -1;
}

static inline void snake_place_food(Snake* env) {
    int c = snake_free_cell(env);
    if (c >= 0) env->grid[c] = SNAKE_FOOD; /* a full grid gets no new pellet */
}

/* Snake k starts an episode: one cell long, somewhere free (there is always
 * a free cell: at a reset the grid holds fewer than `agents` cells, and a
 * snake that ends an episode has just given its own cells back). */
static inline void snake_spawn(Snake* env, int k) {
    SnakeAgent* s = &env->snake[k];
    int c = snake_free_cell(env);
    if (c < 0) c = 0;
    s->head = 0;
    s->body[0] = (short)c;
    s->length = 1;
    s->heading = rng_int(&env->io.rng, 4);
    s->steps = 0;
    s->eaten = 0;
    s->episode_return = 0.0f;
    env->grid[c] = (unsigned char)(SNAKE_BODY + k);
}

/* Clear snake k's cells off the grid. */
static inline void snake_remove(Snake* env, int k) {
    SnakeAgent* s = &env->snake[k];
    for (int j = 0; j < s->length; j++) {
        int at = (s->head - j + SNAKE_MAX_LEN) % SNAKE_MAX_LEN;
        env->grid[s->body[at]] = SNAKE_EMPTY;
    }
}

static inline void snake_write_observation(Snake* env) {
    int obs_size = SNAKE_SEE * SNAKE_SEE * SNAKE_CHANNELS;
    for (int k = 0; k < env->agents; k++) {
        const SnakeAgent* s = &env->snake[k];
        unsigned char* o = env->io.observations_u8 + (size_t)k * obs_size;
        memset(o, 0, (size_t)obs_size);
        int hx = s->body[s->head] % env->width, hy = s->body[s->head] / env->width;
        int fx = SNAKE_DX[s->heading], fy = SNAKE_DY[s->heading];               /* forward */
        int rx = SNAKE_DX[(s->heading + 1) % 4], ry = SNAKE_DY[(s->heading + 1) % 4]; /* right */
        for (int row = 0; row < SNAKE_SEE; row++) {
            for (int col = 0; col < SNAKE_SEE; col++) {
                int ahead = SNAKE_VIEW - row, right = col - SNAKE_VIEW;
                int x = hx + ahead * fx + right * rx, y = hy + ahead * fy + right * ry;
                unsigned char* cell = o + (row * SNAKE_SEE + col) * SNAKE_CHANNELS;
                if (x < 0 || y < 0 || x >= env->width || y >= env->height) {
                    cell[1] = 1;
                    continue;
                }
                int v = env->grid[y * env->width + x];
                if (v == SNAKE_FOOD) cell[0] = 1;
                else if (v == SNAKE_BODY + k) cell[2] = 1;
                else if (v >= SNAKE_BODY) cell[3] = 1;
            }
        }
    }
}

static inline void snake_reset(Snake* env) {
    memset(env->grid, SNAKE_EMPTY, sizeof env->grid);
    for (int k = 0; k < env->agents; k++) snake_spawn(env, k);
    for (int f = 0; f < env->food; f++) snake_place_food(env);
    snake_write_observation(env);
}

static inline void snake_end_episode(Snake* env, int k) {
    SnakeAgent* s = &env->snake[k];
    float score = (float)s->eaten;
    episode_log_add(&env->log, score >= 10.0f ? 1.0f : score / 10.0f, score, s->episode_return, (float)s->steps);
    snake_remove(env, k);
    snake_spawn(env, k);
}

static inline void snake_step(Snake* env) {
    for (int k = 0; k < env->agents; k++) {
        SnakeAgent* s = &env->snake[k];
        float reward = 0.0f;
        int dead = 0;
        s->heading = (s->heading + env->io.action[k] + 3) % 4; /* 0 left, 1 straight, 2 right */
        int c = s->body[s->head];
        int x = c % env->width + SNAKE_DX[s->heading], y = c / env->width + SNAKE_DY[s->heading];
        if (x < 0 || y < 0 || x >= env->width || y >= env->height) {
            dead = 1;
        } else {
            int next = y * env->width + x;
            int v = env->grid[next];
            if (v >= SNAKE_BODY) {
                dead = 1;
            } else {
                int grow = v == SNAKE_FOOD && s->length < SNAKE_MAX_LEN;
                if (v == SNAKE_FOOD) {
                    reward = 1.0f;
                    s->eaten += 1;
                }
                if (!grow) { /* the tail leaves its cell */
                    int tail = (s->head - s->length + 1 + SNAKE_MAX_LEN) % SNAKE_MAX_LEN;
                    env->grid[s->body[tail]] = SNAKE_EMPTY;
                    s->length -= 1;
                }
                s->head = (s->head + 1) % SNAKE_MAX_LEN;
                s->body[s->head] = (short)next;
                s->length += 1;
                env->grid[next] = (unsigned char)(SNAKE_BODY + k);
                if (v == SNAKE_FOOD) snake_place_food(env);
            }
        }
        if (dead) reward = -1.0f;
        s->steps += 1;
        s->episode_return += reward;
        env->io.reward[k] = reward;
        env->io.terminal[k] = (unsigned char)dead;
        env->io.truncation[k] = (unsigned char)(!dead && s->steps >= env->max_steps);
        if (dead || s->steps >= env->max_steps) snake_end_episode(env, k);
    }
    snake_write_observation(env);
}

static inline void snake_render(const Snake* env, unsigned char* rgb) {
    static const Color colors[SNAKE_MAX_AGENTS] = {{0, 200, 0},   {0, 120, 255}, {255, 150, 0}, {200, 0, 200},
                                                   {0, 200, 200}, {255, 255, 0}, {255, 80, 80}, {160, 160, 255}};
    Canvas c = {rgb, env->width * SNAKE_CELL_PX, env->height * SNAKE_CELL_PX};
    clear_canvas(&c, (Color){15, 15, 25});
    for (int y = 0; y < env->height; y++) {
        for (int x = 0; x < env->width; x++) {
            int v = env->grid[y * env->width + x];
            if (v == SNAKE_EMPTY) continue;
            Color color = v == SNAKE_FOOD ? (Color){255, 40, 40} : colors[(v - SNAKE_BODY) % SNAKE_MAX_AGENTS];
            draw_rect(&c, (float)(x * SNAKE_CELL_PX + 1), (float)(y * SNAKE_CELL_PX + 1), SNAKE_CELL_PX - 2,
                      SNAKE_CELL_PX - 2, color);
        }
    }
}

/* ---- For the vector layer (see env_type.h) ---- */

static EnvShape snake_shape(const double* options) {
    return (EnvShape){
        .obs_dims = {SNAKE_SEE * SNAKE_SEE * SNAKE_CHANNELS},
        .obs_is_uint8 = 1,
        .obs_low = 0.0f,
        .obs_high = 1.0f,
        .action_n = 3,
        .render_width = (int)options[0] * SNAKE_CELL_PX,
        .render_height = (int)options[1] * SNAKE_CELL_PX,
        .num_agents = (int)options[2],
    };
}

/* A restored state (see env_type.h): every grid cell holds empty, food or
 * one of the snakes; each snake's ring indices lie in its ring, and the
 * cells of its body (they index the grid) on the grid. */
static const char* snake_check_state(const Snake* env) {
    int cells = env->width * env->height;
    for (int c = 0; c < cells; c++) ENV_CHECK(env, grid[c], SNAKE_EMPTY, SNAKE_BODY + env->agents - 1);
    for (int k = 0; k < env->agents; k++) {
        ENV_CHECK(env, snake[k].head, 0, SNAKE_MAX_LEN - 1);
        ENV_CHECK(env, snake[k].length, 1, SNAKE_MAX_LEN);
        ENV_CHECK(env, snake[k].heading, 0, 3);
        ENV_CHECK(env, snake[k].steps, 0, env->max_steps);
        ENV_CHECK(env, snake[k].eaten, 0, ENV_MAX_COUNT);
        ENV_CHECK_FINITE(env, snake[k].episode_return);
        for (int j = 0; j < env->snake[k].length; j++) {
            int at = (env->snake[k].head - j + SNAKE_MAX_LEN) % SNAKE_MAX_LEN; /* as snake_remove walks it */
            ENV_CHECK(env, snake[k].body[at], 0, cells - 1);
        }
    }
    return NULL;
}

static const EnvOption snake_options[] = {
    {"width", 16, 8, SNAKE_MAX_SIDE, 1, "grid width (cells)"},
    {"height", 16, 8, SNAKE_MAX_SIDE, 1, "grid height (cells)"},
    {"agents", 4, 1, SNAKE_MAX_AGENTS, 1, "snakes per grid, each one agent"},
    {"food", 8, 1, 16, 1, "pellets on the grid"},
    {"max_steps", 1000, 1, 1e6, 1, "steps before a snake's episode is truncated"},
};
static const EnvField snake_fields[] = {
    {"grid", offsetof(Snake, grid), FIELD_BYTES, SNAKE_MAX_SIDE * SNAKE_MAX_SIDE},
    {"heading", offsetof(Snake, snake[0].heading), FIELD_INT, 1},
    {"length", offsetof(Snake, snake[0].length), FIELD_INT, 1},
};

PUFFJAX_ENV(Snake, snake)

#endif
