/* XNOR-popcount GEMM with AVX-512 VPOPCNTDQ (x86-64 CPUs that have it, built with -march=native):
 * portable.h's loop with one popcount instruction for 8 words at a time.
 *
 * 8 rows x 16 channels per step: 16 zmm accumulators of 8 int64; per word of K, 2 loads of B (16 consecutive
 * channels of Bt), 8 broadcasts of A and 16 VPOPCNTQ.  The counts never leave the registers before the output
 * transform, which store_row16 applies to 16 channels at once. */
#ifndef MINILAB_BGEMM_AVX512_H
#define MINILAB_BGEMM_AVX512_H
#include <immintrin.h>
#include "transform.h"

#define MINILAB_BGEMM_ISA "avx512-vpopcntdq"

/* The transform's per-channel steps (up to BatchNorm's beta) on 16 channels of row m at once: each step is one
 * IEEE-rounded float32 vector op (no FMA), so the results are identical to store_row's. */
static inline __m512 transform16(int64_t m, __m512i a0, __m512i a1, int64_t n0, __mmask16 k, int64_t N,
                                 int64_t nbits, const transform_t *restrict t) {
    __m512i nb = _mm512_set1_epi64(nbits);
    __m256 lo = _mm512_cvtepi64_ps(_mm512_sub_epi64(nb, _mm512_slli_epi64(a0, 1)));
    __m256 hi = _mm512_cvtepi64_ps(_mm512_sub_epi64(nb, _mm512_slli_epi64(a1, 1)));
    __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    if (t->row_pattern)
        v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(k, t->pattern_corr + (int64_t)t->row_pattern[m] * N + n0));
    if (t->alpha) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, t->alpha + n0));
    if (t->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
    if (t->mean) {
        v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(k, t->mean + n0));
        v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, t->invstd + n0));
    }
    if (t->gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, t->gamma + n0));
    if (t->beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, t->beta + n0));
    return v;
}

/* The whole transform on 16 channels of row m, stored. */
static inline void store_row16(float *restrict C, int64_t m, __m512i a0, __m512i a1, int64_t n0, int64_t count,
                               int64_t N, int64_t nbits, const transform_t *restrict t) {
    __mmask16 k = count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
    __m512 v = transform16(m, a0, a1, n0, k, N, nbits, t);
    if (t->residual) {
        float r[16];
        transform_residual(t, m, n0, count, N, r);
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, r));
    }
    if (t->prelu) {
        __m512 scaled = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, t->prelu + n0));
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), scaled, v);
    }
    if (t->pixels > 0) {
        float tmp[16];
        _mm512_storeu_ps(tmp, v);
        int64_t img = m / t->pixels, p = m - img * t->pixels;
        float *out = C + (img * N + n0) * t->pixels + p;
        for (int64_t j = 0; j < count; j++) out[j * t->pixels] = tmp[j];
    } else {
        _mm512_mask_storeu_ps(C + m * N + n0, k, v);
    }
}

