/* LAB's binarizer fused into one pass and written straight into packed bits: the inference engine's
 * binarize-and-pack for a LAB layer, in portable C (the loop to read first).
 *
 * For output channel c of an image x (C, H, W), LAB compares two 3x3 depthwise responses of x:
 *   r_a[i][j] = k_a[0]*x[i-1][j-1] + k_a[1]*x[i-1][j] + k_a[2]*x[i-1][j+1]
 *             + k_a[3]*x[i][j-1]   + ...               + k_a[8]*x[i+1][j+1] + bias[a]      (x = 0 outside)
 * for the pair of maps a = map0[c], a' = map1[c] (map a reads input channel a / 2), and the bit is
 *   bit = 1 (the value -1)  unless  beta * (r_a' - r_a) > 0.
 * Those are the training graph's float32 operations in its order — the depthwise sum accumulated tap by tap,
 * then the bias, the difference, the product with beta, the comparison — each one IEEE-rounded (the build
 * forbids FMA contraction), so the bits are exactly the training graph's in eval mode.  The zero padding is
 * read as real zeros, never skipped, for the same reason.
 *
 * Nothing of size 2C x H x W is written.  The input arrives zero-padded, each plane (H + 2) x (W + 2) floats
 * stored row after row (plus slack), so output pixel (i, j)'s window starts at padded position f = i*(W+2) + j
 * and tap (u, v) is at f + u*(W+2) + v: one flat index, whatever the row.  The loop takes LAB_PIXELS
 * consecutive positions at a time (the two positions of each row that fall in the padding are computed and
 * dropped), runs over the 64 channels of one packed word computing both responses in registers, ORs each
 * channel's bits into LAB_PIXELS words, and stores each word once.  Written so that the compiler turns each
 * line of lab_response into one vector instruction.
 *
 * The short way, when a certificate allows it.  In real arithmetic r_a' - r_a is ONE 3x3 response, with the
 * kernel delta = k_a' - k_a and the bias bias[a'] - bias[a] (when both maps read the same input channel, as in
 * the paper's pairing): half the work.  It does not round like the training graph, but its sign is the training
 * graph's wherever it is far enough from zero, and lab_bound below says how far that is.  A window of nine
 * zeros (padding included) is sure too: there both ways give exactly bias[a'] - bias[a].  The blocks where any
 * other pixel is nearer zero than the bound compute both responses exactly as above.  So the bits never
 * change. */
#ifndef MINILAB_LAB_PACK_PORTABLE_H
#define MINILAB_LAB_PACK_PORTABLE_H
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define LAB_PIXELS 16
#define LAB_PLANE_SLACK 32   /* zeros after each padded plane: the last block reads up to LAB_PIXELS + 2 past it */

/* One 3x3 response at LAB_PIXELS consecutive padded positions, in the training graph's order. */
static inline void lab_response(const float *restrict xp, int64_t pitch, const float *restrict k, float bias,
                                float *restrict r) {
    const float *x0 = xp, *x1 = xp + pitch, *x2 = xp + 2 * pitch;
    for (int j = 0; j < LAB_PIXELS; j++)
        r[j] = k[0] * x0[j] + k[1] * x0[j + 1] + k[2] * x0[j + 2]
             + k[3] * x1[j] + k[4] * x1[j + 1] + k[5] * x1[j + 2]
             + k[6] * x2[j] + k[7] * x2[j + 1] + k[8] * x2[j + 2] + bias;
}

/* Whether the 3x3 window at padded position xp (rows `pitch` apart) holds nine zeros (either sign). */
static inline int lab_window_is_zero(const float *restrict xp, int64_t pitch) {
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++)
            if (xp[u * pitch + v] != 0.0f) return 0;
    return 1;
}

/* The largest |x| of a plane, or infinity if the plane holds a NaN or an infinity.  Read as integers: with the
 * sign bit cleared, a float's bits order like its value, and NaN and infinity have the largest bits of all
 * (compilers vectorize an integer max, not a float one, whose NaN rules make it order-dependent). */
