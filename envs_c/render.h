/* render.h - a tiny software rasteriser: it fills axis-aligned rectangles
 * in an RGB image (3 bytes per pixel, rows top to bottom). Every
 * environment draws itself with these two functions; no window system. */
#ifndef PUFFJAX_RENDER_H
#define PUFFJAX_RENDER_H

#include <math.h>

typedef struct Color {
    unsigned char r, g, b;
} Color;

typedef struct Canvas {
    unsigned char* rgb; /* width * height * 3 bytes */
    int width;
    int height;
} Canvas;

/* Fill the rectangle [x, x + w) x [y, y + h) (pixels, rounded to the
 * nearest integer), clipped to the canvas. Anything outside is ignored,
 * including NaN or huge coordinates. */
static inline void draw_rect(Canvas* c, float x, float y, float w, float h, Color color) {
    float fx0 = x, fy0 = y, fx1 = x + w, fy1 = y + h;
    /* Clip in float first so the int conversions below cannot overflow. */
    if (!(fx0 < (float)c->width && fy0 < (float)c->height && fx1 > 0.0f && fy1 > 0.0f)) return;
    if (fx0 < 0.0f) fx0 = 0.0f;
    if (fy0 < 0.0f) fy0 = 0.0f;
    if (fx1 > (float)c->width) fx1 = (float)c->width;
    if (fy1 > (float)c->height) fy1 = (float)c->height;
    int x0 = (int)lroundf(fx0), y0 = (int)lroundf(fy0);
    int x1 = (int)lroundf(fx1), y1 = (int)lroundf(fy1);
    for (int py = y0; py < y1; py++) {
        unsigned char* row = c->rgb + ((long)py * c->width + x0) * 3;
        for (int px = x0; px < x1; px++) {
            row[0] = color.r;
            row[1] = color.g;
            row[2] = color.b;
            row += 3;
        }
    }
}

/* Paint the whole canvas one colour. */
static inline void clear_canvas(Canvas* c, Color color) {
    draw_rect(c, 0.0f, 0.0f, (float)c->width, (float)c->height, color);
}

#endif
