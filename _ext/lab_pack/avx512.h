/* The fused LAB binarize-and-pack with AVX-512 (lab_pack/portable.h explains the maths): the same float32
 * operations in the same order for the exact responses, 16 pixels per zmm, and the bits gathered without
 * leaving the registers: the comparison gives a 16-bit mask, whose complement (the -1 pixels) ORs the
 * channel's bit into the pixels' words with one masked OR.
 *
 * Tiles (maps at least LAB_TILE_MIN_WIDTH wide, all of LAB-BNN's): a unit of work is 16 columns of
 * LAB_TILE_ROWS rows and one packed word (64 channels).  Each input row is one load of 16 floats plus one of
 * the 2 after them, masked to zero outside the image — the same zeros the training graph pads with — and the
 * windows one and two pixels to the right are lane shifts of it (valignd); each loaded row feeds every output
 * row of the tile it touches.  Per channel the short way (portable.h, lab_bound) is nine fused multiply-adds
 * per output row with delta = k1 - k0; a row of 16 pixels whose differences all clear the channel's bound (or
 * come from windows of zeros) takes its bits from them, any other computes both responses exactly.  The
 * kernel is limited by the instructions around the arithmetic (loads, shifts, comparisons, bit gathering)
 * more than by the multiply-adds, which is what the tiles, the shifts and the 32-bit bit lanes save.
 *
 * Narrower maps use flat blocks of 16 consecutive pixels (flat index f = i*W + j, across row ends), each
 * tap's window one masked load whose lanes outside the image read as 0.0f. */
#ifndef MINILAB_LAB_PACK_AVX512_H
#define MINILAB_LAB_PACK_AVX512_H
#include <immintrin.h>
#define MINILAB_LAB_PACK_SIMD 1
#define LAB_PACK_PADDED 0
#include "portable.h"


/* the nine taps of one kernel applied to windows t[0..8], tap by tap, then the bias.  With `zero` (not NULL),
 * the lanes of tap u outside zero[u] multiply as 0: their window lanes hold the neighbouring row's pixels (see
 * lab_pack_blocks).  Such a product is +0.0 where the padded reference computes k * 0.0 = ±0.0; adding a zero
 * of either sign gives the same sum unless the sum is itself zero, and the sign of a zero r never reaches the
 * bit (beta * (r1 - r0) > 0 is false for every zero), so the bits are the same. */
static inline __attribute__((always_inline)) __m512 lab_response16(const __m512 *t, const float *k, float bias, const __mmask16 *zero) {
    __m512 r = zero ? _mm512_maskz_mul_ps(zero[0], _mm512_set1_ps(k[0]), t[0]) : _mm512_mul_ps(_mm512_set1_ps(k[0]), t[0]);
    for (int u = 1; u < 9; u++)
        r = _mm512_add_ps(r, zero ? _mm512_maskz_mul_ps(zero[u], _mm512_set1_ps(k[u]), t[u])
                                  : _mm512_mul_ps(_mm512_set1_ps(k[u]), t[u]));
    return _mm512_add_ps(r, _mm512_set1_ps(bias));
}

/* the short difference sum_u delta[u] * t[u] + delta[9] with fused multiply-adds, one partial sum per kernel
 * row so that three short chains run side by side (rounded differently from the training graph: only its sign
 * is used, where lab_bound allows); `zero` as in lab_response16 */
static inline __attribute__((always_inline)) __m512 lab_difference16(const __m512 *t, const float *delta,
                                                                     const __mmask16 *zero) {
    __m512 row[3];
    for (int u = 0; u < 3; u++) {
        row[u] = u == 1 ? _mm512_set1_ps(delta[9]) : _mm512_setzero_ps();
        for (int v = 0; v < 3; v++) {
            const int tap = 3 * u + v;
            row[u] = zero ? _mm512_mask3_fmadd_ps(_mm512_set1_ps(delta[tap]), t[tap], row[u], zero[tap])
                          : _mm512_fmadd_ps(_mm512_set1_ps(delta[tap]), t[tap], row[u]);
        }
    }
    return _mm512_add_ps(_mm512_add_ps(row[0], row[1]), row[2]);
}

