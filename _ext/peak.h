/* Micro-benchmarks of what one core of this CPU can do at most, for `bench model`'s fraction-of-peak column:
 *   peak_popcount: binary multiply-accumulates (XOR + POPCOUNT + ADD of 64-bit words, the popcount GEMM's inner
 *                  step) with operands in registers and L1, with the widest instructions this build uses;
 *   peak_fma:      float32 multiply-adds with many independent accumulators (fused where the build has FMA).
 * Each runs `iters` rounds and returns how many binary / float MACs it did; the caller times it.  The
 * instruction set follows bgemm.h's choice, so a fraction of peak compares like with like. */
#ifndef MINILAB_PEAK_H
#define MINILAB_PEAK_H
#include <stdint.h>
#include "bgemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define PEAK_WORDS 256   /* 2 KB of operand words: stays in L1 */
static volatile uint64_t peak_sink_u;   /* the results go somewhere, so the compiler keeps the loops */
static volatile float peak_sink_f;

#if !defined(MINILAB_PORTABLE) && defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
#include <immintrin.h>
/* bgemm/avx512.h's inner step: 8 rows x 16 channels, B loaded from L1, A in registers */
static double peak_popcount(int64_t iters, const uint64_t *words, uint64_t *sink) {
    __m512i x[8], acc[8][2];
    for (int r = 0; r < 8; r++) {
        x[r] = _mm512_set1_epi64((long long)(words[r] * 0x9E3779B97F4A7C15ULL));
        acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    }
    for (int64_t it = 0; it < iters; it++)
        for (int k = 0; k < PEAK_WORDS; k += 16) {
            __m512i b0 = _mm512_loadu_si512((const void *)(words + k));
            __m512i b1 = _mm512_loadu_si512((const void *)(words + k + 8));
            for (int r = 0; r < 8; r++) {
                acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_xor_si512(x[r], b0)));
                acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_xor_si512(x[r], b1)));
            }
        }
    for (int r = 1; r < 8; r++) acc[0][0] = _mm512_add_epi64(acc[0][0], _mm512_add_epi64(acc[r][0], acc[r][1]));
    *sink = (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(acc[0][0], acc[0][1]));
    return (double)iters * (PEAK_WORDS / 16) * 16 * 8 * 64;
}
static double peak_fma(int64_t iters, float seed, float *sink) {
    __m512 acc[16], a = _mm512_set1_ps(seed), b = _mm512_set1_ps(1.0f - seed);
    for (int r = 0; r < 16; r++) acc[r] = _mm512_set1_ps((float)r);
    for (int64_t it = 0; it < iters; it++)
        for (int r = 0; r < 16; r++) acc[r] = _mm512_fmadd_ps(acc[r], a, b);
    for (int r = 1; r < 16; r++) acc[0] = _mm512_add_ps(acc[0], acc[r]);
    *sink = _mm512_reduce_add_ps(acc[0]);
    return (double)iters * 16 * 16;
}
#elif !defined(MINILAB_PORTABLE) && defined(__aarch64__)
#include <arm_neon.h>
static double peak_popcount(int64_t iters, const uint64_t *words, uint64_t *sink) {
    uint64x2_t x[4];
    uint16x8_t acc[8];
    for (int r = 0; r < 4; r++) x[r] = vdupq_n_u64(words[r] * 0x9E3779B97F4A7C15ULL);
    for (int r = 0; r < 8; r++) acc[r] = vdupq_n_u16(0);
    uint64_t total = 0;
    for (int64_t it = 0; it < iters; it++) {
        for (int k = 0; k < PEAK_WORDS; k += 16)
            for (int r = 0; r < 8; r++) {
                uint64x2_t b = vld1q_u64(words + k + 2 * r);
                acc[r] = vpadalq_u8(acc[r], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x[r & 3], b))));
            }
        if ((it & 127) == 127)   /* 16-bit lanes: flush before they can overflow */
            for (int r = 0; r < 8; r++) { total += vaddlvq_u16(acc[r]); acc[r] = vdupq_n_u16(0); }
    }
    for (int r = 0; r < 8; r++) total += vaddlvq_u16(acc[r]);
    *sink = total;
    return (double)iters * (PEAK_WORDS / 16) * 8 * 2 * 64;
}
static double peak_fma(int64_t iters, float seed, float *sink) {
    float32x4_t acc[16], a = vdupq_n_f32(seed), b = vdupq_n_f32(1.0f - seed);
    for (int r = 0; r < 16; r++) acc[r] = vdupq_n_f32((float)r);
    for (int64_t it = 0; it < iters; it++)
        for (int r = 0; r < 16; r++) acc[r] = vfmaq_f32(b, acc[r], a);
    for (int r = 1; r < 16; r++) acc[0] = vaddq_f32(acc[0], acc[r]);
    *sink = vaddvq_f32(acc[0]);
    return (double)iters * 16 * 4;
}
#else
/* Portable C (and AVX2, whose popcount GEMM's LUT trick the compiler does not find on its own: there the
 * figure is POPCNT's scalar rate, so the AVX2 GEMM may show more than 100 %). */
static double peak_popcount(int64_t iters, const uint64_t *words, uint64_t *sink) {
    uint64_t x[4], acc[8] = {0};
    for (int r = 0; r < 4; r++) x[r] = words[r] * 0x9E3779B97F4A7C15ULL;
    for (int64_t it = 0; it < iters; it++)
        for (int k = 0; k < PEAK_WORDS; k += 8)
            for (int r = 0; r < 8; r++) acc[r] += (uint64_t)__builtin_popcountll(x[r & 3] ^ words[k + r]);
    uint64_t total = 0;
    for (int r = 0; r < 8; r++) total += acc[r];
    *sink = total;
    return (double)iters * PEAK_WORDS * 64;
}
static double peak_fma(int64_t iters, float seed, float *sink) {
    float acc[64];
    for (int r = 0; r < 64; r++) acc[r] = (float)r;
    for (int64_t it = 0; it < iters; it++)
        for (int r = 0; r < 64; r++) acc[r] = acc[r] * seed + (1.0f - seed);
    float total = 0;
    for (int r = 0; r < 64; r++) total += acc[r];
    *sink = total;
    return (double)iters * 64;
}
#endif

/* Micro-benchmark `kind` (0: popcount, 1: float multiply-add) on `threads` threads at once; work[t] receives
 * thread t's MACs. */
static void peak_parallel(int kind, int64_t iters, int threads, const uint64_t *words, double *work) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        uint64_t usink;
        float fsink;
        if (t < threads) work[t] = kind == 0 ? peak_popcount(iters, words, &usink) : peak_fma(iters, 0.999f, &fsink);
        peak_sink_u += usink * (kind == 0);
        peak_sink_f += kind == 0 ? 0.0f : fsink;
    }
}

#endif
