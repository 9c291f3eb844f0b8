/* BatchNorm over (N, C, HW) for training (the twin of minilab/ops/norm.py). */
#ifndef MINILAB_TRAIN_BATCHNORM_H
#define MINILAB_TRAIN_BATCHNORM_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- BatchNorm over (N, C, HW): statistics, the affine forward, the training backward --------------------
 *
 * The work is cut into blocks of whole channels, [c0, c1), about BN_BLOCK values of each image (one channel when
 * HW is larger).  One image's block is a contiguous run of (c1 - c0)·HW floats, and every loop below walks the
 * batch over that run with per-position coefficients and accumulators: the inner loops are long and vectorise
 * even for 2×2 maps (the per-channel loop they replace ran 4 floats at a time there), and the accumulators stay
 * in L1.  Blocks are independent, so they can go to different threads.  Each function returns -1 when its
 * scratch cannot be allocated, 0 otherwise. */
enum { BN_BLOCK = 1024 };

static int64_t bn_channels_per_block(int64_t hw) { return hw >= BN_BLOCK ? 1 : BN_BLOCK / hw; }

/* value[c] repeated over the HW positions of each channel c in [c0, c1) */
static void expand_channels(const float *restrict value, int64_t c0, int64_t c1, int64_t hw, float *restrict out) {
    for (int64_t c = c0; c < c1; c++)
        for (int64_t i = 0; i < hw; i++) out[(c - c0) * hw + i] = value[c];
}

/* Σ_i acc[c·hw + i] for each of `channels` channels, in double */
static void sum_positions(const double *restrict acc, int64_t channels, int64_t hw, double *restrict out) {
    for (int64_t c = 0; c < channels; c++) {
        double s = 0.0;
        for (int64_t i = 0; i < hw; i++) s += acc[c * hw + i];
        out[c] = s;
    }
}

/* mean and biased variance of channels [c0, c1): two passes, double accumulation */
static int channel_mean_var_block(const float *restrict x, int64_t n, int64_t c, int64_t hw, int64_t c0,
                                  int64_t c1, float *restrict mean, float *restrict var) {
    const int64_t len = (c1 - c0) * hw, plane = c * hw;
    const double count = (double)n * (double)hw;
    double *acc = malloc((size_t)len * sizeof(double));
    double *mu = malloc((size_t)len * sizeof(double));
    double *per_channel = malloc((size_t)(c1 - c0) * sizeof(double));
    if (!acc || !mu || !per_channel) {
        free(acc); free(mu); free(per_channel);
        return -1;
    }
    memset(acc, 0, (size_t)len * sizeof(double));
    for (int64_t b = 0; b < n; b++) {
        const float *p = x + b * plane + c0 * hw;
        for (int64_t j = 0; j < len; j++) acc[j] += p[j];
    }
    sum_positions(acc, c1 - c0, hw, per_channel);
    for (int64_t ch = c0; ch < c1; ch++) {
        const double m = per_channel[ch - c0] / count;
        mean[ch] = (float)m;
        for (int64_t i = 0; i < hw; i++) mu[(ch - c0) * hw + i] = m;
    }
    memset(acc, 0, (size_t)len * sizeof(double));
    for (int64_t b = 0; b < n; b++) {
        const float *p = x + b * plane + c0 * hw;
        for (int64_t j = 0; j < len; j++) {
            const double d = p[j] - mu[j];
            acc[j] += d * d;
        }
    }
    sum_positions(acc, c1 - c0, hw, per_channel);
    for (int64_t ch = c0; ch < c1; ch++) var[ch] = (float)(per_channel[ch - c0] / count);
    free(acc); free(mu); free(per_channel);
    return 0;
}

/* y = ((x - mean) * invstd) * gamma + beta on channels [c0, c1) — the reference's float32 steps in its order.
 * A channel whose map is long enough to fill vectors (hw >= 16) runs with its four values as scalars; short maps
 * (7 x 7) run over the block's channels as one long loop of expanded values, which vectorises where a loop of
 * 7 x 7 could not.  Both compute the same float32 operations, so the results are the same. */
