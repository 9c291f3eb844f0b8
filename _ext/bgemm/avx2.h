/* XNOR-popcount GEMM with AVX2 (x86-64 without VPOPCNTDQ, e.g. AMD Zen 2/3, Intel Haswell..Alder Lake).
 *
 * AVX2 has no vector popcount, so it looks bits up 4 at a time: VPSHUFB with a 16-entry table of popcounts
 * counts the set bits of each nibble of 32 bytes in one instruction.  This is the only path that reads B in
 * another layout than Bt: the caller hands bgemm_rows the copy that bgemm_prepare_b makes (bgemm_prepared_words
 * says how large). */
#ifndef MINILAB_BGEMM_AVX2_H
#define MINILAB_BGEMM_AVX2_H
#include <immintrin.h>
#include <stdlib.h>
#include "transform.h"

#define MINILAB_BGEMM_ISA "avx2"
#define MINILAB_BGEMM_PREPARES_B 1
#define NIBBLES_LO 0x0F0F0F0F0F0F0F0FULL

/* How many words bgemm_prepare_b writes. */
static inline int64_t bgemm_prepared_words(int64_t K, int64_t Npad) { return 2 * K * Npad; }

/* The AVX2 path looks up popcounts 4 bits at a time, so it wants both operands split into nibbles:
 *   popcount(a ^ b) = popcount((a & 0x0F..) ^ (b & 0x0F..)) + popcount(((a >> 4) & 0x0F..) ^ ((b >> 4) & 0x0F..))
 * (masking and shifting commute with XOR).  B is split once per call into panels of 8 channels:
 * [Npad / 8][K][lo, hi][8 words], so one panel (16 K words) is a single sequential run that stays in L1 while
 * every row tile passes over it.  (Read straight from Bt, a panel's words lie Npad words apart: at 512 channels
 * that is 4 KB, and all of them fall in one L1 set.)  A is split inside bgemm_rows, 64 rows at a time. */
static inline void bgemm_prepare_b(const uint64_t *Bt, uint64_t *out, int64_t K, int64_t Npad) {
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < Npad; n++) {
            uint64_t x = Bt[k * Npad + n];
            uint64_t *panel = out + ((n / 8) * K + k) * 16;
            panel[n % 8] = x & NIBBLES_LO;
            panel[8 + n % 8] = (x >> 4) & NIBBLES_LO;
        }
}

/* store_row for 8 channels whose counts are in two vectors of 4 int64, with 256-bit float ops, each step one
 * IEEE-rounded float32 operation in store_row's order (no FMA), so the results are identical.  nbits - 2*count
 * fits int32 (nbits < 2^31), and int32 -> float32 rounds like int64 -> float32. */