/* r[0..7] rows of 8 floats -> r[j] = column j */
static inline void transpose8x8(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* 8 rows x 16 channels written as NCHW (t->pixels > 0), when the 8 rows are 8 consecutive pixels of one image
 * (image img, first pixel p):
 * the per-channel steps run with channels in the lanes, then the tile is transposed so that each channel's 8
 * pixels are one contiguous vector — the residual is one load and the store one store per channel, instead of
 * 16 scattered elements per row.  The same float32 operations on every element as store_row16. */
static inline void store_tile16x8(float *restrict C, int64_t m, int64_t img, int64_t p, __m512i acc[8][2],
                                  int64_t n0, int64_t N, int64_t nbits, const transform_t *restrict t) {
    __m256 lo[8], hi[8];
    for (int r = 0; r < 8; r++) {
        __m512 v = transform16(m + r, acc[r][0], acc[r][1], n0, (__mmask16)0xFFFF, N, nbits, t);
        lo[r] = _mm512_castps512_ps256(v);
        hi[r] = _mm512_extractf32x8_ps(v, 1);
    }
    transpose8x8(lo);
    transpose8x8(hi);
    for (int j = 0; j < 16; j++) {
        __m256 v = j < 8 ? lo[j] : hi[j - 8];
        const int64_t at = (img * N + n0 + j) * t->pixels + p;
        if (t->residual) {
            __m256 r = _mm256_loadu_ps(t->residual + at);
            if (t->res_mean) {
                r = _mm256_mul_ps(_mm256_sub_ps(r, _mm256_set1_ps(t->res_mean[n0 + j])),
                                  _mm256_set1_ps(t->res_invstd[n0 + j]));
                r = _mm256_add_ps(_mm256_mul_ps(r, _mm256_set1_ps(t->res_gamma[n0 + j])),
                                  _mm256_set1_ps(t->res_beta[n0 + j]));
            }
            v = _mm256_add_ps(v, r);
        }
        if (t->prelu) {
            __m256 scaled = _mm256_mul_ps(v, _mm256_set1_ps(t->prelu[n0 + j]));
            v = _mm256_blendv_ps(scaled, v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
        }
        _mm256_storeu_ps(C + at, v);
    }
}

/* Rows [m0, m1), columns [n0, n1) of C (portable.h says what the arguments hold).  Returns 0. */
static int bgemm_rows(const uint64_t *A, const uint64_t *Bt, float *C, int64_t m0, int64_t m1,
                      int64_t n0, int64_t n1, int64_t N, int64_t Npad, int64_t K, int64_t nbits, const transform_t *t) {
    int64_t m = m0;
    /* 8 rows x 16 channels: 16 zmm accumulators; per word of K: 2 loads of B, 8 broadcasts of A, 16 popcounts */
    for (; m + 8 <= m1; m += 8) {
        const uint64_t *a = A + m * K;
        /* NCHW output and 8 rows in one image: the tile is stored transposed (image and pixel computed once) */
        const int64_t img = t->pixels > 0 ? m / t->pixels : 0, pix = t->pixels > 0 ? m - img * t->pixels : 0;
        const int one_image = t->pixels > 0 && pix + 8 <= t->pixels;
        for (int64_t n = n0; n < n1; n += 16) {
            __m512i acc[8][2];
            for (int r = 0; r < 8; r++) { acc[r][0] = _mm512_setzero_si512(); acc[r][1] = _mm512_setzero_si512(); }
            const uint64_t *b = Bt + n;
            for (int64_t k = 0; k < K; k++, b += Npad) {
                __m512i b0 = _mm512_loadu_si512((const void *)b);
                __m512i b1 = _mm512_loadu_si512((const void *)(b + 8));
                for (int r = 0; r < 8; r++) {
                    __m512i x = _mm512_set1_epi64((long long)a[r * K + k]);
                    acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_xor_si512(x, b0)));
                    acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_xor_si512(x, b1)));
                }
            }
            int64_t count = (n1 - n) < 16 ? (n1 - n) : 16;
            if (count == 16 && one_image) {
                store_tile16x8(C, m, img, pix, acc, n, N, nbits, t);
            } else {
                for (int r = 0; r < 8; r++) store_row16(C, m + r, acc[r][0], acc[r][1], n, count, N, nbits, t);
            }
        }
    }
    for (; m < m1; m++) {
        const uint64_t *a = A + m * K;
        for (int64_t n = n0; n < n1; n += 16) {
            __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512();
            const uint64_t *b = Bt + n;
            for (int64_t k = 0; k < K; k++, b += Npad) {
                __m512i x = _mm512_set1_epi64((long long)a[k]);
                c0 = _mm512_add_epi64(c0, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)b))));
                c1 = _mm512_add_epi64(c1, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_loadu_si512((const void *)(b + 8)))));
            }
            int64_t acc[16];
            _mm512_storeu_si512((void *)acc, c0);
            _mm512_storeu_si512((void *)(acc + 8), c1);
            store_row(C, m, acc, n, (n1 - n) < 16 ? (n1 - n) : 16, N, nbits, t);
        }
    }
    return 0;
}

#endif