/* the lanes whose nine window values (as the responses read them: `zero` as in lab_response16) are all ±0 */
static inline __attribute__((always_inline)) __mmask16 lab_zero_windows16(const __m512 *t, const __mmask16 *zero) {
    __m512i any = _mm512_setzero_si512();
    for (int u = 0; u < 9; u++)
        any = _mm512_or_si512(any, _mm512_castps_si512(zero ? _mm512_maskz_mov_ps(zero[u], t[u]) : t[u]));
    return _mm512_testn_epi32_mask(any, _mm512_set1_epi32(0x7FFFFFFF));
}

/* the nine taps' windows of 16 pixels of plane x starting at flat index f0, masked as lab_tap_masks says
 * (mask == NULL: every load stays in the plane).  Each kernel row is ONE 16-float load plus the two floats
 * after it, and the windows one and two pixels to the right are lane shifts of those (valignd): a third of the
 * loads, each of which (unaligned, 64 bytes) spans two cache lines — the loads, not the arithmetic, are what
 * limits this kernel.  With masks, only the floats some tap needs are loaded, and each window is then masked. */
static inline __attribute__((always_inline)) void lab_windows16(const float *x, int64_t f0, int64_t w,
                                                                const __mmask16 *mask, __m512 *t) {
    for (int u = 0; u < 3; u++) {
        const float *row = x + f0 + (u - 1) * w - 1;
        __m512i a, b;
        if (mask) {   /* load only the floats some tap needs (lane l of tap v reads row[l + v]), then mask each */
            const uint32_t need = (uint32_t)mask[3 * u] | (uint32_t)mask[3 * u + 1] << 1 | (uint32_t)mask[3 * u + 2] << 2;
            a = _mm512_castps_si512(_mm512_maskz_loadu_ps((__mmask16)need, row));
            b = _mm512_castps_si512(_mm512_maskz_loadu_ps((__mmask16)(need >> 16), row + 16));
        } else {
            a = _mm512_castps_si512(_mm512_loadu_ps(row));
            b = _mm512_castpd_si512(_mm512_castpd128_pd512(_mm_load_sd((const double *)(row + 16))));
        }
        t[3 * u] = _mm512_castsi512_ps(a);
        t[3 * u + 1] = _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 1));
        t[3 * u + 2] = _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 2));
        if (mask)
            for (int v = 0; v < 3; v++) t[3 * u + v] = _mm512_maskz_mov_ps(mask[3 * u + v], t[3 * u + v]);
    }
}

/* mask[3u + v] bit l: pixel f0 + l exists and its tap (u, v) falls inside the image.  Walks the 16 pixels
 * (i, j) once, without a division per pixel: a tap's row is inside unless the pixel is in the first (u = 0) or
 * last (u = 2) row, its column unless the pixel is in the first (v = 0) or last (v = 2) column. */
static inline void lab_tap_masks(int64_t f0, int64_t h, int64_t w, __mmask16 *mask) {
    unsigned row[3] = {0, 0, 0}, col[3] = {0, 0, 0};
    int64_t i = f0 / w, j = f0 % w;
    for (int l = 0; l < LAB_PIXELS && i < h; l++) {
        const unsigned bit = 1u << l;
        row[0] |= i >= 1 ? bit : 0;
        row[1] |= bit;
        row[2] |= i + 1 < h ? bit : 0;
        col[0] |= j >= 1 ? bit : 0;
        col[1] |= bit;
        col[2] |= j + 1 < w ? bit : 0;
        if (++j == w) { j = 0; i++; }
    }
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++) mask[3 * u + v] = (__mmask16)(row[u] & col[v]);
}

/* The -1 pixels (bits set) of one channel over the 16 pixels at f0: the short way where the certificate
 * allows, else both responses exactly.  mask / wrapped as in lab_windows16 and lab_response16. */
