/* XNOR-popcount GEMM in portable C: the reference loop, and the one to read first.
 *
 *   C[m][n] = nbits - 2 * sum_k popcount(A[m][k] ^ Bt[k][n])        (then the output transform, transform.h)
 *
 * A is (M, K) 64-bit words, row-major: one row per output pixel (its packed receptive field).
 * Bt is (K, Npad) words: the packed weights *transposed*, so that consecutive output channels are consecutive in
 * memory.  Npad is a multiple of 16; padded columns are zero and their results are never read.
 * Bit = 1 means -1 (Larq Compute Engine's convention): a zero word is all +1, so padding bits cost nothing.
 *
 * Why XOR and popcount: for a, b in {-1, +1}, a*b = +1 where the bits agree and -1 where they differ, so a dot
 * product of nbits signs is (#agree) - (#differ) = nbits - 2 * popcount(a XOR b).
 *
 * The loop keeps a 4 rows x 4 channels block of counts in registers, so each word of A and of B loaded is used
 * four times.  __builtin_popcountll becomes the POPCNT instruction where the build allows it (-mpopcnt or
 * -march=native), a short bit-twiddling routine elsewhere.  The other instruction sets (avx512.h, avx2.h,
 * neon.h) compute exactly the same integers with wider registers. */
#ifndef MINILAB_BGEMM_PORTABLE_H
#define MINILAB_BGEMM_PORTABLE_H
#include "transform.h"

#define MINILAB_BGEMM_ISA "portable"

/* Rows [m0, m1) and columns [n0, n1) of C (n0 a multiple of 16, so that every instruction set's column
 * blocks line up).  C is (M, N) float32 (layout: transform_t.pixels).  Returns 0. */
static int bgemm_rows(const uint64_t *A, const uint64_t *Bt, float *C, int64_t m0, int64_t m1,
                      int64_t n0, int64_t n1, int64_t N, int64_t Npad, int64_t K, int64_t nbits, const transform_t *t) {
    /* portable: 4 rows x 4 channels of scalar accumulators */
    for (int64_t m = m0; m < m1; m += 4) {
        int rows = (m1 - m) < 4 ? (int)(m1 - m) : 4;
        const uint64_t *a[4];
        for (int r = 0; r < 4; r++) a[r] = A + (m + (r < rows ? r : 0)) * K;
        for (int64_t n = n0; n < n1; n += 4) {
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
            int64_t count = (n1 - n) < 4 ? (n1 - n) : 4;
            for (int r = 0; r < rows; r++) store_row(C, m + r, acc[r], n, count, N, nbits, t);
        }
    }
    return 0;
}

#endif
