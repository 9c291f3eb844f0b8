/* Depthwise 3x3 convolution on one (input plane, kernel) pair — LAB's hot spot.
 * x is a padded plane of width xw; y / g are (oh, ow) planes; w9 the 3x3 kernel, row-major.
 * The forward adds the nine products tap by tap (row-major) and the bias last: the NumPy reference's order
 * (minilab/ops/conv.py's depthwise_forward), so both give the same float32 bits.
 * Stride-1 loops are written so that GCC vectorises them (no loop-carried dependences, 8 independent partial
 * sums for the kernel gradient, since float reductions are not reordered without -ffast-math). */
#ifndef MINILAB_DEPTHWISE_H
#define MINILAB_DEPTHWISE_H
#include <stdint.h>

static void dw3x3_forward_plane(const float *restrict x, int64_t xw, const float *restrict w9, float bias,
                                float *restrict y, int64_t oh, int64_t ow, int64_t sh, int64_t sw) {
    for (int64_t i = 0; i < oh; i++) {
        const float *r0 = x + i * sh * xw, *r1 = r0 + xw, *r2 = r1 + xw;
        float *yr = y + i * ow;
        if (sw == 1) {
            for (int64_t j = 0; j < ow; j++)
                yr[j] = w9[0] * r0[j] + w9[1] * r0[j + 1] + w9[2] * r0[j + 2]
                      + w9[3] * r1[j] + w9[4] * r1[j + 1] + w9[5] * r1[j + 2]
                      + w9[6] * r2[j] + w9[7] * r2[j + 1] + w9[8] * r2[j + 2] + bias;
        } else {
            for (int64_t j = 0; j < ow; j++) {
                int64_t q = j * sw;
                yr[j] = w9[0] * r0[q] + w9[1] * r0[q + 1] + w9[2] * r0[q + 2]
                      + w9[3] * r1[q] + w9[4] * r1[q + 1] + w9[5] * r1[q + 2]
                      + w9[6] * r2[q] + w9[7] * r2[q + 1] + w9[8] * r2[q + 2] + bias;
            }
        }
    }
}

/* dw9 += sum_{i,j} g[i,j] * x[i*sh+u, j*sw+v];  dx[i*sh+u, j*sw+v] += g[i,j] * w9[u,v] */
static void dw3x3_backward_plane(const float *restrict x, float *restrict dx, int64_t xw, const float *restrict w9,
                                 const float *restrict g, double *restrict dw9, int64_t oh, int64_t ow, int64_t sh,
                                 int64_t sw) {
    for (int u = 0; u < 3; u++) {
        for (int v = 0; v < 3; v++) {
            float wv = w9[u * 3 + v];
            float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            float tail = 0;
            for (int64_t i = 0; i < oh; i++) {
                const float *gr = g + i * ow;
                const float *xr = x + (i * sh + u) * xw + v;
                float *dxr = dx + (i * sh + u) * xw + v;
                if (sw == 1) {
                    int64_t j = 0;
                    for (; j + 8 <= ow; j += 8)
                        for (int l = 0; l < 8; l++) part[l] += gr[j + l] * xr[j + l];
                    for (; j < ow; j++) tail += gr[j] * xr[j];
                    for (j = 0; j < ow; j++) dxr[j] += gr[j] * wv;
                } else {
                    for (int64_t j = 0; j < ow; j++) {
                        tail += gr[j] * xr[j * sw];
                        dxr[j * sw] += gr[j] * wv;
                    }
                }
            }
            double s = tail;
            for (int l = 0; l < 8; l++) s += part[l];
            dw9[u * 3 + v] += s;
        }
    }
}
#endif
