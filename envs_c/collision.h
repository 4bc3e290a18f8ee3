/* collision.h - swept collision of two axis-aligned boxes.
 *
 * A box at (x, y) of size (w, h) moves by (dx, dy) during one frame. We ask
 * at which fraction t of the frame (0 <= t <= 1) it first touches a still
 * box, and on which side. Checking the whole path (not only the end point)
 * means a fast ball can never tunnel through a thin object.
 */
#ifndef PUFFJAX_COLLISION_H
#define PUFFJAX_COLLISION_H

#define COLLISION_FAR 1e30f

enum { COLLISION_SIDE_X = 0, /* hit a left/right face: flip the x velocity */
       COLLISION_SIDE_Y = 1  /* hit a top/bottom face: flip the y velocity */ };

/* Along one axis: the times at which a box at p of size w moving by d starts and stops
 * overlapping a still box at b of size bw. Returns 0 if it never overlaps on this axis. */
static inline int collision_axis(float p, float w, float d, float b, float bw, float* in, float* out) {
    if (d > 0.0f) {
        *in = (b - (p + w)) / d;
        *out = (b + bw - p) / d;
    } else if (d < 0.0f) {
        *in = (b + bw - p) / d;
        *out = (b - (p + w)) / d;
    } else {
        if (p + w <= b || p >= b + bw) return 0; /* never overlap on this axis */
        *in = -COLLISION_FAR;
        *out = COLLISION_FAR;
    }
    return 1;
}

/* Returns 1 and fills *t and *side when the moving box runs into the still
 * box (bx, by, bw, bh) during this frame; returns 0 otherwise. A box that
 * already overlaps the still one, or only grazes it, does not count. */
static inline int collide_boxes(float x, float y, float w, float h, float dx, float dy,
                                float bx, float by, float bw, float bh, float* t, int* side) {
    float tx_in, tx_out, ty_in, ty_out;
    if (!collision_axis(x, w, dx, bx, bw, &tx_in, &tx_out)) return 0;
    if (!collision_axis(y, h, dy, by, bh, &ty_in, &ty_out)) return 0;
    /* The boxes touch once both extents overlap, until either stops. */
    float t_in = tx_in > ty_in ? tx_in : ty_in;
    float t_out = tx_out < ty_out ? tx_out : ty_out;
    if (t_in >= t_out || t_in < 0.0f || t_in > 1.0f) return 0;
    *t = t_in;
    /* The axis that started overlapping last is the face that was hit. */
    *side = tx_in > ty_in ? COLLISION_SIDE_X : COLLISION_SIDE_Y;
    return 1;
}

#endif