static inline __attribute__((always_inline)) __mmask16 lab_minus16(
        const float *restrict x, int64_t plane, int64_t w, const float *restrict kernels,
        const float *restrict bias, __m512 vbeta, int32_t a0, int32_t a1, int64_t f0, const __mmask16 *mask,
        const __mmask16 *wrapped, const float *restrict delta, const float *bound) {
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 valid = mask ? mask[4] : (__mmask16)0xFFFF;      /* the block's pixels that exist */
    __m512 t0[9], t1[9];
    lab_windows16(x + (a0 / 2) * plane, f0, w, mask, t0);
    if (bound != NULL && a1 / 2 == a0 / 2) {
        const __m512 d = lab_difference16(t0, delta, wrapped);
        __mmask16 clear = _mm512_cmp_ps_mask(_mm512_abs_ps(d), _mm512_set1_ps(*bound), _CMP_GT_OQ);
        if ((clear & valid) != valid) clear |= lab_zero_windows16(t0, wrapped);
        if ((clear & valid) == valid)
            return (__mmask16)~_mm512_cmp_ps_mask(_mm512_mul_ps(vbeta, d), zero, _CMP_GT_OQ);
    }
    __m512 r0 = lab_response16(t0, kernels + 9 * a0, bias[a0], wrapped), r1;
    if (a1 / 2 == a0 / 2) {
        r1 = lab_response16(t0, kernels + 9 * a1, bias[a1], wrapped);
    } else {
        lab_windows16(x + (a1 / 2) * plane, f0, w, mask, t1);
        r1 = lab_response16(t1, kernels + 9 * a1, bias[a1], wrapped);
    }
    return (__mmask16)~_mm512_cmp_ps_mask(_mm512_mul_ps(vbeta, _mm512_sub_ps(r1, r0)), zero, _CMP_GT_OQ);
}

/* The 16 words (two zmm) of word q of the flat block at f0: every channel of that word, ORed in as in
 * portable.h. */
static inline __attribute__((always_inline)) void lab_word16(
        const float *restrict x, int64_t plane, int64_t c, int64_t w, const float *restrict kernels,
        const float *restrict bias, __m512 vbeta, const int32_t *restrict map0, const int32_t *restrict map1,
        int64_t f0, int64_t q, const __mmask16 *mask, const __mmask16 *wrapped, const float *restrict delta,
        const float *restrict bound, uint64_t *word) {
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
    for (int64_t ch = q * 64; ch < c1; ch++) {
        const __mmask16 minus = lab_minus16(x, plane, w, kernels, bias, vbeta, map0[ch], map1[ch], f0, mask,
                                             wrapped, delta ? delta + LAB_SHORT * ch : NULL, bound ? bound + ch : NULL);
        const __m512i bit = _mm512_set1_epi64((long long)(1ULL << (ch & 63)));
        lo = _mm512_mask_or_epi64(lo, (__mmask8)minus, lo, bit);
        hi = _mm512_mask_or_epi64(hi, (__mmask8)(minus >> 8), hi, bit);
    }
    _mm512_storeu_si512((void *)word, lo);
    _mm512_storeu_si512((void *)(word + 8), hi);
}