static inline float lab_plane_max_abs(const float *restrict x, int64_t n) {
    uint32_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bits &= 0x7FFFFFFFu;
        m = bits > m ? bits : m;
    }
    if (m >= 0x7F800000u) return INFINITY;
    float largest;
    memcpy(&largest, &m, sizeof largest);
    return largest;
}

/* The short way's numbers for each output channel, twelve floats: delta[ch] = (k_a'[0..8] - k_a[0..8],
 * b_a' - b_a, K, B), a = map0[ch], a' = map1[ch], with K = sum_t |k_a[t]| + |k_a'[t]| and B = |b_a| + |b_a'|
 * (rounded up, for lab_bound). */
#define LAB_SHORT 12
static inline void lab_differences(int64_t c, const float *restrict kernels, const float *restrict bias,
                                   const int32_t *restrict map0, const int32_t *restrict map1,
                                   float *restrict delta) {
    for (int64_t ch = 0; ch < c; ch++) {
        const float *k0 = kernels + 9 * map0[ch], *k1 = kernels + 9 * map1[ch];
        float *d = delta + LAB_SHORT * ch;
        double k = 0.0;
        for (int t = 0; t < 9; t++) {
            d[t] = k1[t] - k0[t];
            k += fabs((double)k0[t]) + fabs((double)k1[t]);
        }
        d[9] = bias[map1[ch]] - bias[map0[ch]];
        d[10] = (float)(k * (1.0 + 1e-6));
        d[11] = (float)((fabs((double)bias[map0[ch]]) + fabs((double)bias[map1[ch]])) * (1.0 + 1e-6));
    }
}

/* How far from zero the short difference d = sum_t delta[t] * x_t + (b1 - b0) of one plane must be to have the
 * training graph's sign, with M = lab_plane_max_abs(plane), K and B from lab_differences, and A = lab_floor(beta);
 * INFINITY when no distance is safe (a NaN or an infinity in the plane, values near float32's range).
 *
 * Why.  Any float32 evaluation of a 9-tap response plus its bias (any order of the sums, products rounded or
 * fused) lies within g10 * T_a of the real value, T_a = sum_t |k_a[t]| |x_t| + |b_a| and g10 = 10u / (1 - 10u),
 * u = 2^-24 [Higham, Accuracy and Stability of Numerical Algorithms, sec. 3.1]; so the training graph's
 * r1 - r0 is within g10 * T of the real difference D, T = T_0 + T_1.  d, with delta and b1 - b0 rounded once
 * more, is within about 11u * T of D.  Hence |d - (r1 - r0)| < 32u * T, and |d| > 64u * T + A leaves
 * r1 - r0 nonzero, of d's sign and larger than A.  T itself is at most K * M + B.  Computed in double. */
static inline float lab_bound(float m, const float *restrict delta, double floor) {
    const double total = (double)delta[10] * (double)m + (double)delta[11];
    if (!(total < 1e37)) return INFINITY;   /* also keeps every partial sum away from overflow */
    return (float)((0x1p-18 * total + floor) * (1.0 + 1e-6));      /* 64u = 2^-18; rounded up, not to nearest */
}

/* A = max(2^-100 / |beta|, 1e-37): beta * (r1 - r0) stays clear of underflow to 0 when |r1 - r0| > A, and 1e-37
 * is far above the absolute error of products in the subnormal range.  INFINITY (never the short way) for beta
 * 0, NaN or infinite. */
static inline double lab_floor(float beta) {
    if (!(fabsf(beta) > 0.0f) || !(fabsf(beta) <= FLT_MAX)) return INFINITY;
    const double a = 0x1p-100 / fabs((double)beta);
    return a > 1e-37 ? a : 1e-37;
}

/* Stores the words of positions f0 .. f0 + LAB_PIXELS - 1 that are output pixels (not padding, not past the
 * last row) into the packed image out (H + 2p, W + 2p, CW), word q. */
