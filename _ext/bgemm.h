/* XNOR-popcount GEMM on bit-packed ±1 matrices.
 *
 *   C[m][n] = nbits - 2 * sum_k popcount(A[m][k] ^ Bt[k][n])        (then the output transform below)
 *
 * A is (M, K) 64-bit words, row-major: one row per output pixel (its packed receptive field).
 * Bt is (K, Npad) words: the packed weights *transposed*, so that consecutive output channels are consecutive in
 * memory and one vector load brings 8 (AVX-512) or 2 (NEON) channels. Npad is a multiple of 16; padded columns
 * are zero and their results are never read.
 * Bit = 1 means -1 (Larq-CE's convention): a zero word is all +1, so padding bits cost nothing.
 *
 * Four implementations of the same loop, chosen at compile time:
 *   - AVX-512 VPOPCNTDQ (x86-64 built with -march=native on a CPU that has it): 8 rows x 16 channels per step;
 *   - NEON (aarch64): cnt on bytes, pairwise-accumulated into 16-bit lanes;
 *   - AVX2 (x86-64 without VPOPCNTDQ, e.g. AMD Zen 2/3, Intel Haswell..Alder Lake): a 16-entry nibble lookup
 *     with VPSHUFB, 4 rows x 8 channels per step (see bgemm_prepare_b for its operand layout);
 *   - portable C with __builtin_popcountll (which becomes POPCNT with -mpopcnt, a library call without).
 * Only the AVX2 path reads B in another layout: when bgemm_prepared_words is not 0, callers hand bgemm_rows the
 * copy that bgemm_prepare_b makes of Bt instead of Bt.
 */
#ifndef MINILAB_BGEMM_H
#define MINILAB_BGEMM_H
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__) && !defined(MINILAB_PORTABLE)
#include <immintrin.h>
#define MINILAB_BGEMM_ISA "avx512-vpopcntdq"
#elif defined(__aarch64__) && !defined(MINILAB_PORTABLE)
#include <arm_neon.h>
#define MINILAB_BGEMM_ISA "neon"
#elif defined(__AVX2__) && !defined(MINILAB_PORTABLE)
#include <immintrin.h>
#include <stdlib.h>
#define MINILAB_BGEMM_AVX2 1
#define MINILAB_BGEMM_ISA "avx2"
#else
#define MINILAB_BGEMM_ISA "portable"
#endif

/* 1 when setup.py was asked for a portable build (MINILAB_PORTABLE=1), so the tests can tell a requested
 * portable build from a native build that failed to find the CPU's popcount instructions. */
#ifdef MINILAB_PORTABLE
#define MINILAB_BUILT_PORTABLE 1
#else
#define MINILAB_BUILT_PORTABLE 0
#endif

/* The fused output transform, applied per output element in this exact order (each step optional):
 *   v = nbits - 2*popcount;  v -= corr[pattern[m]][n] (zero padding);  v *= alpha[n];  v = max(v, 0);
 *   v = (v - mean[n]) * invstd[n];  v *= gamma[n];  v += beta[n];  v = v > 0 ? v : prelu[n] * v
 * Every step is one rounded float32 operation, in NumPy's order, so the result is bit-identical to the training
 * graph's eval-mode conv -> (ReLU) -> BatchNorm (the extension is compiled with -ffp-contract=off: no FMA). */
typedef struct {
    const int32_t *row_pattern;   /* (M,) index into pattern_corr, or NULL */
    const float *pattern_corr;    /* (patterns, N) */
    const float *alpha;
    int relu;
    const float *mean, *invstd, *gamma, *beta;
    const float *prelu;           /* per-channel PReLU slope applied last, or NULL */
    int64_t pixels;               /* > 0: write C as NCHW with this many pixels per image; 0: row-major (M, N) */
} transform_t;