/* Flat blocks [b0, b1) of 16 pixels of one image (maps narrower than LAB_TILE_MIN_WIDTH). */
static void lab_pack_flat(const float *restrict x, int64_t plane, int64_t c, int64_t h, int64_t w,
                          const float *restrict kernels, const float *restrict bias, __m512 vbeta,
                          const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                          uint64_t *restrict out, int64_t p, const float *restrict delta,
                          const float *restrict bound) {
    const int64_t cw = (c + 63) / 64;
    uint64_t word[LAB_PIXELS];
    __mmask16 mask[9];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t f0 = blk * LAB_PIXELS;
        lab_tap_masks(f0, h, w, mask);
        /* inside: every tap of every pixel is in the image (plain loads); rows inside: 16 pixels whose rows above
         * and below exist, so plain loads stay in the plane and only the lanes that wrapped to the next or the
         * previous row must count as 0 (a masked multiply, which costs nothing, instead of masked loads) */
        int inside = 1;
        for (int k = 0; k < 9; k++) inside &= mask[k] == (__mmask16)0xFFFF;
        const int rows_inside = mask[1] == (__mmask16)0xFFFF && mask[7] == (__mmask16)0xFFFF &&
                                f0 - w - 1 >= 0 && f0 + LAB_PIXELS + w < h * w;    /* every load in the plane */
        for (int64_t q = 0; q < cw; q++) {
            if (inside)
                lab_word16(x, plane, c, w, kernels, bias, vbeta, map0, map1, f0, q, NULL, NULL, delta, bound, word);
            else if (rows_inside)
                lab_word16(x, plane, c, w, kernels, bias, vbeta, map0, map1, f0, q, NULL, mask, delta, bound, word);
            else
                lab_word16(x, plane, c, w, kernels, bias, vbeta, map0, map1, f0, q, mask, NULL, delta, bound, word);
            int64_t i = f0 / w, j = f0 % w;            /* pixel f0 + l, walked without a division each */
            for (int l = 0; l < LAB_PIXELS && i < h; l++) {
                out[((i + p) * (w + 2 * p) + j + p) * cw + q] = word[l];
                if (++j == w) { j = 0; i++; }
            }
        }
    }
}

/* Tiles: on maps at least LAB_TILE_MIN_WIDTH wide, a unit of work is 16 columns [j0, j0 + 16) of
 * LAB_TILE_ROWS rows.  Each input row the tile reads is loaded once (one masked load of 16 floats and one of
 * the 2 after them, zeros outside the row) and serves, shifted, all three taps of every output row it touches:
 * (R + 2) / R loads per row of output instead of 3, no wrapped lanes, and the difference kernel's nine
 * broadcasts shared by the R rows. */
#define LAB_TILE_ROWS 7
#define LAB_TILE_MIN_WIDTH 4

/* the three windows (taps v = 0, 1, 2) of input row r at columns j0 - 1 + v + lane; zeros outside the image */
static inline __attribute__((always_inline)) void lab_row_windows(const float *x, int64_t r, int64_t h, int64_t w,
                                                                  int64_t j0, __mmask16 ma, __mmask16 mb,
                                                                  __m512 *t) {
    if (r < 0 || r >= h) {
        t[0] = t[1] = t[2] = _mm512_setzero_ps();
        return;
    }
    const float *row = x + r * w + j0 - 1;
    __m512i a, b;
    if (ma == (__mmask16)0xFFFF && mb == (__mmask16)3) {      /* an inner segment: plain loads */
        a = _mm512_castps_si512(_mm512_loadu_ps(row));
        b = _mm512_castpd_si512(_mm512_castpd128_pd512(_mm_load_sd((const double *)(row + 16))));
    } else {
        a = _mm512_castps_si512(_mm512_maskz_loadu_ps(ma, row));
        b = _mm512_castps_si512(_mm512_maskz_loadu_ps(mb, row + 16));
    }
    t[0] = _mm512_castsi512_ps(a);
    t[1] = _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 1));
    t[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 2));
}

