/* im2col / col2im for conv2d's GEMMs (the twins of minilab/ops/conv.py's). */
#ifndef MINILAB_TRAIN_IM2COL_H
#define MINILAB_TRAIN_IM2COL_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "windows.h"

/* ---- im2col / col2im for one image, in the transposed ("Caffe") layout --------------------------------------
 * cols[(ch*kh + u)*kw + v][i*OW + j] = x_pad[ch, i*sh + u, j*sw + v]: one row per tap, one column per output
 * pixel, rows `ld` floats apart (a chunk of images shares one matrix, image b starting at column b*OH*OW).
 * x_pad is x (C, H, W) surrounded by ph rows / pw columns of `pad`; the padding is implicit, no padded copy of
 * x is made.  In this layout both the copy and its adjoint run along input rows: contiguous reads and writes
 * (stride 1), which vectorise, and no two iterations of an inner loop touch the same cell. */

/* Output rows [i0, i1) of every tap: one work item when an image is split over threads. */
static void im2col_image_rows(const float *restrict x, int64_t c, int64_t h, int64_t w, int kh, int kw, int sh,
                              int sw, int ph, int pw, float pad, int64_t oh, int64_t ow, float *restrict cols,
                              int64_t ld, int64_t i0, int64_t i1) {
    (void)oh;
    for (int64_t ch = 0; ch < c; ch++) {
        for (int u = 0; u < kh; u++) {
            for (int v = 0; v < kw; v++) {
                int64_t j0, j1;
                valid_columns(w, sw, pw, v, ow, &j0, &j1);
                float *row = cols + ((ch * kh + u) * kw + v) * ld;
                for (int64_t i = i0; i < i1; i++) {
                    float *dst = row + i * ow;
                    const int64_t r = i * sh + u - ph;
                    if (r < 0 || r >= h) {
                        for (int64_t j = 0; j < ow; j++) dst[j] = pad;
                        continue;
                    }
                    const float *src = x + (ch * h + r) * w + v - pw;
                    for (int64_t j = 0; j < j0; j++) dst[j] = pad;
                    if (sw == 1)
                        for (int64_t j = j0; j < j1; j++) dst[j] = src[j];
                    else
                        for (int64_t j = j0; j < j1; j++) dst[j] = src[j * sw];
                    for (int64_t j = j1; j < ow; j++) dst[j] = pad;
                }
            }
        }
    }
}

/* The adjoint: dx[ch, r, q] += cols[tap][pixel] for every tap that reads inside the image (padding taps are
 * dropped). */
static void col2im_image(const float *restrict cols, int64_t ld, int64_t c, int64_t h, int64_t w, int kh, int kw,
                         int sh, int sw, int ph, int pw, int64_t oh, int64_t ow, float *restrict dx) {
    for (int64_t ch = 0; ch < c; ch++) {
        for (int u = 0; u < kh; u++) {
            for (int v = 0; v < kw; v++) {
                int64_t j0, j1;
                valid_columns(w, sw, pw, v, ow, &j0, &j1);
                const float *row = cols + ((ch * kh + u) * kw + v) * ld;
                for (int64_t i = 0; i < oh; i++) {
                    const int64_t r = i * sh + u - ph;
                    if (r < 0 || r >= h) continue;
                    const float *src = row + i * ow;
                    float *dst = dx + (ch * h + r) * w + v - pw;
                    if (sw == 1)
                        for (int64_t j = j0; j < j1; j++) dst[j] += src[j];
                    else
                        for (int64_t j = j0; j < j1; j++) dst[j * sw] += src[j];
                }
            }
        }
    }
}

/* Small maps (a few output columns) make the row loops above all overhead; there a precomputed gather does the
 * same copy: index[t*P + p] is the input offset r*w + q that tap t = u*kw + v of output pixel p reads, or -1 where
 * it reads the padding (P = OH*OW). */
static void tap_indices(int64_t h, int64_t w, int kh, int kw, int sh, int sw, int ph, int pw, int64_t oh,
                        int64_t ow, int32_t *restrict index) {
    for (int u = 0; u < kh; u++)
        for (int v = 0; v < kw; v++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    const int64_t r = i * sh + u - ph, q = j * sw + v - pw;
                    const int inside = r >= 0 && r < h && q >= 0 && q < w;
                    index[((u * kw + v) * oh + i) * ow + j] = inside ? (int32_t)(r * w + q) : -1;
                }
}

static void im2col_gather_image(const float *restrict x, int64_t c, int64_t hw, int taps,
                                const int32_t *restrict index, int64_t P, float pad, float *restrict cols,
                                int64_t ld) {
    for (int64_t ch = 0; ch < c; ch++) {
        const float *plane = x + ch * hw;
        for (int t = 0; t < taps; t++) {
            const int32_t *ix = index + t * P;
            float *dst = cols + (ch * taps + t) * ld;
            for (int64_t p = 0; p < P; p++) {
                const int32_t k = ix[p];
                const float val = plane[k < 0 ? 0 : k];  /* always a valid load; the padding is selected below */
                dst[p] = k < 0 ? pad : val;
            }
        }
    }
}

static void col2im_gather_image(const float *restrict cols, int64_t ld, int64_t c, int64_t hw, int taps,
                                const int32_t *restrict index, int64_t P, float *restrict dx) {
    for (int64_t ch = 0; ch < c; ch++) {
        float *plane = dx + ch * hw;
        for (int t = 0; t < taps; t++) {  /* within one tap no two pixels read the same cell */
            const int32_t *ix = index + t * P;
            const float *src = cols + (ch * taps + t) * ld;
            for (int64_t p = 0; p < P; p++)
                if (ix[p] >= 0) plane[ix[p]] += src[p];
        }
    }
}

#endif
