/* Float32 GEMM with AVX-512 FMA, for the float products of training (the backward of every conv, the Winograd
   products) on CPUs with AVX-512, whatever kernels the BLAS chose.

   Row-major C[m×n] = A·B + beta·C, A m×k (stored k×m when ta), B k×n (stored n×k when tb).  The classic layout
   of a fast GEMM (Goto's, as BLIS and OpenBLAS have it):
     - k is cut in slices of KC; for each slice, 12 rows of A at a time are packed side by side (a panel: for each
       step of k, 12 consecutive values) and B's columns 32 at a time (for each step of k, 32 values);
     - the micro-kernel multiplies one A panel by one B panel: 12×32 of C kept in 24 zmm registers, each step of
       k two loads of B, 12 broadcasts of A and 24 fused multiply-adds;
     - an A panel (KC×12) stays in the L1 cache while the kernel walks the B panels of a packed B block (KC×NC,
       in L2); the packed A block (MC×KC) waits in L3.
   Each value of C sums its k products in the same order wherever it lies in a tile and however the caller cuts C
   into blocks: its bits do not depend on the thread count.  Tile edges are zero-padded when packed (rows) and
   masked when stored (columns). */
#ifndef MINILAB_SGEMM_AVX512_H
#define MINILAB_SGEMM_AVX512_H
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

enum { SG_MR = 12, SG_NR = 32, SG_KC = 384, SG_NC = 480, SG_MC = 3072 };

/* Packing buffers, one pair per thread, grown when needed and kept: allocating them per call would map fresh
   pages (zeroed by the kernel) on every GEMM of a training step.  A thread's pair is freed when the thread ends
   (the pthread key's destructor), so short-lived threads leave nothing behind. */
typedef struct { float *a, *b; int64_t a_size, b_size; } sg_buffers_t;
static __thread sg_buffers_t *sg_local = 0;
static pthread_key_t sg_key;
static pthread_once_t sg_key_once = PTHREAD_ONCE_INIT;

static void sg_free_buffers(void *p) {
    sg_buffers_t *buffers = (sg_buffers_t *)p;
    free(buffers->a);
    free(buffers->b);
    free(buffers);
}

static void sg_make_key(void) { pthread_key_create(&sg_key, sg_free_buffers); }

static sg_buffers_t *sg_thread_buffers(void) {
    if (!sg_local) {
        pthread_once(&sg_key_once, sg_make_key);
        sg_local = (sg_buffers_t *)calloc(1, sizeof(sg_buffers_t));
        if (sg_local)
            pthread_setspecific(sg_key, sg_local);
    }
    return sg_local;
}

static float *sg_buffer(float **buf, int64_t *size, int64_t need) {
    if (*size < need) {
        free(*buf);
        *buf = (float *)aligned_alloc(64, (size_t)((need * 4 + 63) / 64 * 64));
        *size = *buf ? need : 0;
    }
    return *buf;
}

/* Rows 0..rows-1 (at most 16) of src, values 0..cols-1 (at most 16) of each, transposed: value t of every row
   goes to dst + t*ldd, one 16-lane vector per t, stored under `keep` (a panel narrower than 16 keeps its first
   lanes).  Missing rows read as zeros.  Three rounds of shuffles: pairs of values, then of 2-, then 4-lane
   groups (the usual 16×16 transpose in registers). */
static inline __attribute__((always_inline)) void sg_transpose16(const float *src, int64_t ld, int rows,
                                                                 int cols, float *dst, int64_t ldd,
                                                                 __mmask16 keep) {
    __mmask16 load = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + i * ld) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
    for (int i = 0; i < cols; i++)
        _mm512_mask_storeu_ps(dst + i * ldd, keep, r[i]);
}

