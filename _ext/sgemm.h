/* Float32 GEMM on the kernels' own OpenMP threads.

   The GEMM itself is, in a module built for AVX-512, minilab's own (sgemm/avx512.h: as fast as OpenBLAS' best
   AVX-512 kernels on the shapes of training, and independent of which kernels the BLAS chose, e.g. AVX2 ones
   forced by OPENBLAS_CORETYPE); elsewhere the BLAS NumPy already loaded (OpenBLAS' cblas_sgemm, found at run
   time by minilab/core/blas.py and handed over as a function address).  What this file adds is the split:
   C = A·B is cut into blocks of rows or columns, and each OpenMP thread multiplies its blocks on a
   single-threaded GEMM.  A training step then runs every parallel loop — GEMMs and kernels alike —
   on one pool of threads, instead of handing the cores back and forth between OpenBLAS' workers and OpenMP's
   a few hundred times a step (each hand-off wakes a sleeping CPU, which is slow on a virtual machine).

   Both the LP64 (32-bit index) and the ILP64 (64-bit index, NumPy's scipy-openblas64) interfaces exist; the
   order and transpose flags are C enums (int) in both. */
#ifndef MINILAB_SGEMM_H
#define MINILAB_SGEMM_H
#include <stdint.h>

enum { SGEMM_ROW_MAJOR = 101, SGEMM_NO_TRANS = 111, SGEMM_TRANS = 112 };

typedef void (*sgemm_lp64_fn)(int order, int ta, int tb, int32_t m, int32_t n, int32_t k, float alpha,
                              const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
                              int32_t ldc);
typedef void (*sgemm_ilp64_fn)(int order, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                               int64_t ldc);

#if defined(__AVX512F__) && !defined(MINILAB_PORTABLE)
#include "sgemm/avx512.h"
#define MINILAB_OWN_SGEMM "avx512"
#define MINILAB_HAS_OWN_SGEMM 1
#else
#define MINILAB_OWN_SGEMM 0
#define MINILAB_HAS_OWN_SGEMM 0
#endif

static void *sgemm_address = 0;
static int sgemm_index_bits = 0;  /* 32 or 64 */
static int sgemm_own = 0;         /* 1: this module's own GEMM (when it was built with one) */

/* The plain triple loop: only when the own GEMM cannot allocate its packing buffers and no BLAS was given. */
static void sgemm_loop(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < k; p++)
                sum += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = beta == 0.0f ? sum : beta * c[i * ldc + j] + sum;
        }
}

static void sgemm_set(void *address, int index_bits) {
    sgemm_address = address;
    sgemm_index_bits = index_bits;
}

/* Turn the own GEMM on or off; returns whether it is on (never in a module built without one). */
static int sgemm_use_own(int on) {
    sgemm_own = on && MINILAB_HAS_OWN_SGEMM;
    return sgemm_own;
}

/* Row-major C[m×n] = A·B + beta·C, where A is m×k (stored k×m when ta) and B is k×n (stored n×k when tb). */
static void sgemm_call(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
#if MINILAB_HAS_OWN_SGEMM
    if (sgemm_own && sgemm_avx512(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc) == 0)
        return;
#endif
    /* no BLAS, or sizes its 32-bit interface cannot take (the wrapper refuses them unless the own GEMM is on,
       which can only fail to allocate its buffers): the plain loop */
    if (!sgemm_address || (sgemm_index_bits == 32 &&
                           (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
                            ldc > INT32_MAX))) {
        sgemm_loop(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int fa = ta ? SGEMM_TRANS : SGEMM_NO_TRANS, fb = tb ? SGEMM_TRANS : SGEMM_NO_TRANS;
    if (sgemm_index_bits == 64)
        ((sgemm_ilp64_fn)sgemm_address)(SGEMM_ROW_MAJOR, fa, fb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    else
        ((sgemm_lp64_fn)sgemm_address)(SGEMM_ROW_MAJOR, fa, fb, (int32_t)m, (int32_t)n, (int32_t)k, 1.0f, a,
                                       (int32_t)lda, b, (int32_t)ldb, beta, c, (int32_t)ldc);
}

/* Block `part` of `parts` of C = A·B + beta·C.  Columns are cut, at multiples of 16 so that two threads never
   write the same 64-byte cache line of C, each block as close to an equal share as that allows.  Rows are cut
   instead when C is too narrow for that (fewer than 16 columns a part), or narrow and tall, like a 1x1 conv on
   a 7 x 7 map (49 columns: 32 + 17 would leave one thread idle a third of the time, while each thread packing
   the small B again costs little).  Cutting rows of a wide C ran at half the speed: row-major C is column-major
   Cᵀ = BᵀAᵀ to the BLAS, and each thread then packs the whole of B again.  The thread count may change C's last
   bits: a block can end inside one of the BLAS' register tiles, and the BLAS computes a tile's edge with other
   micro-kernels (seen with OpenBLAS' Haswell ones); the own GEMM sums every value of C in the same order however
   C is cut. */
static void sgemm_part(int part, int parts, int ta, int tb, int64_t m, int64_t n, int64_t k,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    /* The own GEMM reads (and mostly packs) the whole of A for each block of columns and packs the whole of B
       for each block of rows: cut along the longer side, so that each block goes over the smaller operand again. */
    int split_rows = sgemm_own ? m > n : (n < 16 * parts && m > n) || (n < 64 * parts && m >= 64 * parts);
    int64_t size = split_rows ? m : n;
    /* rows of the own GEMM at whole 12-row panels (SG_MR), the finest cut that keeps the threads' shares even
       on a 1x1 conv's 256 or 512 rows; columns at multiples of 16 */
    int64_t unit = sgemm_own && split_rows ? 12 : 16;
    int64_t lo = (part * size / parts + unit / 2) / unit * unit;
    int64_t hi = ((part + 1) * size / parts + unit / 2) / unit * unit;
    if (part == 0) lo = 0;
    if (part == parts - 1 || hi > size) hi = size;
    if (lo >= hi)
        return;
    if (split_rows)  /* rows lo..hi of A and of C */
        sgemm_call(ta, tb, hi - lo, n, k, ta ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
    else             /* columns lo..hi of B and of C */
        sgemm_call(ta, tb, m, hi - lo, k, a, lda, tb ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
}
#endif