static inline void store_row(float *restrict C, int64_t m, const int64_t *restrict acc, int64_t n0, int64_t count,
                             int64_t N, int64_t nbits, const transform_t *restrict t) {
    /* local copies: loop-invariant, so GCC unswitches the branches and vectorises the loop over channels */
    float v[16];
    const float *corr = t->row_pattern ? t->pattern_corr + (int64_t)t->row_pattern[m] * N + n0 : NULL;
    const float *alpha = t->alpha ? t->alpha + n0 : NULL, *mean = t->mean ? t->mean + n0 : NULL;
    const float *invstd = t->invstd ? t->invstd + n0 : NULL, *gamma = t->gamma ? t->gamma + n0 : NULL;
    const float *beta = t->beta ? t->beta + n0 : NULL, *prelu = t->prelu ? t->prelu + n0 : NULL;
    for (int64_t j = 0; j < count; j++) v[j] = (float)(nbits - 2 * acc[j]);
    if (corr) for (int64_t j = 0; j < count; j++) v[j] = v[j] - corr[j];
    if (alpha) for (int64_t j = 0; j < count; j++) v[j] = v[j] * alpha[j];
    if (t->relu) for (int64_t j = 0; j < count; j++) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
    if (mean) for (int64_t j = 0; j < count; j++) v[j] = (v[j] - mean[j]) * invstd[j];
    if (gamma) for (int64_t j = 0; j < count; j++) v[j] = v[j] * gamma[j];
    if (beta) for (int64_t j = 0; j < count; j++) v[j] = v[j] + beta[j];
    if (prelu) for (int64_t j = 0; j < count; j++) v[j] = v[j] > 0.0f ? v[j] : prelu[j] * v[j];
    if (t->pixels > 0) {
        int64_t img = m / t->pixels, p = m - img * t->pixels;
        float *out = C + (img * N + n0) * t->pixels + p;
        for (int64_t j = 0; j < count; j++) out[j * t->pixels] = v[j];
    } else {
        float *out = C + m * N + n0;
        for (int64_t j = 0; j < count; j++) out[j] = v[j];
    }
}

#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512DQ__) && !defined(MINILAB_PORTABLE)
/* The same transform on 16 channels at once: each step is one IEEE-rounded float32 vector op (no FMA), so the
 * results are identical to store_row's. */