/* Rows [r0, r0 + rows) of op(A), k-slice [p0, p0 + kc), into panels of SG_MR rows: panel[kk*SG_MR + r]. */
static void sg_pack_a(int ta, const float *a, int64_t lda, int64_t r0, int64_t rows, int64_t p0, int64_t kc,
                      float *restrict out) {
    for (int64_t i = 0; i < rows; i += SG_MR) {
        int64_t h = rows - i < SG_MR ? rows - i : SG_MR;
        float *restrict panel = out + i * kc;
        if (ta) {   /* A stored k×m: the panel's 12 values of one k step are consecutive (one masked copy;
                       a plain loop became a memmove call per step) */
            __mmask16 valid = (__mmask16)((1u << h) - 1);
            for (int64_t kk = 0; kk < kc; kk++)
                _mm512_mask_storeu_ps(panel + kk * SG_MR, (__mmask16)0x0FFF,
                                      _mm512_maskz_loadu_ps(valid, a + (p0 + kk) * lda + r0 + i));
        } else {    /* A stored m×k: 16 steps of k of the panel's rows at a time, transposed */
            for (int64_t kk = 0; kk < kc; kk += 16)
                sg_transpose16(a + (r0 + i) * lda + p0 + kk, lda, (int)h, kc - kk < 16 ? (int)(kc - kk) : 16,
                               panel + kk * SG_MR, SG_MR, (__mmask16)0x0FFF);
        }
    }
}

/* Columns c0..c0+cols of op(B), k-slice p0..p0+kc, into panels of SG_NR columns: panel[kk*SG_NR + c]. */
static void sg_pack_b(int tb, const float *b, int64_t ldb, int64_t c0, int64_t cols, int64_t p0, int64_t kc,
                      float *restrict out) {
    for (int64_t j = 0; j < cols; j += SG_NR) {
        int64_t w = cols - j < SG_NR ? cols - j : SG_NR;
        float *restrict panel = out + j * kc;
        if (!tb) {  /* B stored k×n: 32 consecutive values per k step */
            __mmask16 m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
            __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
            for (int64_t kk = 0; kk < kc; kk++) {
                const float *src = b + (p0 + kk) * ldb + c0 + j;
                _mm512_store_ps(panel + kk * SG_NR, _mm512_maskz_loadu_ps(m0, src));
                _mm512_store_ps(panel + kk * SG_NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
            }
        } else {    /* B stored n×k: 16 columns × 16 steps of k at a time, transposed */
            for (int64_t half = 0; half < SG_NR; half += 16) {
                int64_t width = w - half < 0 ? 0 : w - half > 16 ? 16 : w - half;
                const float *first = width ? b + (c0 + j + half) * ldb + p0 : b;   /* no column: not read */
                for (int64_t kk = 0; kk < kc; kk += 16)
                    sg_transpose16(first + kk, ldb, (int)width, kc - kk < 16 ? (int)(kc - kk) : 16,
                                   panel + kk * SG_NR + half, SG_NR, (__mmask16)0xFFFF);
            }
        }
    }
}

/* One 12×32 tile of C: the sum over kc steps of an A panel times a B panel, then C = acc (first slice, beta 0),
   C = beta·C + acc (first slice) or C += acc (later slices), for the first `rows` rows and the columns in m0/m1. */
static inline __attribute__((always_inline)) void sg_kernel(int64_t kc, const float *restrict ap, int64_t ars,
        int64_t aks, const float *restrict bp, float *c, int64_t ldc, int64_t rows, __mmask16 m0, __mmask16 m1,
        int first, float beta) {
#define SG_ROW(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
    SG_ROW(0) SG_ROW(1) SG_ROW(2) SG_ROW(3) SG_ROW(4) SG_ROW(5)
    SG_ROW(6) SG_ROW(7) SG_ROW(8) SG_ROW(9) SG_ROW(10) SG_ROW(11)
#undef SG_ROW
    for (int64_t kk = 0; kk < kc; kk++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#define SG_FMA(r) { __m512 a = _mm512_set1_ps(ap[(r) * ars]); \
                    c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0); c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1); }
        SG_FMA(0) SG_FMA(1) SG_FMA(2) SG_FMA(3) SG_FMA(4) SG_FMA(5)
        SG_FMA(6) SG_FMA(7) SG_FMA(8) SG_FMA(9) SG_FMA(10) SG_FMA(11)
#undef SG_FMA
        ap += aks;
        bp += SG_NR;
    }
    __m512 vbeta = _mm512_set1_ps(beta);
