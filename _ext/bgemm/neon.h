/* XNOR-popcount GEMM with NEON (aarch64): portable.h's loop with CNT, which counts the bits of 16 bytes at
 * once.  The byte counts are pairwise-accumulated (UADALP) into 16-bit lanes, which are widened to 64 bits
 * only every 2048 words of K. */
#ifndef MINILAB_BGEMM_NEON_H
#define MINILAB_BGEMM_NEON_H
#include <arm_neon.h>
#include "transform.h"

#define MINILAB_BGEMM_ISA "neon"

/* Rows [m0, m1), columns [n0, n1) of C (portable.h says what the arguments hold).  Returns 0. */
static int bgemm_rows(const uint64_t *A, const uint64_t *Bt, float *C, int64_t m0, int64_t m1,
                      int64_t n0, int64_t n1, int64_t N, int64_t Npad, int64_t K, int64_t nbits, const transform_t *t) {
    /* 2 rows x 8 channels: 8 accumulators of 8 x u16 (one per channel pair's bytes). */
    for (int64_t m = m0; m < m1; m += 2) {
        int two = (m + 1 < m1);
        const uint64_t *a0 = A + m * K, *a1 = two ? a0 + K : a0;
        for (int64_t n = n0; n < n1; n += 8) {
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
            int64_t count = (n1 - n) < 8 ? (n1 - n) : 8;
            store_row(C, m, acc0, n, count, N, nbits, t);
            if (two) store_row(C, m + 1, acc1, n, count, N, nbits, t);
        }
    }
    return 0;
}

#endif
