/* The fused LAB binarize-and-pack with AVX-512 (lab_pack/portable.h explains the maths): the same float32
 * operations in the same order, 16 pixels per zmm, and the bits gathered without leaving the registers: the
 * comparison gives a 16-bit mask, whose complement (the -1 pixels) ORs the channel's bit into two zmm of 8
 * words with one masked OR each.  When both maps of a pair read the same input channel (the paper's pairing),
 * the nine windows are loaded once for both responses.
 *
 * Unlike portable.h this path needs no zero-padded copy of the input: a block is 16 consecutive pixels of the
 * image itself (flat index f = i*W + j, across row ends), and each tap's window is one masked load whose
 * lanes outside the image (the padding, or the wrong row at a row's end) read as 0.0f — the same zeros the
 * training graph pads with, so the arithmetic is unchanged.  The nine masks depend only on the block, not on
 * the channel. */
#ifndef MINILAB_LAB_PACK_AVX512_H
#define MINILAB_LAB_PACK_AVX512_H
#include <immintrin.h>
#define MINILAB_LAB_PACK_SIMD 1
#define LAB_PACK_PADDED 0
#include "portable.h"

static inline int64_t lab_blocks(int64_t h, int64_t w) { return (h * w + LAB_PIXELS - 1) / LAB_PIXELS; }

/* the nine taps of one kernel applied to windows t[0..8], tap by tap, then the bias.  With `zero` (not NULL),
 * the lanes of tap u outside zero[u] multiply as 0: their window lanes hold the neighbouring row's pixels (see
 * lab_pack_blocks).  Such a product is +0.0 where the padded reference computes k * 0.0 = ±0.0; adding a zero
 * of either sign gives the same sum unless the sum is itself zero, and the sign of a zero r never reaches the
 * bit (beta * (r1 - r0) > 0 is false for every zero), so the bits are the same. */
static inline __m512 lab_response16(const __m512 *t, const float *k, float bias, const __mmask16 *zero) {
    __m512 r = zero ? _mm512_maskz_mul_ps(zero[0], _mm512_set1_ps(k[0]), t[0]) : _mm512_mul_ps(_mm512_set1_ps(k[0]), t[0]);
    for (int u = 1; u < 9; u++)
        r = _mm512_add_ps(r, zero ? _mm512_maskz_mul_ps(zero[u], _mm512_set1_ps(k[u]), t[u])
                                  : _mm512_mul_ps(_mm512_set1_ps(k[u]), t[u]));
    return _mm512_add_ps(r, _mm512_set1_ps(bias));
}

/* the nine taps' windows of 16 pixels of plane x starting at flat index f0, masked as lab_tap_masks says
 * (mask == NULL: the block lies inside the image, plain loads) */
static inline __attribute__((always_inline)) void lab_windows16(const float *x, int64_t f0, int64_t w,
                                                                const __mmask16 *mask, __m512 *t) {
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++)
            t[3 * u + v] = mask ? _mm512_maskz_loadu_ps(mask[3 * u + v], x + f0 + (u - 1) * w + (v - 1))
                                : _mm512_loadu_ps(x + f0 + (u - 1) * w + (v - 1));
}

/* mask[3u + v] bit l: pixel f0 + l exists and its tap (u, v) falls inside the image.  Walks the 16 pixels
 * (i, j) once, without a division per pixel: a tap's row is inside unless the pixel is in the first (u = 0) or
 * last (u = 2) row, its column unless the pixel is in the first (v = 0) or last (v = 2) column. */
static inline void lab_tap_masks(int64_t f0, int64_t h, int64_t w, __mmask16 *mask) {
    unsigned row[3] = {0, 0, 0}, col[3] = {0, 0, 0};
    int64_t i = f0 / w, j = f0 % w;
    for (int l = 0; l < LAB_PIXELS && i < h; l++) {
        const unsigned bit = 1u << l;
        row[0] |= i >= 1 ? bit : 0;
        row[1] |= bit;
        row[2] |= i + 1 < h ? bit : 0;
        col[0] |= j >= 1 ? bit : 0;
        col[1] |= bit;
        col[2] |= j + 1 < w ? bit : 0;
        if (++j == w) { j = 0; i++; }
    }
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++) mask[3 * u + v] = (__mmask16)(row[u] & col[v]);
}