static int batchnorm_forward_block(const float *restrict x, int64_t n, int64_t c, int64_t hw, int64_t c0, int64_t c1,
                                   const float *restrict mean, const float *restrict invstd,
                                   const float *restrict gamma, const float *restrict beta, float *restrict y) {
    const int64_t len = (c1 - c0) * hw, plane = c * hw;
    if (hw >= 16) {
        for (int64_t b = 0; b < n; b++)
            for (int64_t ch = c0; ch < c1; ch++) {
                const float *p = x + b * plane + ch * hw;
                float *q = y + b * plane + ch * hw;
                const float mu = mean[ch], is = invstd[ch], ga = gamma[ch], be = beta[ch];
                for (int64_t j = 0; j < hw; j++) {
                    const float xhat = (p[j] - mu) * is;
                    q[j] = xhat * ga + be;
                }
            }
        return 0;
    }
    float *coef = malloc(4 * (size_t)len * sizeof(float));
    if (!coef) return -1;
    float *mu = coef, *is = coef + len, *ga = coef + 2 * len, *be = coef + 3 * len;
    expand_channels(mean, c0, c1, hw, mu);
    expand_channels(invstd, c0, c1, hw, is);
    expand_channels(gamma, c0, c1, hw, ga);
    expand_channels(beta, c0, c1, hw, be);
    for (int64_t b = 0; b < n; b++) {
        const float *p = x + b * plane + c0 * hw;
        float *q = y + b * plane + c0 * hw;
        for (int64_t j = 0; j < len; j++) {
            const float xhat = (p[j] - mu[j]) * is[j];
            q[j] = xhat * ga[j] + be[j];
        }
    }
    free(coef);
    return 0;
}

/* Training backward on channels [c0, c1) with x̂ = (x − μ)·invstd recomputed (the same float32 steps as the
 * forward):  dβ = Σ g,  dγ = Σ g·x̂,  dx = invstd·γ·(g − dβ/M − x̂·dγ/M),  M = N·HW. */
static int batchnorm_backward_block(const float *restrict x, const float *restrict g, int64_t n, int64_t c,
                                    int64_t hw, int64_t c0, int64_t c1, const float *restrict mean,
                                    const float *restrict invstd, const float *restrict gamma, float *restrict dx,
                                    float *restrict dgamma, float *restrict dbeta) {
    const int64_t len = (c1 - c0) * hw, plane = c * hw, channels = c1 - c0;
    const double count = (double)n * (double)hw;
    double *acc = malloc(2 * (size_t)len * sizeof(double) + 2 * (size_t)channels * sizeof(double));
    float *coef = malloc(5 * (size_t)len * sizeof(float));
    float *k = malloc(3 * (size_t)channels * sizeof(float));
    if (!acc || !coef || !k) {
        free(acc); free(coef); free(k);
        return -1;
    }
    double *acc_g = acc, *acc_gx = acc + len, *sum_g = acc + 2 * len, *sum_gx = sum_g + channels;
    float *mu = coef, *is = coef + len, *kk = coef + 2 * len, *mg = coef + 3 * len, *mgx = coef + 4 * len;
    float *scale = k, *mean_g = k + channels, *mean_gx = k + 2 * channels;
    expand_channels(mean, c0, c1, hw, mu);
    expand_channels(invstd, c0, c1, hw, is);
    memset(acc, 0, 2 * (size_t)len * sizeof(double));
    for (int64_t b = 0; b < n; b++) {
        const float *p = x + b * plane + c0 * hw, *gp = g + b * plane + c0 * hw;
        for (int64_t j = 0; j < len; j++) {
            const float xhat = (p[j] - mu[j]) * is[j];
            acc_g[j] += gp[j];
            acc_gx[j] += (double)gp[j] * xhat;
        }
    }
    sum_positions(acc_g, channels, hw, sum_g);
    sum_positions(acc_gx, channels, hw, sum_gx);
    for (int64_t ch = c0; ch < c1; ch++) {
        dbeta[ch] = (float)sum_g[ch - c0];
        dgamma[ch] = (float)sum_gx[ch - c0];
        scale[ch - c0] = invstd[ch] * gamma[ch];
        mean_g[ch - c0] = (float)(sum_g[ch - c0] / count);
        mean_gx[ch - c0] = (float)(sum_gx[ch - c0] / count);
    }
    expand_channels(scale, 0, channels, hw, kk);
    expand_channels(mean_g, 0, channels, hw, mg);
    expand_channels(mean_gx, 0, channels, hw, mgx);
    for (int64_t b = 0; b < n; b++) {
        const float *p = x + b * plane + c0 * hw, *gp = g + b * plane + c0 * hw;
        float *d = dx + b * plane + c0 * hw;
        for (int64_t j = 0; j < len; j++) {
            const float xhat = (p[j] - mu[j]) * is[j];
            d[j] = kk[j] * (gp[j] - mg[j] - xhat * mgx[j]);
        }
    }
    free(acc); free(coef); free(k);
    return 0;
}

#endif