#define SG_STORE(r) if (r < rows) { \
        float *row = c + (int64_t)(r) * ldc; \
        __m512 o0 = c##r##0, o1 = c##r##1; \
        if (!first) { \
            o0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), o0); \
            o1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), o1); \
        } else if (beta != 0.0f) { \
            o0 = _mm512_add_ps(_mm512_mul_ps(vbeta, _mm512_maskz_loadu_ps(m0, row)), o0); \
            o1 = _mm512_add_ps(_mm512_mul_ps(vbeta, _mm512_maskz_loadu_ps(m1, row + 16)), o1); \
        } \
        _mm512_mask_storeu_ps(row, m0, o0); \
        _mm512_mask_storeu_ps(row + 16, m1, o1); }
    SG_STORE(0) SG_STORE(1) SG_STORE(2) SG_STORE(3) SG_STORE(4) SG_STORE(5)
    SG_STORE(6) SG_STORE(7) SG_STORE(8) SG_STORE(9) SG_STORE(10) SG_STORE(11)
#undef SG_STORE
}

/* The kernel on a packed A panel (element (r, kk) at ap[kk*12 + r]) ... */
static void sg_kernel_packed(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int64_t rows,
                             __mmask16 m0, __mmask16 m1, int first, float beta) {
    sg_kernel(kc, ap, 1, SG_MR, bp, c, ldc, rows, m0, m1, first, beta);
}

/* ... and on 12 whole rows of a row-major A read where they lie (element (r, kk) at ap[r*lda + kk]): packing
   them would be a transpose, and the rows' 12 streams stay in the L1 cache while the kernel walks the B panels. */
static void sg_kernel_rows(int64_t kc, const float *ap, int64_t lda, const float *bp, float *c, int64_t ldc,
                           __mmask16 m0, __mmask16 m1, int first, float beta) {
    sg_kernel(kc, ap, lda, 1, bp, c, ldc, SG_MR, m0, m1, first, beta);
}

/* C = op(A)·op(B) + beta·C; returns 0, or -1 when a packing buffer cannot be allocated (C untouched). */
static int sgemm_avx512(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0) {   /* an empty sum: C = beta·C, and never 0·C (C may hold anything when beta is 0) */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return 0;
    }
    /* k in equal slices of at most SG_KC (a short last slice would store C once more for little work) */
    int64_t slices = (k + SG_KC - 1) / SG_KC, kc_max = (k + slices - 1) / slices;
    int64_t mc_max = m < SG_MC ? m : SG_MC, nc_max = n < SG_NC ? n : SG_NC;
    sg_buffers_t *own = sg_thread_buffers();
    if (!own)
        return -1;
    /* a row-major A is read in place but for a last, partial panel: one panel's room then */
    float *ap = sg_buffer(&own->a, &own->a_size, (ta ? (mc_max + SG_MR - 1) / SG_MR * SG_MR : SG_MR) * kc_max);
    float *bp = sg_buffer(&own->b, &own->b_size, ((nc_max + SG_NR - 1) / SG_NR * SG_NR) * kc_max);
    if (!ap || !bp)
        return -1;
    for (int64_t i0 = 0; i0 < m; i0 += SG_MC) {
        int64_t mc = m - i0 < SG_MC ? m - i0 : SG_MC;
        for (int64_t p0 = 0; p0 < k; p0 += kc_max) {
            int64_t kc = k - p0 < kc_max ? k - p0 : kc_max;
            int first = p0 == 0;
            int64_t packed_from = ta ? 0 : mc / SG_MR * SG_MR;   /* a row-major A: only a last, partial panel, */
            sg_pack_a(ta, a, lda, i0 + packed_from, mc - packed_from, p0, kc, ap);   /* packed at ap */
            for (int64_t j0 = 0; j0 < n; j0 += SG_NC) {
                int64_t nc = n - j0 < SG_NC ? n - j0 : SG_NC;
                sg_pack_b(tb, b, ldb, j0, nc, p0, kc, bp);
                for (int64_t i = 0; i < mc; i += SG_MR) {       /* one A panel, kept in L1 ... */
                    int64_t rows = mc - i < SG_MR ? mc - i : SG_MR;
                    for (int64_t j = 0; j < nc; j += SG_NR) {   /* ... times each B panel, from L2 */
                        int64_t w = nc - j;
                        __mmask16 m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
                        __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
                        float *tile = c + (i0 + i) * ldc + j0 + j;
                        if (i < packed_from)
                            sg_kernel_rows(kc, a + (i0 + i) * lda + p0, lda, bp + j * kc, tile, ldc, m0, m1, first,
                                           beta);
                        else
                            sg_kernel_packed(kc, ap + (i - packed_from) * kc, bp + j * kc, tile, ldc, rows, m0, m1,
                                             first, beta);
                    }
                }
            }
        }
    }
    return 0;
}
#endif