/* The -1 pixels of one channel for the tile rows i0 .. i0 + R - 1 (those below h are left 0) at j0. */
static inline __attribute__((always_inline)) void lab_tile_minus(
        const float *restrict x, int64_t h, int64_t w, const float *restrict kernels, const float *restrict bias,
        __m512 vbeta, int32_t a0, int32_t a1, int64_t plane, int64_t i0, int64_t j0, __mmask16 ma, __mmask16 mb,
        __mmask16 valid, const float *restrict delta, const float *bound, __mmask16 *minus) {
    const __m512 zero = _mm512_setzero_ps();
    const float *xa = x + (a0 / 2) * plane;
    const int short_way = bound != NULL && a1 / 2 == a0 / 2;
    __m512 d[LAB_TILE_ROWS];
    if (short_way) {
        _Pragma("GCC unroll 16")
        for (int o = 0; o < LAB_TILE_ROWS; o++) d[o] = _mm512_set1_ps(delta[9]);
        _Pragma("GCC unroll 16")
        for (int r = -1; r <= LAB_TILE_ROWS; r++) {          /* input row i0 + r feeds output rows r - 1 .. r + 1 */
            __m512 t[3];
            lab_row_windows(xa, i0 + r, h, w, j0, ma, mb, t);
            _Pragma("GCC unroll 16")
            for (int o = 0; o < LAB_TILE_ROWS; o++) {
                const int u = r - o + 1;
                if (u < 0 || u > 2) continue;
                _Pragma("GCC unroll 3")
                for (int v = 0; v < 3; v++) d[o] = _mm512_fmadd_ps(_mm512_set1_ps(delta[3 * u + v]), t[v], d[o]);
            }
        }
    }
    _Pragma("GCC unroll 16")
    for (int o = 0; o < LAB_TILE_ROWS; o++) {
        minus[o] = 0;
        if (i0 + o >= h) continue;
        if (short_way) {
            __mmask16 clear = _mm512_cmp_ps_mask(_mm512_abs_ps(d[o]), _mm512_set1_ps(*bound), _CMP_GT_OQ) & valid;
            __m512 t[9];
            if (clear != valid) {
                for (int u = 0; u < 3; u++) lab_row_windows(xa, i0 + o + u - 1, h, w, j0, ma, mb, t + 3 * u);
                clear |= lab_zero_windows16(t, NULL) & valid;
            }
            if (clear == valid) {
                minus[o] = (__mmask16)~_mm512_cmp_ps_mask(_mm512_mul_ps(vbeta, d[o]), zero, _CMP_GT_OQ);
                continue;
            }
        }
        __m512 t0[9], t1[9];
        for (int u = 0; u < 3; u++) lab_row_windows(xa, i0 + o + u - 1, h, w, j0, ma, mb, t0 + 3 * u);
        const __m512 r0 = lab_response16(t0, kernels + 9 * a0, bias[a0], NULL);
        __m512 r1;
        if (a1 / 2 == a0 / 2) {
            r1 = lab_response16(t0, kernels + 9 * a1, bias[a1], NULL);
        } else {
            for (int u = 0; u < 3; u++)
                lab_row_windows(x + (a1 / 2) * plane, i0 + o + u - 1, h, w, j0, ma, mb, t1 + 3 * u);
            r1 = lab_response16(t1, kernels + 9 * a1, bias[a1], NULL);
        }
        minus[o] = (__mmask16)~_mm512_cmp_ps_mask(_mm512_mul_ps(vbeta, _mm512_sub_ps(r1, r0)), zero, _CMP_GT_OQ);
    }
}

/* Units [b0, b1) of one image: unit b is word q = b % CW of tile t = b / CW, which covers rows (t / S) * R ..
 * + R - 1 and columns (t % S) * 16 .. + 15, S = ceil(W / 16). */
