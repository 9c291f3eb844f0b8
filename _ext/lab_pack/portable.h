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
 * line of lab_response into one vector instruction. */
#ifndef MINILAB_LAB_PACK_PORTABLE_H
#define MINILAB_LAB_PACK_PORTABLE_H
#include <stdint.h>
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
 * out[((i + p) * (W + 2p) + j + p) * CW + c / 64]. */
static void lab_pack_blocks(const float *restrict xp, int64_t plane, int64_t c, int64_t h, int64_t w,
                            const float *restrict kernels, const float *restrict bias, float beta,
                            const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                            uint64_t *restrict out, int64_t p) {
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
                lab_response(xp + (a0 / 2) * plane + f0, w + 2, kernels + 9 * a0, bias[a0], r0);
                lab_response(xp + (a1 / 2) * plane + f0, w + 2, kernels + 9 * a1, bias[a1], r1);
                const int shift = (int)(ch & 63);
                for (int j = 0; j < LAB_PIXELS; j++)
                    word[j] |= (uint64_t)!(beta * (r1[j] - r0[j]) > 0.0f) << shift;
            }
            lab_store_words(word, f0, h, w, p, cw, q, out);
        }
    }
}
#endif

#ifndef LAB_PACK_PADDED   /* avx512.h reads the input as it is, with masked loads */
#define LAB_PACK_PADDED 1     /* lab_pack_blocks reads the zero-padded copy described above */
/* How many blocks cover an image's output positions. */
static inline int64_t lab_blocks(int64_t h, int64_t w) { return (h * (w + 2) + LAB_PIXELS - 1) / LAB_PIXELS; }
#endif

#endif
