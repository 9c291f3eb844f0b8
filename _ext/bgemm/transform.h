/* The output transform every XNOR-popcount GEMM applies as it stores a result, shared by all instruction sets.
 *
 * The GEMM produces integer dot products of ±1 vectors; what a layer needs is the float32 value after its
 * per-channel scale, zero-padding correction, ReLU, eval-mode BatchNorm, residual add and PReLU.  Applying those
 * while the integer is still in a register saves a pass over the output for each of them. */
#ifndef MINILAB_BGEMM_TRANSFORM_H
#define MINILAB_BGEMM_TRANSFORM_H
#include <stdint.h>
#include <string.h>

/* The fused output transform, applied per output element in this exact order (each step optional):
 *   v = nbits - 2*popcount;  v -= corr[pattern[m]][n] (zero padding);  v *= alpha[n];  v = max(v, 0);
 *   v = (v - mean[n]) * invstd[n];  v *= gamma[n];  v += beta[n];
 *   r = residual[m][n];  r = ((r - res_mean[n]) * res_invstd[n]) * res_gamma[n] + res_beta[n];  v += r;
 *   v = v > 0 ? v : prelu[n] * v
 * Every step is one rounded float32 operation, in NumPy's order, so the result is bit-identical to the training
 * graph's eval-mode conv -> (ReLU) -> BatchNorm -> (+ shortcut) -> (PReLU) (the extension is compiled with
 * -ffp-contract=off: no FMA).  The res_ vectors are the shortcut's own eval BatchNorm (a downsampling block's
 * 1x1 conv -> BatchNorm), applied to each residual value as it is read, in the BatchNorm kernel's order. */
typedef struct {
    const int32_t *row_pattern;   /* (M,) index into pattern_corr, or NULL */
    const float *pattern_corr;    /* (patterns, N) */
    const float *alpha;
    int relu;
    const float *mean, *invstd, *gamma, *beta;
    const float *residual;        /* added after BatchNorm, laid out like C (the block's shortcut), or NULL */
    const float *res_mean, *res_invstd, *res_gamma, *res_beta;   /* the residual's BatchNorm, or all NULL */
    const float *prelu;           /* per-channel PReLU slope applied last, or NULL */
    int64_t pixels;               /* > 0: write C as NCHW with this many pixels per image; 0: row-major (M, N) */
} transform_t;

/* The address of element (m, n0) of C, or of anything laid out like C, and the distance between channels. */
static inline int64_t transform_offset(const transform_t *t, int64_t m, int64_t n0, int64_t N, int64_t *step) {
    if (t->pixels > 0) {
        int64_t img = m / t->pixels, p = m - img * t->pixels;
        *step = t->pixels;
        return (img * N + n0) * t->pixels + p;
    }
    *step = 1;
    return m * N + n0;
}

/* residual[(m, n0 .. n0 + count)] into r, through the residual's BatchNorm when there is one */
static inline void transform_residual(const transform_t *t, int64_t m, int64_t n0, int64_t count, int64_t N,
                                      float *restrict r) {
    int64_t step, at = transform_offset(t, m, n0, N, &step);
    for (int64_t j = 0; j < count; j++) r[j] = t->residual[at + j * step];
    if (t->res_mean)
        for (int64_t j = 0; j < count; j++) {
            const float xhat = (r[j] - t->res_mean[n0 + j]) * t->res_invstd[n0 + j];
            r[j] = xhat * t->res_gamma[n0 + j] + t->res_beta[n0 + j];
        }
}

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
    if (t->residual) {
        float r[16];
        transform_residual(t, m, n0, count, N, r);
        for (int64_t j = 0; j < count; j++) v[j] = v[j] + r[j];
    }
    if (prelu) for (int64_t j = 0; j < count; j++) v[j] = v[j] > 0.0f ? v[j] : prelu[j] * v[j];
    int64_t step;
    float *out = C + transform_offset(t, m, n0, N, &step);
    if (step == 1)
        for (int64_t j = 0; j < count; j++) out[j] = v[j];
    else
        for (int64_t j = 0; j < count; j++) out[j * step] = v[j];
}

#endif