static void lab_pack_tiles(const float *restrict x, int64_t plane, int64_t c, int64_t h, int64_t w,
                           const float *restrict kernels, const float *restrict bias, __m512 vbeta,
                           const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                           uint64_t *restrict out, int64_t p, const float *restrict delta,
                           const float *restrict bound) {
    const int64_t cw = (c + 63) / 64, segments = (w + LAB_PIXELS - 1) / LAB_PIXELS;
    for (int64_t unit = b0; unit < b1; unit++) {
        const int64_t tile = unit / cw, q = unit % cw;
        const int64_t i0 = tile / segments * LAB_TILE_ROWS, j0 = tile % segments * LAB_PIXELS;
        const int64_t cols = w - j0 < LAB_PIXELS ? w - j0 : LAB_PIXELS;          /* output columns in the tile */
        const __mmask16 valid = (__mmask16)((1u << cols) - 1);
        /* the row floats at columns j0 - 1 + lane (a) and j0 + 15 + lane (b) that lie in the row */
        const int64_t first = j0 == 0 ? 1 : 0, last_a = w - j0 + 1 < 16 ? w - j0 + 1 : 16;
        const __mmask16 ma = (__mmask16)(((1u << last_a) - 1) & ~((1u << first) - 1));
        const int64_t last_b = w - j0 - 15 < 0 ? 0 : (w - j0 - 15 < 2 ? w - j0 - 15 : 2);
        const __mmask16 mb = (__mmask16)((1u << last_b) - 1);
        /* channel ch's bit goes to bit ch % 32 of 32-bit lanes: channels q*64 .. +31 in half[0], the next 32 in
         * half[1] (one masked OR per row and channel); the two halves make each pixel's 64-bit word at the end */
        __m512i half[2][LAB_TILE_ROWS];
        for (int o = 0; o < LAB_TILE_ROWS; o++) half[0][o] = half[1][o] = _mm512_setzero_si512();
        for (int part = 0; part < 2; part++) {
            const int64_t c0 = q * 64 + 32 * part, c1 = c0 + 32 < c ? c0 + 32 : c;
            for (int64_t ch = c0; ch < c1; ch++) {
                __mmask16 minus[LAB_TILE_ROWS];
                lab_tile_minus(x, h, w, kernels, bias, vbeta, map0[ch], map1[ch], plane, i0, j0, ma, mb, valid,
                               delta ? delta + LAB_SHORT * ch : NULL, bound ? bound + ch : NULL, minus);
                const __m512i bit = _mm512_set1_epi32((int)(1u << (ch & 31)));
                _Pragma("GCC unroll 16")
                for (int o = 0; o < LAB_TILE_ROWS; o++)
                    half[part][o] = _mm512_mask_or_epi32(half[part][o], minus[o], half[part][o], bit);
            }
        }
        for (int o = 0; o < LAB_TILE_ROWS && i0 + o < h; o++) {
            uint32_t low[LAB_PIXELS], high[LAB_PIXELS];
            _mm512_storeu_si512((void *)low, half[0][o]);
            _mm512_storeu_si512((void *)high, half[1][o]);
            uint64_t *dst = out + ((i0 + o + p) * (w + 2 * p) + j0 + p) * cw + q;
            for (int l = 0; l < cols; l++) dst[l * cw] = (uint64_t)high[l] << 32 | low[l];
        }
    }
}

/* How many units of work cover an image of c channels: (tile, packed word) pairs, so that even a 7 x 7 map
 * (one tile) splits over threads by its words of 64 channels; flat blocks on maps narrower than tiles. */
static inline int64_t lab_blocks(int64_t c, int64_t h, int64_t w) {
    if (w >= LAB_TILE_MIN_WIDTH)
        return (h + LAB_TILE_ROWS - 1) / LAB_TILE_ROWS * ((w + LAB_PIXELS - 1) / LAB_PIXELS) * ((c + 63) / 64);
    return (h * w + LAB_PIXELS - 1) / LAB_PIXELS;
}

/* Whether maps of this size take the short way: on narrow maps (flat blocks, most of them masked) the bound's
 * pass over the input costs more than the short way saves. */
static inline int lab_short_way_pays(int64_t h, int64_t w) { (void)h; return w >= LAB_TILE_MIN_WIDTH; }

/* Units [b0, b1) of one image (lab_blocks); x is the image (C, H, W) itself, planes `plane` = H*W floats
 * apart; the other arguments as in portable.h (bound NULL: always the exact responses). */
static void lab_pack_blocks(const float *restrict x, int64_t plane, int64_t c, int64_t h, int64_t w,
                            const float *restrict kernels, const float *restrict bias, float beta,
                            const int32_t *restrict map0, const int32_t *restrict map1, int64_t b0, int64_t b1,
                            uint64_t *restrict out, int64_t p, const float *restrict delta,
                            const float *restrict bound) {
    const __m512 vbeta = _mm512_set1_ps(beta);
    if (w >= LAB_TILE_MIN_WIDTH)
        lab_pack_tiles(x, plane, c, h, w, kernels, bias, vbeta, map0, map1, b0, b1, out, p, delta, bound);
    else
        lab_pack_flat(x, plane, c, h, w, kernels, bias, vbeta, map0, map1, b0, b1, out, p, delta, bound);
}

#endif