static inline void store_row16(float *restrict C, int64_t m, __m512i a0, __m512i a1, int64_t n0, int64_t count,
                               int64_t N, int64_t nbits, const transform_t *restrict t) {
    __mmask16 k = count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
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
#define MINILAB_STORE16 1
#endif

#define NIBBLES_LO 0x0F0F0F0F0F0F0F0FULL

/* How many words bgemm_prepare_b writes: 0 when the path reads B as it is. */
static inline int64_t bgemm_prepared_words(int64_t K, int64_t Npad) {
#ifdef MINILAB_BGEMM_AVX2
    return 2 * K * Npad;
#else
    (void)K; (void)Npad;
    return 0;
#endif
}

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

#ifdef MINILAB_BGEMM_AVX2
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

/* Rows [m0, m1), with B prepared by bgemm_prepare_b.  4 rows x 8 channels (two ymm of 4 words) per step:
 *   count bytes += VPSHUFB(lut, a_lo ^ b_lo) + VPSHUFB(lut, a_hi ^ b_hi)      (lut[i] = popcount(i), i < 16)
 * Each byte gains at most 8 per word of K, so the byte counters are summed into 64-bit ones (VPSADBW against
 * zero adds the 8 bytes of each word: one total per channel) every 31 words, before they can pass 255.
 * Loop order: 64 rows are split into nibbles ([tile][k][row][lo, hi], 8 words per k at fixed offsets), then
 * each panel of B is swept by all their 16 row tiles while it sits in L1. */
static int bgemm_rows_avx2(const uint64_t *A, const uint64_t *Bs, float *C, int64_t m0, int64_t m1, int64_t N,
                           int64_t Npad, int64_t K, int64_t nbits, const transform_t *t) {
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
        for (int64_t n = 0; n < N; n += 8) {
            const uint64_t *panel = Bs + (n / 8) * K * 16;
            int64_t count = (N - n) < 8 ? (N - n) : 8;
            for (int64_t tile = 0; tile < tiles; tile++) {
                int64_t total[4][8];   /* in memory: kept in registers, they crowded out accumulators (+9 %) */
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

/* Rows [m0, m1) of C. C is (M, N) float32 row-major; B is what bgemm_prepare_b made of Bt (or Bt itself when
 * bgemm_prepared_words is 0).  Returns 0, or -1 when scratch memory could not be allocated. */
static int bgemm_rows(const uint64_t *A, const uint64_t *Bt, float *C, int64_t m0, int64_t m1, int64_t N,
                       int64_t Npad, int64_t K, int64_t nbits, const transform_t *t) {
#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__) && !defined(MINILAB_PORTABLE)
    int64_t m = m0;
    /* 8 rows x 16 channels: 16 zmm accumulators; per word of K: 2 loads of B, 8 broadcasts of A, 16 popcounts */
    for (; m + 8 <= m1; m += 8) {
        const uint64_t *a = A + m * K;
        for (int64_t n = 0; n < N; n += 16) {
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
            int64_t count = (N - n) < 16 ? (N - n) : 16;
            for (int r = 0; r < 8; r++) {
#ifdef MINILAB_STORE16
                store_row16(C, m + r, acc[r][0], acc[r][1], n, count, N, nbits, t);
#else
                int64_t out[16];
                _mm512_storeu_si512((void *)out, acc[r][0]);
                _mm512_storeu_si512((void *)(out + 8), acc[r][1]);
                store_row(C, m + r, out, n, count, N, nbits, t);
#endif
            }
        }
    }
    for (; m < m1; m++) {
        const uint64_t *a = A + m * K;
        for (int64_t n = 0; n < N; n += 16) {
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
            store_row(C, m, acc, n, (N - n) < 16 ? (N - n) : 16, N, nbits, t);
        }
    }
#elif defined(MINILAB_BGEMM_AVX2)
    return bgemm_rows_avx2(A, Bt, C, m0, m1, N, Npad, K, nbits, t);
#elif defined(__aarch64__) && !defined(MINILAB_PORTABLE)
    /* 2 rows x 8 channels: 8 accumulators of 8 x u16 (one per channel pair's bytes). */
    for (int64_t m = m0; m < m1; m += 2) {
        int two = (m + 1 < m1);
        const uint64_t *a0 = A + m * K, *a1 = two ? a0 + K : a0;
        for (int64_t n = 0; n < N; n += 8) {
            int64_t acc0[8] = {0}, acc1[8] = {0};
            int64_t k = 0;
            while (k < K) {
                /* u16 lanes gain at most 16 per step: flush well before 65535 */
                int64_t kend = (K - k) > 2048 ? k + 2048 : K;
                uint16x8_t s0[4], s1[4];
                for (int j = 0; j < 4; j++) { s0[j] = vdupq_n_u16(0); s1[j] = vdupq_n_u16(0); }
                for (; k < kend; k++) {
                    const uint64_t *b = Bt + k * Npad + n;
                    uint64x2_t x0 = vdupq_n_u64(a0[k]), x1 = vdupq_n_u64(a1[k]);
                    for (int j = 0; j < 4; j++) {
                        uint64x2_t bv = vld1q_u64(b + 2 * j);
                        s0[j] = vpadalq_u8(s0[j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x0, bv))));
                        s1[j] = vpadalq_u8(s1[j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x1, bv))));
                    }
                }
                for (int j = 0; j < 4; j++) {
                    uint64x2_t t0 = vpaddlq_u32(vpaddlq_u16(s0[j])), t1 = vpaddlq_u32(vpaddlq_u16(s1[j]));
                    acc0[2 * j] += (int64_t)vgetq_lane_u64(t0, 0);
                    acc0[2 * j + 1] += (int64_t)vgetq_lane_u64(t0, 1);
                    acc1[2 * j] += (int64_t)vgetq_lane_u64(t1, 0);
                    acc1[2 * j + 1] += (int64_t)vgetq_lane_u64(t1, 1);
                }
            }
            int64_t count = (N - n) < 8 ? (N - n) : 8;
            store_row(C, m, acc0, n, count, N, nbits, t);
            if (two) store_row(C, m + 1, acc1, n, count, N, nbits, t);
        }
    }
#else
    /* portable: 4 rows x 4 channels of scalar accumulators */
    for (int64_t m = m0; m < m1; m += 4) {
        int rows = (m1 - m) < 4 ? (int)(m1 - m) : 4;
        const uint64_t *a[4];
        for (int r = 0; r < 4; r++) a[r] = A + (m + (r < rows ? r : 0)) * K;
        for (int64_t n = 0; n < N; n += 4) {
            int64_t acc[4][4];
            memset(acc, 0, sizeof(acc));
            for (int64_t k = 0; k < K; k++) {
                const uint64_t *b = Bt + k * Npad + n;
                for (int r = 0; r < 4; r++) {
                    uint64_t x = a[r][k];
                    acc[r][0] += __builtin_popcountll(x ^ b[0]);
                    acc[r][1] += __builtin_popcountll(x ^ b[1]);
                    acc[r][2] += __builtin_popcountll(x ^ b[2]);
                    acc[r][3] += __builtin_popcountll(x ^ b[3]);
                }
            }
            int64_t count = (N - n) < 4 ? (N - n) : 4;
            for (int r = 0; r < rows; r++) store_row(C, m + r, acc[r], n, count, N, nbits, t);
        }
    }
#endif
    return 0;
}

#endif
