/* Float kernels of the training loop: the fast twins of minilab/ops/{binary,norm,pool,conv}.py and
 * minilab/optim/optimizers.py.  Plain C loops over contiguous float32 arrays that GCC vectorises.
 *
 * Where the NumPy reference is a fixed sequence of float32 operations (sign, the BatchNorm affine, max and average
 * pooling, the magnitude-aware weight quantizer, Adam) the same operations run here in the same order, so results are
 * bit-identical (the build uses -ffp-contract=off: no fused multiply-adds).  Reductions (BatchNorm statistics and
 * its backward sums) accumulate in double, so they agree with NumPy's float32 pairwise sums to float32 tolerance,
 * not bit for bit. */
#ifndef MINILAB_TRAIN_OPS_H
#define MINILAB_TRAIN_OPS_H
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

/* ---- PReLU on one channel's plane: y = x if x > 0 else a·x.  A vector compare and blend: setup.py's
 * -fno-trapping-math lets GCC compute a·x for every value (without it GCC branches on every sign, which random
 * signs mispredict half the time, and the loop runs tens of times slower). */
/* y = max(x, 0) as NumPy's np.maximum(x, 0) gives it: NaN stays NaN, -0.0 becomes +0.0 */
static void relu_f32(const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
}

static void prelu_plane_f32(const float *restrict x, float a, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : a * x[i];
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

/* the output columns j in [0, ow) whose tap v, at stride sw after pw columns of padding, reads inside a row of
 * w values: j in [*j0, *j1) (used by max pooling and im2col / col2im) */
static void valid_columns(int64_t w, int sw, int pw, int v, int64_t ow, int64_t *j0, int64_t *j1) {
    int64_t lo = 0, hi = ow;
    while (lo < ow && lo * sw + v - pw < 0) lo++;
    while (hi > lo && (hi - 1) * sw + v - pw >= w) hi--;
    *j0 = lo;
    *j1 = hi;
}

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
static void avgpool_forward_plane(const float *restrict x, int64_t w, int kh, int kw, int sh, int sw, float count,
                                  float *restrict y, int64_t oh, int64_t ow) {
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

/* ---- Adam --------------------------------------------------------------------------------------------
 * The reference's float32 steps, in its order:  m ← m·β1 + (1−β1)·g;  v ← v·β2 + ((1−β2)·g)·g;
 * m̂ = m / (1−β1ᵗ);  v̂ = v / (1−β2ᵗ);  w ← w − (lr·m̂) / (√v̂ + ε);  then, if clip >= 0, the latent-weight
 * clip w ← min(max(w, −clip), clip) (np.clip's result, NaN included).  Every constant arrives already rounded to
 * float32 from its double value, as NumPy rounds a Python float that meets a float32 array. */
static void adam_update_f32(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
                            int64_t n, float b1, float one_minus_b1, float b2, float one_minus_b2, float bias1,
                            float bias2, float lr, float eps, float clip) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] * b1 + one_minus_b1 * gi;
        float vi = v[i] * b2 + (one_minus_b2 * gi) * gi;
        m[i] = mi;
        v[i] = vi;
        float step = (lr * (mi / bias1)) / (sqrtf(vi / bias2) + eps);
        float wi = w[i] - step;
        if (clip >= 0.0f) wi = wi < -clip ? -clip : (wi > clip ? clip : wi);
        w[i] = wi;
    }
}

#endif