static inline void lab_store_words(const uint64_t *restrict word, int64_t f0, int64_t h, int64_t w, int64_t p,
                                   int64_t cw, int64_t q, uint64_t *restrict out) {
    int64_t i = f0 / (w + 2), j = f0 % (w + 2);       /* position f0 + l, walked without a division each */
    for (int l = 0; l < LAB_PIXELS && i < h; l++) {
        if (j < w) out[((i + p) * (w + 2 * p) + j + p) * cw + q] = word[l];
        if (++j == w + 2) { j = 0; i++; }
    }
}

#ifndef MINILAB_LAB_PACK_SIMD   /* avx512.h and neon.h include this file for its helpers and define their own */
/* Blocks [b0, b1) of LAB_PIXELS padded positions of one image.  xp: the C zero-padded planes, `plane` floats
 * apart; kernels (2C, 9) and bias (2C,) of the depthwise maps; map0 / map1 (C,): the pair each output channel
 * compares.  out: the image's packed words (H + 2p, W + 2p, CW); pixel (i, j), channel c -> bit c % 64 of
 * out[((i + p) * (W + 2p) + j + p) * CW + c / 64].  delta (C, LAB_SHORT) from lab_differences and bound (C,) from
 * lab_bound for this image allow the short way; bound NULL: always the exact responses. */
static void lab_pack_blocks(const float *restrict xp, int64_t plane, int64_t c, int64_t h, int64_t w,
                            const float *restrict kernels, const float *restrict bias, float beta,
                            const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                            uint64_t *restrict out, int64_t p, const float *restrict delta,
                            const float *restrict bound) {
    const int64_t cw = (c + 63) / 64;
    float r0[LAB_PIXELS], r1[LAB_PIXELS];
    uint64_t word[LAB_PIXELS];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t f0 = blk * LAB_PIXELS;
        for (int64_t q = 0; q < cw; q++) {
            memset(word, 0, sizeof(word));
            const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
            for (int64_t ch = q * 64; ch < c1; ch++) {
                const int32_t a0 = map0[ch], a1 = map1[ch];
                const int shift = (int)(ch & 63);
                if (bound != NULL && a0 / 2 == a1 / 2) {          /* the short way, if every pixel is sure */
                    lab_response(xp + (a0 / 2) * plane + f0, w + 2, delta + LAB_SHORT * ch, delta[LAB_SHORT * ch + 9], r0);
                    const float *window = xp + (a0 / 2) * plane + f0;
                    int sure = 1;
                    for (int j = 0; j < LAB_PIXELS; j++)
                        sure &= fabsf(r0[j]) > bound[ch] || lab_window_is_zero(window + j, w + 2);
                    if (sure) {
                        for (int j = 0; j < LAB_PIXELS; j++)
                            word[j] |= (uint64_t)!(beta * r0[j] > 0.0f) << shift;
                        continue;
                    }
                }
                lab_response(xp + (a0 / 2) * plane + f0, w + 2, kernels + 9 * a0, bias[a0], r0);
                lab_response(xp + (a1 / 2) * plane + f0, w + 2, kernels + 9 * a1, bias[a1], r1);
                for (int j = 0; j < LAB_PIXELS; j++)
                    word[j] |= (uint64_t)!(beta * (r1[j] - r0[j]) > 0.0f) << shift;
            }
            lab_store_words(word, f0, h, w, p, cw, q, out);
        }
    }
}
#endif

#ifndef MINILAB_LAB_PACK_AVX512_H
static inline int lab_short_way_pays(int64_t h, int64_t w) { (void)h; (void)w; return 1; }
#endif

#ifndef LAB_PACK_PADDED   /* avx512.h reads the input as it is, with masked loads */
#define LAB_PACK_PADDED 1     /* lab_pack_blocks reads the zero-padded copy described above */
/* How many blocks cover an image's output positions. */
static inline int64_t lab_blocks(int64_t c, int64_t h, int64_t w) {
    (void)c;
    return (h * (w + 2) + LAB_PIXELS - 1) / LAB_PIXELS;
}
#endif

#endif