/* The 16 words (two zmm) of word q of the block at f0: every channel of that word, ORed in as in portable.h. */
static inline __attribute__((always_inline)) void lab_word16(
        const float *restrict x, int64_t plane, int64_t c, int64_t w, const float *restrict kernels,
        const float *restrict bias, __m512 vbeta, const int32_t *restrict map0, const int32_t *restrict map1,
        int64_t f0, int64_t q, const __mmask16 *mask, const __mmask16 *wrapped, uint64_t *word) {
    const __m512 zero = _mm512_setzero_ps();
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
    for (int64_t ch = q * 64; ch < c1; ch++) {
        const int32_t a0 = map0[ch], a1 = map1[ch];
        __m512 t0[9], t1[9];
        lab_windows16(x + (a0 / 2) * plane, f0, w, mask, t0);
        __m512 r0 = lab_response16(t0, kernels + 9 * a0, bias[a0], wrapped), r1;
        if (a1 / 2 == a0 / 2) {
            r1 = lab_response16(t0, kernels + 9 * a1, bias[a1], wrapped);
        } else {
            lab_windows16(x + (a1 / 2) * plane, f0, w, mask, t1);
            r1 = lab_response16(t1, kernels + 9 * a1, bias[a1], wrapped);
        }
        __mmask16 plus = _mm512_cmp_ps_mask(_mm512_mul_ps(vbeta, _mm512_sub_ps(r1, r0)), zero, _CMP_GT_OQ);
        __mmask16 minus = (__mmask16)~plus;
        const __m512i bit = _mm512_set1_epi64((long long)(1ULL << (ch & 63)));
        lo = _mm512_mask_or_epi64(lo, (__mmask8)minus, lo, bit);
        hi = _mm512_mask_or_epi64(hi, (__mmask8)(minus >> 8), hi, bit);
    }
    _mm512_storeu_si512((void *)word, lo);
    _mm512_storeu_si512((void *)(word + 8), hi);
}

/* Blocks [b0, b1) of 16 pixels of one image; x is the image (C, H, W) itself, planes `plane` = H*W floats
 * apart; the other arguments as in portable.h. */
static void lab_pack_blocks(const float *restrict x, int64_t plane, int64_t c, int64_t h, int64_t w,
                            const float *restrict kernels, const float *restrict bias, float beta,
                            const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                            uint64_t *restrict out, int64_t p) {
    const int64_t cw = (c + 63) / 64;
    const __m512 vbeta = _mm512_set1_ps(beta);
    uint64_t word[LAB_PIXELS];
    __mmask16 mask[9];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t f0 = blk * LAB_PIXELS;
        lab_tap_masks(f0, h, w, mask);
        /* inside: every tap of every pixel is in the image (plain loads); rows inside: 16 pixels whose rows above
         * and below exist, so plain loads stay in the plane and only the lanes that wrapped to the next or the
         * previous row must count as 0 (a masked multiply, which costs nothing, instead of masked loads) */
        int inside = 1;
        for (int k = 0; k < 9; k++) inside &= mask[k] == (__mmask16)0xFFFF;
        const int rows_inside = mask[1] == (__mmask16)0xFFFF && mask[7] == (__mmask16)0xFFFF &&
                                f0 - w - 1 >= 0 && f0 + LAB_PIXELS + w < h * w;    /* every load in the plane */
        for (int64_t q = 0; q < cw; q++) {
            if (inside)
                lab_word16(x, plane, c, w, kernels, bias, vbeta, map0, map1, f0, q, NULL, NULL, word);
            else if (rows_inside)
                lab_word16(x, plane, c, w, kernels, bias, vbeta, map0, map1, f0, q, NULL, mask, word);
            else
                lab_word16(x, plane, c, w, kernels, bias, vbeta, map0, map1, f0, q, mask, NULL, word);
            int64_t i = f0 / w, j = f0 % w;            /* pixel f0 + l, walked without a division each */
            for (int l = 0; l < LAB_PIXELS && i < h; l++) {
                out[((i + p) * (w + 2 * p) + j + p) * cw + q] = word[l];
                if (++j == w) { j = 0; i++; }
            }
        }
    }
}

#endif