static inline void store_row8(float *restrict C, int64_t m, __m256i c0, __m256i c1, int64_t n0, int64_t count,
                              int64_t N, int64_t nbits, const transform_t *restrict t) {
    if (count < 8) {   /* the last, partial block of channels */
        int64_t acc[8];
        _mm256_storeu_si256((__m256i *)acc, c0);
        _mm256_storeu_si256((__m256i *)(acc + 4), c1);
        store_row(C, m, acc, n0, count, N, nbits, t);
        return;
    }
    __m256i nb = _mm256_set1_epi64x(nbits);
    c0 = _mm256_sub_epi64(nb, _mm256_slli_epi64(c0, 1));
    c1 = _mm256_sub_epi64(nb, _mm256_slli_epi64(c1, 1));
    /* the low 32 bits of each int64 lane, in order: lanes 0,2,4,6 of each vector hold them */
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(c0, low_halves));
    __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(c1, low_halves));
    __m256 v = _mm256_cvtepi32_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
    if (t->row_pattern) v = _mm256_sub_ps(v, _mm256_loadu_ps(t->pattern_corr + (int64_t)t->row_pattern[m] * N + n0));
    if (t->alpha) v = _mm256_mul_ps(v, _mm256_loadu_ps(t->alpha + n0));
    if (t->relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
    if (t->mean) {
        v = _mm256_sub_ps(v, _mm256_loadu_ps(t->mean + n0));
        v = _mm256_mul_ps(v, _mm256_loadu_ps(t->invstd + n0));
    }
    if (t->gamma) v = _mm256_mul_ps(v, _mm256_loadu_ps(t->gamma + n0));
    if (t->beta) v = _mm256_add_ps(v, _mm256_loadu_ps(t->beta + n0));
    if (t->residual) {
        float r[8];
        transform_residual(t, m, n0, 8, N, r);
        v = _mm256_add_ps(v, _mm256_loadu_ps(r));
    }
    if (t->prelu) {
        __m256 scaled = _mm256_mul_ps(v, _mm256_loadu_ps(t->prelu + n0));
        v = _mm256_blendv_ps(scaled, v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    }
    if (t->pixels > 0) {
        float tmp[8];
        _mm256_storeu_ps(tmp, v);
        int64_t img = m / t->pixels, p = m - img * t->pixels;
        float *out = C + (img * N + n0) * t->pixels + p;
        for (int j = 0; j < 8; j++) out[j * t->pixels] = tmp[j];
    } else {
        _mm256_storeu_ps(C + m * N + n0, v);
    }
}

/* Rows [m0, m1), columns [n0, n1), with B prepared by bgemm_prepare_b.  4 rows x 8 channels (two ymm of 4 words) per step:
 *   count bytes += VPSHUFB(lut, a_lo ^ b_lo) + VPSHUFB(lut, a_hi ^ b_hi)      (lut[i] = popcount(i), i < 16)
 * Each byte gains at most 8 per word of K, so the byte counters are summed into 64-bit ones (VPSADBW against
 * zero adds the 8 bytes of each word: one total per channel) every 31 words, before they can pass 255.
 * Loop order: 64 rows are split into nibbles ([tile][k][row][lo, hi], 8 words per k at fixed offsets), then
 * each panel of B is swept by all their 16 row tiles while it sits in L1. */
static int bgemm_rows(const uint64_t *A, const uint64_t *Bs, float *C, int64_t m0, int64_t m1,
                      int64_t n0, int64_t n1, int64_t N, int64_t Npad, int64_t K, int64_t nbits, const transform_t *t) {
    enum { CHUNK = 64 };
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    (void)Npad;
    uint64_t *split = (uint64_t *)malloc((size_t)(2 * CHUNK * (K > 0 ? K : 1)) * sizeof(uint64_t));   /* never malloc(0) */
    if (!split) return -1;
    for (int64_t mc = m0; mc < m1; mc += CHUNK) {
        int64_t mcend = (m1 - mc) < CHUNK ? m1 : mc + CHUNK, tiles = (mcend - mc + 3) / 4;
        for (int64_t tile = 0; tile < tiles; tile++)
            for (int r = 0; r < 4; r++) {
                int64_t row = mc + 4 * tile + r;
                const uint64_t *a = A + (row < mcend ? row : mc + 4 * tile) * K;   /* a short tile repeats a row */
                uint64_t *dst = split + tile * 8 * K + 2 * r;
                for (int64_t k = 0; k < K; k++) {
                    dst[8 * k] = a[k] & NIBBLES_LO;
                    dst[8 * k + 1] = (a[k] >> 4) & NIBBLES_LO;
                }
            }
        for (int64_t n = n0; n < n1; n += 8) {
            const uint64_t *panel = Bs + (n / 8) * K * 16;
            int64_t count = (n1 - n) < 8 ? (n1 - n) : 8;
            for (int64_t tile = 0; tile < tiles; tile++) {
                int64_t total[4][8];   /* in memory: kept in registers, they crowd out the accumulators */
                memset(total, 0, sizeof(total));
                for (int64_t k = 0; k < K;) {
                    int64_t kend = (K - k) > 31 ? k + 31 : K;
                    __m256i acc[4][2];
                    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
                    for (; k < kend; k++) {
                        const uint64_t *b = panel + 16 * k, *a = split + (tile * K + k) * 8;
                        __m256i lo0 = _mm256_loadu_si256((const __m256i *)b);
                        __m256i lo1 = _mm256_loadu_si256((const __m256i *)(b + 4));
                        __m256i hi0 = _mm256_loadu_si256((const __m256i *)(b + 8));
                        __m256i hi1 = _mm256_loadu_si256((const __m256i *)(b + 12));
                        for (int r = 0; r < 4; r++) {
                            __m256i alo = _mm256_set1_epi64x((long long)a[2 * r]);
                            __m256i ahi = _mm256_set1_epi64x((long long)a[2 * r + 1]);
                            acc[r][0] = _mm256_add_epi8(acc[r][0], _mm256_shuffle_epi8(lut, _mm256_xor_si256(alo, lo0)));
                            acc[r][0] = _mm256_add_epi8(acc[r][0], _mm256_shuffle_epi8(lut, _mm256_xor_si256(ahi, hi0)));
                            acc[r][1] = _mm256_add_epi8(acc[r][1], _mm256_shuffle_epi8(lut, _mm256_xor_si256(alo, lo1)));
                            acc[r][1] = _mm256_add_epi8(acc[r][1], _mm256_shuffle_epi8(lut, _mm256_xor_si256(ahi, hi1)));
                        }
                    }
                    for (int r = 0; r < 4; r++)
                        for (int v = 0; v < 2; v++) {
                            __m256i *sum = (__m256i *)&total[r][4 * v];
                            _mm256_storeu_si256(sum, _mm256_add_epi64(_mm256_loadu_si256(sum),
                                                                      _mm256_sad_epu8(acc[r][v], _mm256_setzero_si256())));
                        }
                }
                int64_t m = mc + 4 * tile, rows = (mcend - m) < 4 ? (mcend - m) : 4;
                for (int r = 0; r < rows; r++)
                    store_row8(C, m + r, _mm256_loadu_si256((const __m256i *)&total[r][0]),
                               _mm256_loadu_si256((const __m256i *)&total[r][4]), n, count, N, nbits, t);
            }
        }
    }
    free(split);
    return 0;
}

#endif
