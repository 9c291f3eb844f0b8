/* Bit packing for the XNOR-popcount kernels (bit = 1 means -1; padding bits are 0, i.e. +1).
 * Each 64-bit word is assembled in a register or a row of registers and stored once: read-modify-writes of
 * single bits in memory were slower than the popcount GEMM itself. */
#ifndef MINILAB_PACK_H
#define MINILAB_PACK_H
#include <stdint.h>
#include <string.h>

/* One image row: x is (C, H, W) float, row i.  Pixel j's word q goes to out[j * cw + q] (out points at the
 * packed row's first pixel); acc is scratch for W words.  Channel c goes to bit c % 64 of word c / 64 of its
 * pixel.  The inner loop runs along the row, so it vectorises. */
static void pack_row_channels_last(const float *restrict x, int64_t c, int64_t h, int64_t w, int64_t i,
                                   uint64_t *restrict out, int64_t cw, uint64_t *restrict acc) {
    for (int64_t q = 0; q < cw; q++) {
        memset(acc, 0, (size_t)w * sizeof(uint64_t));
        const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
        for (int64_t ch = q * 64; ch < c1; ch++) {
            const float *row = x + (ch * h + i) * w;
            const int shift = (int)(ch & 63);
            for (int64_t j = 0; j < w; j++) acc[j] |= (uint64_t)(row[j] < 0.0f) << shift;
        }
        for (int64_t j = 0; j < w; j++) out[j * cw + q] = acc[j];
    }
}

/* One output channel f of weights (C, kh*kw) float: word q of tap t is stored at bt[(t * cw + q) * ld + f]. */
static void pack_weight_channel(const float *restrict wf, int64_t c, int64_t taps, int64_t cw,
                                uint64_t *restrict bt, int64_t ld, int64_t f) {
    for (int64_t t = 0; t < taps; t++) {
        for (int64_t q = 0; q < cw; q++) {
            uint64_t word = 0;
            const int64_t c1 = (q + 1) * 64 < c ? (q + 1) * 64 : c;
            for (int64_t ch = q * 64; ch < c1; ch++) word |= (uint64_t)(wf[ch * taps + t] < 0.0f) << (ch & 63);
            bt[(t * cw + q) * ld + f] = word;
        }
    }
}

#endif
