/* Max and average pooling on one (H, W) plane (the twins of minilab/ops/pool.py). */
#ifndef MINILAB_TRAIN_POOL_H
#define MINILAB_TRAIN_POOL_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "windows.h"

/* ---- max pooling on one (H, W) plane, padding counted as -inf -------------------------------------------
 * The plane is first copied into a padded buffer (ph rows, pw columns of -inf around it) whose rows are split by
 * column phase: padded column q goes to phase q % sw, slot q / sw, each phase `wq` slots wide, a row being
 * sw·wq floats.  Tap v of window j then reads phase v % sw at slot j + v / sw: consecutive windows read
 * consecutive floats, for any stride, and the running maximum of a whole run of windows vectorises.
 * y[i, j] = max over the window; arg[i, j] = u·kw + v of the first maximum (strictly greater wins, the
 * reference's running maximum over taps in row-major order).  NaN anywhere in a window makes y NaN. */
enum { POOL_COLUMNS = 64 };

/* the interior of the padded, phase-split buffer (its -inf border is written once by the caller) */
static void maxpool_fill_plane(const float *restrict x, int64_t h, int64_t w, int ph, int pw, int sw, int64_t wq,
                               float *restrict xp) {
    const int64_t row_len = sw * wq;
    for (int64_t r = 0; r < h; r++) {
        for (int p = 0; p < sw; p++) {
            /* slot k of phase p is padded column k·sw + p, input column k·sw + p − pw: slots [k0, k1) are inside */
            int64_t k0, k1;
            valid_columns(w, sw, pw, p, wq, &k0, &k1);
            float *dst = xp + (r + ph) * row_len + p * wq;
            const float *src = x + r * w + p - pw;
            for (int64_t k = k0; k < k1; k++) dst[k] = src[k * sw];
        }
    }
}

static void maxpool_forward_plane(const float *restrict xp, int64_t wq, int kh, int kw, int sh, int sw,
                                  float *restrict y, int16_t *restrict arg, int64_t oh, int64_t ow) {
    const int64_t row_len = sw * wq;
    float best[POOL_COLUMNS];
    int32_t best_t[POOL_COLUMNS];
    int32_t has_nan[POOL_COLUMNS];
    for (int64_t i = 0; i < oh; i++) {
        for (int64_t j0 = 0; j0 < ow; j0 += POOL_COLUMNS) {
            const int64_t len = ow - j0 < POOL_COLUMNS ? ow - j0 : POOL_COLUMNS;
            const float *first = xp + i * sh * row_len + j0;  /* tap (0, 0): phase 0, slot j */
            for (int64_t j = 0; j < len; j++) {
                best[j] = first[j];
                best_t[j] = 0;
                has_nan[j] = best[j] != best[j];
            }
            for (int u = 0; u < kh; u++) {
                for (int v = 0; v < kw; v++) {
                    const float *src = xp + (i * sh + u) * row_len + (v % sw) * wq + v / sw + j0;
                    const int32_t t = u * kw + v;
                    for (int64_t j = 0; j < len; j++) {
                        const float val = src[j];
                        const int32_t better = val > best[j];
                        best[j] = better ? val : best[j];
                        best_t[j] = better ? t : best_t[j];
                        has_nan[j] |= val != val;
                    }
                }
            }
            for (int64_t j = 0; j < len; j++) y[i * ow + j0 + j] = has_nan[j] ? NAN : best[j];
            if (arg)
                for (int64_t j = 0; j < len; j++) arg[i * ow + j0 + j] = (int16_t)best_t[j];
        }
    }
}

/* dx[window's arg-max cell] += g[i, j] (cells in the padding are dropped) */
static void maxpool_backward_plane(const float *restrict g, const int16_t *restrict arg, int64_t oh, int64_t ow,
                                   int kw, int sh, int sw, int ph, int pw, float *restrict dx, int64_t h,
                                   int64_t w) {
    for (int64_t i = 0; i < oh; i++) {
        for (int64_t j = 0; j < ow; j++) {
            int t = arg[i * ow + j];
            int64_t r = i * sh + t / kw - ph, q = j * sw + t % kw - pw;
            if (r >= 0 && r < h && q >= 0 && q < w) dx[r * w + q] += g[i * ow + j];
        }
    }
}

/* ---- average pooling on one (H, W) plane without padding ---------------------------------------------------
 * y[i, j] = (Σ_{u,v} x[i·sh + u, j·sw + v]) / (kh·kw), the taps added one after another in row-major order and
 * then divided, as the reference's running sum of strided views does: bit-identical. */
/* The 2 × 2 window at stride 2 (every downsampling shortcut of Bi-Real and LAB-BNN) with its strides as
 * constants: the compiler then vectorises the even/odd column loads, which it cannot for strides known only at
 * run time.  The same sum in the same order, so the same bits. */
static void avgpool2x2_forward_plane(const float *restrict x, int64_t w, float count, float *restrict y,
                                     int64_t oh, int64_t ow) {
    for (int64_t i = 0; i < oh; i++) {
        const float *top = x + 2 * i * w, *bottom = top + w;
        float *row = y + i * ow;
        for (int64_t j = 0; j < ow; j++)
            row[j] = (((top[2 * j] + top[2 * j + 1]) + bottom[2 * j]) + bottom[2 * j + 1]) / count;
    }
}

static void avgpool_forward_plane(const float *restrict x, int64_t w, int kh, int kw, int sh, int sw, float count,
                                  float *restrict y, int64_t oh, int64_t ow) {
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2) {
        avgpool2x2_forward_plane(x, w, count, y, oh, ow);
        return;
    }
    for (int64_t i = 0; i < oh; i++) {
        float *row = y + i * ow;
        for (int64_t j = 0; j < ow; j++) row[j] = x[i * sh * w + j * sw];
        for (int u = 0; u < kh; u++)
            for (int v = 0; v < kw; v++) {
                if (u == 0 && v == 0) continue;
                const float *src = x + (i * sh + u) * w + v;
                for (int64_t j = 0; j < ow; j++) row[j] += src[j * sw];
            }
        for (int64_t j = 0; j < ow; j++) row[j] /= count;
    }
}

/* dx[i·sh + u, j·sw + v] += g[i, j] / (kh·kw) for every tap in row-major order; dx starts at zero */
static void avgpool_backward_plane(const float *restrict g, int64_t oh, int64_t ow, int kh, int kw, int sh, int sw,
                                   float count, float *restrict dx, int64_t w) {
    for (int u = 0; u < kh; u++)
        for (int v = 0; v < kw; v++)
            for (int64_t i = 0; i < oh; i++) {
                float *dst = dx + (i * sh + u) * w + v;
                for (int64_t j = 0; j < ow; j++) dst[j * sw] += g[i * ow + j] / count;
            }
}

#endif
