/* The fused LAB binarize-and-pack with AVX-512 (lab_pack/portable.h explains the maths and the layout):
 * the same float32 operations in the same order, 16 pixels per zmm, and the bits gathered without leaving
 * the registers: the comparison gives a 16-bit mask, whose complement (the -1 pixels) ORs the channel's bit
 * into two zmm of 8 words with one masked OR each.  When both maps of a pair read the same input channel (the
 * paper's pairing), the nine windows are loaded once for both responses. */
#ifndef MINILAB_LAB_PACK_AVX512_H
#define MINILAB_LAB_PACK_AVX512_H
#include <immintrin.h>
#define MINILAB_LAB_PACK_SIMD 1
#include "portable.h"

/* the nine taps of one kernel applied to windows t[0..8], tap by tap, then the bias */
static inline __m512 lab_response16(const __m512 *t, const float *k, float bias) {
    __m512 r = _mm512_mul_ps(_mm512_set1_ps(k[0]), t[0]);
    for (int u = 1; u < 9; u++) r = _mm512_add_ps(r, _mm512_mul_ps(_mm512_set1_ps(k[u]), t[u]));
    return _mm512_add_ps(r, _mm512_set1_ps(bias));
}

static inline void lab_windows16(const float *xp, int64_t pitch, __m512 *t) {
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++) t[3 * u + v] = _mm512_loadu_ps(xp + u * pitch + v);
}

static void lab_pack_blocks(const float *restrict xp, int64_t plane, int64_t c, int64_t h, int64_t w,
                            const float *restrict kernels, const float *restrict bias, float beta,
                            const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                            uint64_t *restrict out, int64_t p) {
    const int64_t cw = (c + 63) / 64, pitch = w + 2;
    const __m512 vbeta = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
    uint64_t word[LAB_PIXELS];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t f0 = blk * LAB_PIXELS;
        for (int64_t q = 0; q < cw; q++) {
            __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
            const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
            for (int64_t ch = q * 64; ch < c1; ch++) {
                const int32_t a0 = map0[ch], a1 = map1[ch];
                __m512 t0[9], t1[9];
                lab_windows16(xp + (a0 / 2) * plane + f0, pitch, t0);
                __m512 r0 = lab_response16(t0, kernels + 9 * a0, bias[a0]), r1;
                if (a1 / 2 == a0 / 2) {
                    r1 = lab_response16(t0, kernels + 9 * a1, bias[a1]);
                } else {
                    lab_windows16(xp + (a1 / 2) * plane + f0, pitch, t1);
                    r1 = lab_response16(t1, kernels + 9 * a1, bias[a1]);
                }
                __mmask16 plus = _mm512_cmp_ps_mask(_mm512_mul_ps(vbeta, _mm512_sub_ps(r1, r0)), zero, _CMP_GT_OQ);
                __mmask16 minus = (__mmask16)~plus;
                const __m512i bit = _mm512_set1_epi64((long long)(1ULL << (ch & 63)));
                lo = _mm512_mask_or_epi64(lo, (__mmask8)minus, lo, bit);
                hi = _mm512_mask_or_epi64(hi, (__mmask8)(minus >> 8), hi, bit);
            }
            _mm512_storeu_si512((void *)word, lo);
            _mm512_storeu_si512((void *)(word + 8), hi);
            lab_store_words(word, f0, h, w, p, cw, q, out);
        }
    }
}

#endif
