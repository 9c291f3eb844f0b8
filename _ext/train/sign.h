/* Sign binarization for training: sign(x) with the straight-through estimator's mask, and the
 * magnitude-aware weight quantizer (the twins of minilab/ops/binarizers.py and weight_quantizers.py), with the
 * check that lets a layer take the packed XNOR-popcount forward. */
#ifndef MINILAB_TRAIN_SIGN_H
#define MINILAB_TRAIN_SIGN_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- sign with the STE mask: y = sign(x) (sign(0) = +1), mask = |x| <= clip ------------------------------- */
static void sign_ste_f32(const float *restrict x, float *restrict y, uint8_t *restrict mask, int64_t n,
                         float clip) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v >= 0.0f ? 1.0f : -1.0f;
        mask[i] = (v <= clip) & (v >= -clip);
    }
}

/* g * mask, the STE backward */
static void masked_copy_f32(const float *restrict g, const uint8_t *restrict mask, float *restrict out,
                            int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = mask[i] ? g[i] : 0.0f * g[i];  /* 0·g keeps NumPy's signed zero (g·False = ±0) */
}

/* ---- magnitude-aware sign, one output channel (one row of the (C_out, K) weights) at a time ---------------
 * alpha = mean |w| (double accumulation, 8 partial sums so it vectorises: equal to NumPy's float32 pairwise mean
 * to float32 rounding);  q[k] = alpha * sign(w[k]);  mask[k] = |w[k]| <= 1. */
static float abs_mean_f32(const float *restrict w, int64_t n) {
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0.0;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) part[l] += fabsf(w[k + l]);
    for (; k < n; k++) s += fabsf(w[k]);
    for (int l = 0; l < 8; l++) s += part[l];
    return (float)(s / (double)n);
}

static void magnitude_sign_row_f32(const float *restrict w, float alpha, float *restrict q, uint8_t *restrict mask,
                                   int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        q[k] = w[k] >= 0.0f ? alpha : -alpha;
        mask[k] = fabsf(w[k]) <= 1.0f;
    }
}

/* dw[k] = g[k] * (alpha * mask[k]) — the reference's scale array, never materialised */
static void magnitude_sign_backward_row_f32(const float *restrict g, float alpha, const uint8_t *restrict mask,
                                            float *restrict dw, int64_t n) {
    for (int64_t k = 0; k < n; k++) dw[k] = g[k] * (mask[k] ? alpha : 0.0f);
}

/* ---- the packed-forward precondition: x is ±1 and each row of w is ±(one magnitude) -------------------------
 * Flags are OR-ed over blocks without early exits inside a block, so the loops vectorise. */
static int all_plus_minus_one(const float *restrict x, int64_t n) {
    for (int64_t start = 0; start < n; start += 4096) {
        const int64_t stop = start + 4096 < n ? start + 4096 : n;
        int bad = 0;
        for (int64_t i = start; i < stop; i++) bad |= (x[i] != 1.0f) & (x[i] != -1.0f);
        if (bad) return 0;
    }
    return 1;
}

static int rows_plus_minus_alpha(const float *restrict w, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *wr = w + r * cols;
        const float a = fabsf(wr[0]);
        int bad = 0;
        for (int64_t k = 0; k < cols; k++) bad |= fabsf(wr[k]) != a;
        if (bad) return 0;
    }
    return 1;
}

#endif
