/* The fused LAB binarize-and-pack with NEON (aarch64; lab_pack/portable.h explains the maths and the layout):
 * the same float32 operations in the same order (vmulq_f32 then vaddq_f32, never a fused multiply-add), 16
 * pixels as four q-registers of 4 floats.  The comparison gives all-ones 32-bit lanes; for the -1 pixels
 * (its complement) the lanes are widened to 64 bits and the channel's bit is ORed into eight q-registers of
 * 2 words.  When both maps of a pair read the same input channel (the paper's pairing), the nine windows are
 * loaded once for both responses.  The short way of portable.h (lab_bound) is nine fused multiply-adds of the
 * loaded windows with delta = k1 - k0; a block whose 16 differences all clear the channel's bound (or come from
 * windows of zeros) takes its bits from them, any other computes both responses exactly. */
#ifndef MINILAB_LAB_PACK_NEON_H
#define MINILAB_LAB_PACK_NEON_H
#include <arm_neon.h>
#define MINILAB_LAB_PACK_SIMD 1
#include "portable.h"

/* nine taps of kernel k on the windows t[tap][4 quarters], tap by tap, then the bias: r[4] */
static inline void lab_response_neon(float32x4_t t[9][4], const float *k, float bias, float32x4_t r[4]) {
    for (int g = 0; g < 4; g++) {
        float32x4_t s = vmulq_f32(vdupq_n_f32(k[0]), t[0][g]);
        for (int u = 1; u < 9; u++) s = vaddq_f32(s, vmulq_f32(vdupq_n_f32(k[u]), t[u][g]));
        r[g] = vaddq_f32(s, vdupq_n_f32(bias));
    }
}

/* the short difference sum_u delta[u] * t[u] + delta[9] with fused multiply-adds (only its sign is used, where
 * lab_bound allows): d[4]; returns whether all 16 clear `bound` or come from windows of zeros */
static inline int lab_difference_neon(float32x4_t t[9][4], const float *delta, float bound, float32x4_t d[4]) {
    uint32x4_t sure = vdupq_n_u32(~0u);
    for (int g = 0; g < 4; g++) {
        float32x4_t s = vdupq_n_f32(delta[9]);
        uint32x4_t any = vdupq_n_u32(0);
        for (int u = 0; u < 9; u++) {
            s = vfmaq_f32(s, vdupq_n_f32(delta[u]), t[u][g]);
            any = vorrq_u32(any, vreinterpretq_u32_f32(t[u][g]));
        }
        d[g] = s;
        const uint32x4_t zero_window = vceqq_u32(vandq_u32(any, vdupq_n_u32(0x7FFFFFFFu)), vdupq_n_u32(0));
        sure = vandq_u32(sure, vorrq_u32(vcgtq_f32(vabsq_f32(s), vdupq_n_f32(bound)), zero_window));
    }
    return vminvq_u32(sure) == ~0u;
}

static inline void lab_windows_neon(const float *xp, int64_t pitch, float32x4_t t[9][4]) {
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++)
            for (int g = 0; g < 4; g++) t[3 * u + v][g] = vld1q_f32(xp + u * pitch + v + 4 * g);
}

static void lab_pack_blocks(const float *restrict xp, int64_t plane, int64_t c, int64_t h, int64_t w,
                            const float *restrict kernels, const float *restrict bias, float beta,
                            const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                            uint64_t *restrict out, int64_t p, const float *restrict delta,
                            const float *restrict bound) {
    const int64_t cw = (c + 63) / 64, pitch = w + 2;
    const float32x4_t vbeta = vdupq_n_f32(beta), zero = vdupq_n_f32(0.0f);
    uint64_t word[LAB_PIXELS];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t f0 = blk * LAB_PIXELS;
        for (int64_t q = 0; q < cw; q++) {
            uint64x2_t acc[8];
            for (int l = 0; l < 8; l++) acc[l] = vdupq_n_u64(0);
            const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
            for (int64_t ch = q * 64; ch < c1; ch++) {
                const int32_t a0 = map0[ch], a1 = map1[ch];
                float32x4_t t0[9][4], t1[9][4], r0[4], r1[4];
                lab_windows_neon(xp + (a0 / 2) * plane + f0, pitch, t0);
                if (bound != NULL && a1 / 2 == a0 / 2 && lab_difference_neon(t0, delta + LAB_SHORT * ch, bound[ch], r1)) {
                    for (int g = 0; g < 4; g++) r0[g] = zero;       /* r1 - r0 is then the short difference */
                } else if (a1 / 2 == a0 / 2) {
                    lab_response_neon(t0, kernels + 9 * a0, bias[a0], r0);
                    lab_response_neon(t0, kernels + 9 * a1, bias[a1], r1);
                } else {
                    lab_response_neon(t0, kernels + 9 * a0, bias[a0], r0);
                    lab_windows_neon(xp + (a1 / 2) * plane + f0, pitch, t1);
                    lab_response_neon(t1, kernels + 9 * a1, bias[a1], r1);
                }
                const uint64x2_t bit = vdupq_n_u64(1ULL << (ch & 63));
                for (int g = 0; g < 4; g++) {
                    /* all-ones where beta * (r1 - r0) > 0 is false: the -1 pixels */
                    uint32x4_t minus = vmvnq_u32(vcgtq_f32(vmulq_f32(vbeta, vsubq_f32(r1[g], r0[g])), zero));
                    int64x2_t lo = vmovl_s32(vreinterpret_s32_u32(vget_low_u32(minus)));   /* sign-extend */
                    int64x2_t hi = vmovl_s32(vreinterpret_s32_u32(vget_high_u32(minus)));
                    acc[2 * g] = vorrq_u64(acc[2 * g], vandq_u64(vreinterpretq_u64_s64(lo), bit));
                    acc[2 * g + 1] = vorrq_u64(acc[2 * g + 1], vandq_u64(vreinterpretq_u64_s64(hi), bit));
                }
            }
            for (int l = 0; l < 8; l++) vst1q_u64(word + 2 * l, acc[l]);
            lab_store_words(word, f0, h, w, p, cw, q, out);
        }
    }
}

#endif
