/* Chooses the XNOR-popcount GEMM for the instruction set this module is compiled for (setup.py compiles the
 * kernels once per level, each with its own flags): one header per instruction set, each defining
 *   MINILAB_BGEMM_ISA, bgemm_rows, and (AVX2 only) bgemm_prepared_words / bgemm_prepare_b,
 * all computing the same integers, so results are bit-identical whichever is chosen.  bgemm/portable.h is the
 * one to read first; the portable module (MINILAB_PORTABLE defined) always takes it. */
#ifndef MINILAB_BGEMM_H
#define MINILAB_BGEMM_H

#if defined(MINILAB_PORTABLE)
#include "bgemm/portable.h"
#define MINILAB_BUILT_PORTABLE 1
#elif defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512DQ__)
#include "bgemm/avx512.h"
#elif defined(__aarch64__)
#include "bgemm/neon.h"
#elif defined(__AVX2__)
#include "bgemm/avx2.h"
#else
#include "bgemm/portable.h"
#endif

#ifndef MINILAB_BUILT_PORTABLE
#define MINILAB_BUILT_PORTABLE 0   /* tells a requested portable build from a native one that found no SIMD */
#endif

#ifndef MINILAB_BGEMM_PREPARES_B   /* every path but AVX2 reads Bt as it is */
static inline int64_t bgemm_prepared_words(int64_t K, int64_t Npad) { (void)K; (void)Npad; return 0; }
static inline void bgemm_prepare_b(const uint64_t *Bt, uint64_t *out, int64_t K, int64_t Npad) {
    (void)Bt; (void)out; (void)K; (void)Npad;
}
#endif

#endif
