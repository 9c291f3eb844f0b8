# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twins of minilab's NumPy reference ops (minilab/ops/*.py is the readable version of each).

Float kernels: im2col / col2im for conv2d, depthwise 3x3 forward / backward (LAB's hot spot), LAB's fused
argmax.  Binary kernels: bit-packing (bit = 1 means -1), packed im2col, and the XNOR-popcount GEMM of bgemm.h."""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport uint64_t, int64_t, int32_t
from libc.string cimport memset

cnp.import_array()

cdef extern from "bgemm.h" nogil:
    const char *MINILAB_BGEMM_ISA
    ctypedef struct transform_t:
        const int32_t *row_pattern
        const float *pattern_corr
        const float *alpha
        int relu
        const float *mean
        const float *invstd
        const float *gamma
        const float *beta
        const float *prelu
        int64_t pixels
    void bgemm_rows(const uint64_t *A, const uint64_t *Bt, float *C, int64_t m0, int64_t m1, int64_t N,
                    int64_t Npad, int64_t K, int64_t nbits, const transform_t *t)


def isa():
    """Which popcount implementation this build uses: avx512-vpopcntdq, neon or portable."""
    return MINILAB_BGEMM_ISA.decode()


# ---------------------------------------------------------------------------------------------- float kernels
def im2col(const float[:, :, :, ::1] xp, int kh, int kw, int sh, int sw, int oh, int ow, int threads=1):
    """cols[n*OH*OW + i*OW + j, c*kh*kw + u*kw + v] = xp[n, c, i*sh + u, j*sw + v] (xp already padded).
    Images are split over `threads` OpenMP threads."""
    cdef Py_ssize_t n = xp.shape[0], c = xp.shape[1]
    cdef Py_ssize_t K = c * kh * kw
    out = np.empty((n * oh * ow, K), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[:, ::1] cols = out
    cdef Py_ssize_t b, ch, i, j, u, v, row, col
    for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                col = 0
                for ch in range(c):
                    for u in range(kh):
                        for v in range(kw):
                            cols[row, col] = xp[b, ch, i * sh + u, j * sw + v]
                            col = col + 1
    return out


def col2im(const float[:, ::1] dcols, int n, int c, int hp, int wp, int kh, int kw, int sh, int sw, int oh, int ow,
           int threads=1):
    """The adjoint of im2col: dxp[n, c, i*sh + u, j*sw + v] += dcols[row, col] (images split over threads:
    each image's writes are its own)."""
    out = np.zeros((n, c, hp, wp), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[:, :, :, ::1] dxp = out
    cdef Py_ssize_t b, ch, i, j, u, v, row, col
    for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                col = 0
                for ch in range(c):
                    for u in range(kh):
                        for v in range(kw):
                            dxp[b, ch, i * sh + u, j * sw + v] += dcols[row, col]
                            col = col + 1
    return out


cdef extern from "depthwise.h" nogil:
    void dw3x3_forward_plane(const float *x, int64_t xw, const float *w9, float bias, float *y, int64_t oh,
                             int64_t ow, int64_t sh, int64_t sw)
    void dw3x3_backward_plane(const float *x, float *dx, int64_t xw, const float *w9, const float *g, double *dw9,
                              int64_t oh, int64_t ow, int64_t sh, int64_t sw)


def depthwise3x3_forward(const float[:, :, :, ::1] xp, const float[:, :, :, ::1] w, int sh, int sw, int oh, int ow,
                         int threads=1, bias=None):
    """y[n, c*m + k, i, j] = b[c*m + k] + sum_{u,v} w[c*m + k, 0, u, v] * xp[n, c, i*sh + u, j*sw + v]."""
    cdef Py_ssize_t n = xp.shape[0], c = xp.shape[1], cm = w.shape[0], hp = xp.shape[2], wp = xp.shape[3]
    cdef Py_ssize_t m = cm // c
    out = np.empty((n, cm, oh, ow), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[:, :, :, ::1] y = out
    cdef float[::1] bv = np.zeros(cm, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    if bv.shape[0] != cm:
        raise ValueError(f"depthwise3x3_forward: bias has {bv.shape[0]} entries for {cm} output channels")
    cdef Py_ssize_t plane, b, o
    for plane in prange(n * cm, nogil=True, num_threads=max(threads, 1), schedule="static"):
        b = plane // cm
        o = plane % cm
        dw3x3_forward_plane(&xp[b, o // m, 0, 0], wp, &w[o, 0, 0, 0], bv[o], &y[b, o, 0, 0], oh, ow, sh, sw)
    return out


def depthwise3x3_backward(const float[:, :, :, ::1] xp, const float[:, :, :, ::1] w, const float[:, :, :, ::1] g,
                          int sh, int sw):
    """dw[c*m+k, 0, u, v] = sum g[n, c*m+k, i, j] * xp[n, c, i*sh+u, j*sw+v];
    dxp[n, c, i*sh+u, j*sw+v] += sum_k g[n, c*m+k, i, j] * w[c*m+k, 0, u, v]."""
    cdef Py_ssize_t n = xp.shape[0], c = xp.shape[1], cm = w.shape[0], oh = g.shape[2], ow = g.shape[3]
    cdef Py_ssize_t m = cm // c, wp = xp.shape[3]
    dx_arr = np.zeros((n, c, xp.shape[2], xp.shape[3]), dtype=np.float32)
    dw_arr = np.zeros((cm, 1, 3, 3), dtype=np.float64)  # accumulate in double: sums over N*H*W terms
    if g.size == 0:
        return dx_arr, dw_arr.astype(np.float32)
    cdef float[:, :, :, ::1] dxp = dx_arr
    cdef double[:, :, :, ::1] dw = dw_arr
    cdef Py_ssize_t b, o
    with nogil:
        for b in range(n):
            for o in range(cm):
                dw3x3_backward_plane(&xp[b, o // m, 0, 0], &dxp[b, o // m, 0, 0], wp, &w[o, 0, 0, 0],
                                     &g[b, o, 0, 0], &dw[o, 0, 0, 0], oh, ow, sh, sw)
    return dx_arr, dw_arr.astype(np.float32)


def lab_argmax_channel(const float[:, :, :, ::1] r, float beta):
    """LAB forward with the paper's pairing: diff = r[:, 2c+1] - r[:, 2c]; y = +1 if beta*diff > 0 else -1."""
    cdef Py_ssize_t n = r.shape[0], c = r.shape[1] // 2, h = r.shape[2], wd = r.shape[3]
    y_arr = np.empty((n, c, h, wd), dtype=np.float32)
    d_arr = np.empty((n, c, h, wd), dtype=np.float32)
    cdef float[:, :, :, ::1] y = y_arr
    cdef float[:, :, :, ::1] d = d_arr
    cdef Py_ssize_t b, ch, i, j
    cdef float diff
    with nogil:
        for b in range(n):
            for ch in range(c):
                for i in range(h):
                    for j in range(wd):
                        diff = r[b, 2 * ch + 1, i, j] - r[b, 2 * ch, i, j]
                        d[b, ch, i, j] = diff
                        y[b, ch, i, j] = 1.0 if beta * diff > 0 else -1.0
    return y_arr, d_arr


# --------------------------------------------------------------------------------------------- binary kernels
def pack_channels_last(const float[:, :, :, ::1] x, int ph, int pw):
    """(N, C, H, W) float -> (N, H + 2ph, W + 2pw, ceil(C/64)) uint64, bit c%64 of word c//64 = (x < 0).
    Padded pixels and padded channel bits are 0, i.e. +1."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
    cdef Py_ssize_t cw = (c + 63) // 64
    out = np.zeros((n, h + 2 * ph, wd + 2 * pw, cw), dtype=np.uint64)
    cdef uint64_t[:, :, :, ::1] p = out
    cdef Py_ssize_t b, ch, i, j
    cdef int shift
    with nogil:
        for b in range(n):
            for i in range(h):          # one image row at a time: its W·CW words stay in L1 while channels stream
                for ch in range(c):
                    shift = ch & 63
                    for j in range(wd):  # branch-free: random signs would defeat the branch predictor
                        p[b, i + ph, j + pw, ch >> 6] |= (<uint64_t>(x[b, ch, i, j] < 0)) << shift
    return out


def packed_im2col(const uint64_t[:, :, :, ::1] xpk, int kh, int kw, int sh, int sw, int oh, int ow):
    """rows[n*OH*OW + i*OW + j] = the kh*kw*CW words of pixel (i, j)'s receptive field, in (u, v, word) order."""
    cdef Py_ssize_t n = xpk.shape[0], cw = xpk.shape[3]
    cdef Py_ssize_t K = kh * kw * cw
    out = np.empty((n * oh * ow, K), dtype=np.uint64)
    cdef uint64_t[:, ::1] a = out
    cdef Py_ssize_t b, i, j, u, v, q, row, col
    with nogil:
        for b in range(n):
            for i in range(oh):
                for j in range(ow):
                    row = (b * oh + i) * ow + j
                    col = 0
                    for u in range(kh):
                        for v in range(kw):
                            for q in range(cw):
                                a[row, col] = xpk[b, i * sh + u, j * sw + v, q]
                                col = col + 1
    return out


def pack_weights(const float[:, :, :, ::1] w):
    """(O, C, kh, kw) float -> Bt (kh*kw*CW, Opad) uint64 in the (u, v, word) order of packed_im2col, output
    channels along the contiguous axis, Opad = O rounded up to 16."""
    cdef Py_ssize_t o = w.shape[0], c = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t cw = (c + 63) // 64
    cdef Py_ssize_t opad = (o + 15) // 16 * 16
    out = np.zeros((kh * kw * cw, opad), dtype=np.uint64)
    cdef uint64_t[:, ::1] bt = out
    cdef Py_ssize_t f, ch, u, v
    with nogil:
        for f in range(o):
            for ch in range(c):
                for u in range(kh):
                    for v in range(kw):
                        bt[(u * kw + v) * cw + (ch >> 6), f] |= (<uint64_t>(w[f, ch, u, v] < 0)) << (ch & 63)
    return out


cdef const float *_vec(object arr, Py_ssize_t n, str name, list keep) except? NULL:
    """Pointer to a float32 vector of length n (kept alive in `keep`), or NULL for None."""
    if arr is None:
        return NULL
    a = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
    if a.shape[0] != n:
        raise ValueError(f"bgemm: {name} has {a.shape[0]} entries, expected {n}")
    keep.append(a)
    cdef float[::1] view = a
    return &view[0]


def bgemm(const uint64_t[:, ::1] a, const uint64_t[:, ::1] bt, Py_ssize_t n, Py_ssize_t nbits, alpha=None,
          int relu=0, mean=None, invstd=None, gamma=None, beta=None, row_pattern=None, pattern_corr=None,
          Py_ssize_t pixels=0, int threads=1, prelu=None):
    """C = nbits - 2 * popcount(A XOR B) followed by the fused output transform of bgemm.h:
    - row_pattern (M,) int32 + pattern_corr (P, n): zero-padding correction subtracted per row pattern;
    - alpha (n,): per-channel scale; relu; mean/invstd/gamma/beta (n,): eval-mode BatchNorm; prelu (n,): slopes.
    With pixels > 0, C is written as (M / pixels, n, pixels), i.e. NCHW; otherwise as (M, n)."""
    cdef Py_ssize_t m = a.shape[0], k = a.shape[1], npad = bt.shape[1]
    if bt.shape[0] != k:
        raise ValueError(f"bgemm: A has {k} words per row, B has {bt.shape[0]}")
    if n > npad:
        raise ValueError(f"bgemm: {n} columns but B is padded to {npad}")
    if pixels > 0:
        if m % pixels:
            raise ValueError(f"bgemm: {m} rows are not a whole number of {pixels}-pixel images")
        out = np.empty((m // pixels, n, pixels), dtype=np.float32)
    else:
        out = np.empty((m, n), dtype=np.float32)
    if m == 0 or n == 0:
        return out
    cdef float[::1] c = out.reshape(-1)
    cdef list keep = []
    cdef transform_t t
    t.alpha = _vec(alpha, n, "alpha", keep)
    t.mean = _vec(mean, n, "mean", keep)
    t.invstd = _vec(invstd, n, "invstd", keep)
    t.gamma = _vec(gamma, n, "gamma", keep)
    t.beta = _vec(beta, n, "beta", keep)
    t.prelu = _vec(prelu, n, "prelu", keep)
    if (t.mean == NULL) != (t.invstd == NULL):
        raise ValueError("bgemm: mean and invstd go together")
    t.relu = relu
    t.pixels = pixels
    cdef int32_t[::1] pat
    t.row_pattern = NULL
    t.pattern_corr = NULL
    if row_pattern is not None:
        pat = np.ascontiguousarray(row_pattern, dtype=np.int32)
        if pat.shape[0] != m:
            raise ValueError(f"bgemm: row_pattern has {pat.shape[0]} entries for {m} rows")
        corr = np.ascontiguousarray(pattern_corr, dtype=np.float32)
        if corr.ndim != 2 or corr.shape[1] != n or (m and np.asarray(pat).max() >= corr.shape[0]):
            raise ValueError("bgemm: pattern_corr must be (patterns, n) and cover every row pattern")
        keep.append(pat)
        keep.append(corr)
        t.row_pattern = &pat[0]
        t.pattern_corr = _vec(corr, corr.size, "pattern_corr", keep)
    cdef Py_ssize_t chunk = 64
    cdef Py_ssize_t nchunks = (m + chunk - 1) // chunk
    cdef Py_ssize_t i, m0, m1
    if threads <= 1:
        with nogil:
            bgemm_rows(&a[0, 0], &bt[0, 0], &c[0], 0, m, n, npad, k, nbits, &t)
    else:
        for i in prange(nchunks, nogil=True, num_threads=threads, schedule="static"):
            m0 = i * chunk
            m1 = m0 + chunk
            if m1 > m:
                m1 = m
            bgemm_rows(&a[0, 0], &bt[0, 0], &c[0], m0, m1, n, npad, k, nbits, &t)
    return out


def pair_argmax_pack(const float[:, :, :, ::1] r, float beta, const int64_t[::1] idx0, const int64_t[::1] idx1,
                     int ph, int pw):
    """LAB's ArgMax written straight into packed bits (the engine's binarize-and-pack):
    output channel c is -1 (bit 1) unless beta * (r[:, idx1[c]] - r[:, idx0[c]]) > 0; channels-last words,
    padded with zero words (+1) like pack_channels_last."""
    cdef Py_ssize_t n = r.shape[0], c = idx0.shape[0], h = r.shape[2], wd = r.shape[3]
    cdef Py_ssize_t cw = (c + 63) // 64
    out = np.zeros((n, h + 2 * ph, wd + 2 * pw, cw), dtype=np.uint64)
    cdef uint64_t[:, :, :, ::1] p = out
    cdef Py_ssize_t b, ch, i, j, a0, a1
    cdef int shift
    cdef float diff
    with nogil:
        for b in range(n):
            for i in range(h):
                for ch in range(c):
                    shift = ch & 63
                    a0 = idx0[ch]
                    a1 = idx1[ch]
                    for j in range(wd):
                        diff = r[b, a1, i, j] - r[b, a0, i, j]
                        p[b, i + ph, j + pw, ch >> 6] |= (<uint64_t>(not (beta * diff > 0))) << shift
    return out


def prelu_forward(const float[:, :, :, ::1] x, const float[::1] slope):
    """y = x if x > 0 else slope[c] * x, one pass (the same float32 operations as NumPy's np.where form)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3]
    if slope.shape[0] != c:
        raise ValueError(f"prelu_forward: {slope.shape[0]} slopes for {c} channels")
    out = np.empty((n, c, x.shape[2], x.shape[3]), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[::1] y = out.reshape(-1)
    cdef const float *xs = &x[0, 0, 0, 0]
    cdef Py_ssize_t b, ch, i, base
    cdef float a, v
    with nogil:
        for b in range(n):
            for ch in range(c):
                a = slope[ch]
                base = (b * c + ch) * hw
                for i in range(hw):
                    v = xs[base + i]
                    y[base + i] = v if v > 0 else a * v
    return out


def sign_ste_forward(const float[::1] x, float clip):
    """(sign(x) with sign(0) = +1, the STE mask |x| <= clip as uint8), one pass over a flat float32 array."""
    cdef Py_ssize_t n = x.shape[0], i
    out = np.empty(n, dtype=np.float32)
    mask = np.empty(n, dtype=np.uint8)
    cdef float[::1] y = out
    cdef unsigned char[::1] m = mask
    cdef float v
    with nogil:
        for i in range(n):
            v = x[i]
            y[i] = 1.0 if v >= 0 else -1.0
            m[i] = (v <= clip) and (v >= -clip)
    return out, mask.view(np.bool_)
