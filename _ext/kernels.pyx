# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twins of minilab's NumPy reference ops (minilab/ops/*.py is the readable version of each).

Float kernels: im2col / col2im for conv2d (transposed layout, implicit padding; used chunk by chunk by
minilab/ops/conv_chunked.py), depthwise 3x3 forward / backward (LAB's hot spot), LAB's fused argmax, PReLU, and the
training loop's elementwise work in train_ops.h (sign + STE mask, the magnitude-aware weight quantizer, BatchNorm
statistics / affine / backward, max pooling, Adam).  Binary kernels: bit-packing (bit = 1 means -1), packed im2col,
and the XNOR-popcount GEMM of bgemm.h."""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uint64_t, int64_t, int32_t, int16_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "bgemm.h" nogil:
    const char *MINILAB_BGEMM_ISA
    const int MINILAB_BUILT_PORTABLE
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
    int64_t bgemm_prepared_words(int64_t K, int64_t Npad)
    void bgemm_prepare_b(const uint64_t *Bt, uint64_t *out, int64_t K, int64_t Npad)
    int bgemm_rows(const uint64_t *A, const uint64_t *B, float *C, int64_t m0, int64_t m1, int64_t N,
                   int64_t Npad, int64_t K, int64_t nbits, const transform_t *t)


def isa():
    """Which popcount implementation this build uses: avx512-vpopcntdq, neon, avx2 or portable."""
    return MINILAB_BGEMM_ISA.decode()


def built_portable():
    """True when this build was made with MINILAB_PORTABLE=1 (baseline x86-64 / aarch64 flags, portable C)."""
    return bool(MINILAB_BUILT_PORTABLE)


# ---------------------------------------------------------------------------------------------- float kernels
cdef extern from "train_ops.h" nogil:
    void im2col_image(const float *x, int64_t c, int64_t h, int64_t w, int kh, int kw, int sh, int sw, int ph,
                      int pw, float pad, int64_t oh, int64_t ow, float *cols, int64_t ld)
    void col2im_image(const float *cols, int64_t ld, int64_t c, int64_t h, int64_t w, int kh, int kw, int sh, int sw,
                      int ph, int pw, int64_t oh, int64_t ow, float *dx)
    void tap_indices(int64_t h, int64_t w, int kh, int kw, int sh, int sw, int ph, int pw, int64_t oh, int64_t ow,
                     int32_t *index)
    void im2col_gather_image(const float *x, int64_t c, int64_t hw, int taps, const int32_t *index, int64_t P,
                             float pad, float *cols, int64_t ld)
    void col2im_gather_image(const float *cols, int64_t ld, int64_t c, int64_t hw, int taps, const int32_t *index,
                             int64_t P, float *dx)

cdef enum:
    GATHER_BELOW = 8  # output columns: narrower maps use the precomputed-gather loops


cdef _tap_index(Py_ssize_t h, Py_ssize_t w, int kh, int kw, int sh, int sw, int ph, int pw, Py_ssize_t oh,
                Py_ssize_t ow):
    index = np.empty(kh * kw * oh * ow, dtype=np.int32)
    cdef int32_t[::1] iv = index
    tap_indices(h, w, kh, kw, sh, sw, ph, pw, oh, ow, &iv[0])
    return index


cdef Py_ssize_t _out_size(Py_ssize_t size, int k, int s, int p, str name) except -1:
    if k < 1 or s < 1 or p < 0:
        raise ValueError(f"{name}: kernel {k}, stride {s} and padding {p} must be positive (padding >= 0)")
    cdef Py_ssize_t o = (size + 2 * p - k) // s + 1
    if o < 1:
        raise ValueError(f"{name}: a {k}-wide window does not fit {size} cells padded by {p}")
    return o


def im2col(const float[:, :, :, ::1] x, int kh, int kw, int sh=1, int sw=1, int ph=0, int pw=0,
           float pad_value=0.0, out=None, int threads=1):
    """Transposed im2col: cols[c*kh*kw + u*kw + v, n*OH*OW + i*OW + j] = x_pad[n, c, i*sh + u, j*sw + v], x_pad
    being x with ph/pw rows/columns of pad_value around it (implicit: no padded copy).  `out` may be a
    preallocated C-contiguous float32 (C*kh*kw, N*OH*OW) matrix.  Images are split over OpenMP `threads`."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t oh = _out_size(h, kh, sh, ph, "im2col"), ow = _out_size(w, kw, sw, pw, "im2col")
    cdef Py_ssize_t K = c * kh * kw, ld = n * oh * ow
    if out is None:
        out = np.empty((K, ld), dtype=np.float32)
    elif out.shape != (K, ld) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"im2col: out must be C-contiguous float32 of shape {(K, ld)}")
    if out.size == 0:
        return out
    cdef float[:, ::1] cols = out
    cdef Py_ssize_t b
    cdef int32_t[::1] index
    if ow < GATHER_BELOW:
        index = _tap_index(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
        for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
            im2col_gather_image(&x[b, 0, 0, 0], c, h * w, kh * kw, &index[0], oh * ow, pad_value,
                                &cols[0, b * oh * ow], ld)
        return out
    for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
        im2col_image(&x[b, 0, 0, 0], c, h, w, kh, kw, sh, sw, ph, pw, pad_value, oh, ow, &cols[0, b * oh * ow], ld)
    return out


def col2im(const float[:, ::1] cols, out, int kh, int kw, int sh=1, int sw=1, int ph=0, int pw=0, int threads=1):
    """The adjoint of im2col: out[n, c, r, q] += cols[tap, pixel] for every tap inside the (unpadded) image.
    `out` (N, C, H, W) is accumulated into (pass zeros for a plain col2im) and returned.  Images are split over
    threads: each image's writes are its own."""
    cdef float[:, :, :, ::1] dx = out
    cdef Py_ssize_t n = dx.shape[0], c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    cdef Py_ssize_t oh = _out_size(h, kh, sh, ph, "col2im"), ow = _out_size(w, kw, sw, pw, "col2im")
    cdef Py_ssize_t ld = n * oh * ow
    if cols.shape[0] != c * kh * kw or cols.shape[1] != ld:
        raise ValueError(f"col2im: columns {cols.shape[0]}x{cols.shape[1]} do not match {c}*{kh}*{kw} taps of "
                         f"{n} images of {oh}x{ow} pixels")
    if ld == 0 or cols.shape[0] == 0:
        return out
    cdef Py_ssize_t b
    cdef int32_t[::1] index
    if ow < GATHER_BELOW:
        index = _tap_index(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
        for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
            col2im_gather_image(&cols[0, b * oh * ow], ld, c, h * w, kh * kw, &index[0], oh * ow, &dx[b, 0, 0, 0])
        return out
    for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
        col2im_image(&cols[0, b * oh * ow], ld, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, &dx[b, 0, 0, 0])
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


# ------------------------------------------------------------------------------------------------ float GEMM
cdef extern from "sgemm.h" nogil:
    void sgemm_set(void *address, int index_bits)
    void sgemm_part(int part, int parts, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)

cdef int _sgemm_index_bits = 0

cdef enum:
    SGEMM_SPLIT_MACS = 1 << 18  # smaller products run whole on the calling thread: a split would cost more


def use_blas_sgemm(size_t address, int index_bits):
    """Hand over the address of the loaded BLAS' cblas_sgemm (`index_bits` 32 for LP64, 64 for ILP64); `sgemm`
    calls it.  minilab.threads.find_blas_sgemm finds it in the OpenBLAS NumPy loaded.  Address 0 turns it off."""
    global _sgemm_index_bits
    if index_bits not in (32, 64):
        raise ValueError(f"use_blas_sgemm: index_bits must be 32 or 64, not {index_bits}")
    sgemm_set(<void *>address, index_bits)
    _sgemm_index_bits = index_bits if address else 0


def has_sgemm():
    """True once `use_blas_sgemm` was given a GEMM."""
    return _sgemm_index_bits != 0


cdef _gemm_layout(a, str name):
    """(transposed?, leading dimension) of a float32 matrix — or of each matrix of a stack, along the first axis —
    whose rows or columns are contiguous; None for other layouts."""
    if a.dtype != np.float32:
        raise ValueError(f"sgemm: {name} must be float32, not {a.dtype}")
    rows, cols = a.shape[a.ndim - 2], a.shape[a.ndim - 1]
    s0, s1 = a.strides[a.ndim - 2], a.strides[a.ndim - 1]
    if s1 == 4 and s0 > 0 and s0 % 4 == 0 and s0 // 4 >= max(cols, 1):
        return 0, s0 // 4
    if s0 == 4 and s1 > 0 and s1 % 4 == 0 and s1 // 4 >= max(rows, 1):
        return 1, s1 // 4
    return None


cdef class _Gemm:
    """The operands of out[i] = a[i] @ b[i] + beta * out[i] (i over a stack, or a single product), checked, with
    the layout the BLAS needs."""
    cdef public object a, b, out
    cdef int ta, tb
    cdef Py_ssize_t m, n, k, lda, ldb, ldc, batch, stride_a, stride_b, stride_c

    def __init__(self, a, b, out, float beta, int ndim):
        if not _sgemm_index_bits:
            raise RuntimeError("sgemm: no BLAS GEMM was given (minilab.threads.find_blas_sgemm found none)")
        if a.ndim != ndim or b.ndim != ndim:
            raise ValueError(f"sgemm: a and b must be {ndim}-D, not {a.ndim}-D and {b.ndim}-D")
        la, lb = _gemm_layout(a, "a"), _gemm_layout(b, "b")
        if la is None or (ndim == 3 and a.strides[0] % 4):
            a = np.ascontiguousarray(a)
            la = (0, max(a.shape[ndim - 1], 1))
        if lb is None or (ndim == 3 and b.strides[0] % 4):
            b = np.ascontiguousarray(b)
            lb = (0, max(b.shape[ndim - 1], 1))
        self.batch = a.shape[0] if ndim == 3 else 1
        self.m, self.k = a.shape[ndim - 2], a.shape[ndim - 1]
        self.n = b.shape[ndim - 1]
        shape = (self.m, self.n)
        if ndim == 3:
            shape = (self.batch,) + shape
        if b.shape[ndim - 2] != self.k or (ndim == 3 and b.shape[0] != self.batch):
            raise ValueError(f"sgemm: a is {a.shape} but b is {b.shape}")
        if out is None:
            if beta != 0:
                raise ValueError("sgemm: beta != 0 needs an out matrix to add to")
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or (self.n > 1 and out.strides[ndim - 1] != 4) or \
                (self.m > 1 and out.strides[ndim - 2] != 4 * self.n) or (ndim == 3 and out.strides[0] % 4):
            raise ValueError(f"sgemm: out must be float32 of shape {shape}, each matrix C-contiguous")
        if _sgemm_index_bits == 32 and max(self.m, self.n, self.k, la[1], lb[1]) >= 2 ** 31:
            raise ValueError("sgemm: this BLAS takes 32-bit sizes")
        self.a, self.b, self.out = a, b, out
        self.ta, self.lda = la
        self.tb, self.ldb = lb
        self.ldc = max(self.n, 1)
        self.stride_a = a.strides[0] // 4 if ndim == 3 else 0
        self.stride_b = b.strides[0] // 4 if ndim == 3 else 0
        self.stride_c = out.strides[0] // 4 if ndim == 3 else 0

    cdef bint trivial(self, float beta):
        """Handles the empty cases (no BLAS call needed); True when it did."""
        if self.m == 0 or self.n == 0 or self.batch == 0:
            return True
        if self.k == 0:  # an empty sum: out = beta * out (and not 0 * garbage when out was just allocated)
            if beta == 0:
                self.out[...] = 0
            else:
                self.out *= beta
            return True
        return False


def sgemm(a, b, out=None, float beta=0.0, int threads=1):
    """out = a @ b + beta * out on the BLAS given to `use_blas_sgemm`, float32.

    a (m, k) and b (k, n) may be C- or F-ordered (a transposed view costs nothing); other layouts are copied.
    `out` (m, n), C-contiguous, is required when beta != 0.  With threads > 1 the columns of out are cut into
    `threads` blocks that OpenMP threads multiply at once, each on the BLAS in the calling thread — so the BLAS
    must be set to one thread (minilab.threads.set_threads does it), or its own workers would fight over the
    cores.  Each element of out is one BLAS dot product either way, so the result does not depend on `threads`
    unless the BLAS itself picks a different kernel for a narrower block."""
    cdef _Gemm p = _Gemm(a, b, out, beta, 2)
    if p.trivial(beta):
        return p.out
    cdef const float *pa = <const float *>cnp.PyArray_DATA(p.a)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(p.b)
    cdef float *pc = <float *>cnp.PyArray_DATA(p.out)
    cdef int part, parts = max(threads, 1)
    if p.m * p.n * p.k < SGEMM_SPLIT_MACS:
        parts = 1
    if parts == 1:
        with nogil:
            sgemm_part(0, 1, p.ta, p.tb, p.m, p.n, p.k, pa, p.lda, pb, p.ldb, beta, pc, p.ldc)
        return p.out
    for part in prange(parts, nogil=True, num_threads=parts, schedule="static"):
        sgemm_part(part, parts, p.ta, p.tb, p.m, p.n, p.k, pa, p.lda, pb, p.ldb, beta, pc, p.ldc)
    return p.out


def sgemm_batch(a, b, out=None, float beta=0.0, int threads=1):
    """out[i] = a[i] @ b[i] + beta * out[i] for a stack of products, as `sgemm`; OpenMP threads take whole
    products (each on a single-threaded BLAS), so there should be several per thread."""
    cdef _Gemm p = _Gemm(a, b, out, beta, 3)
    if p.trivial(beta):
        return p.out
    cdef const float *pa = <const float *>cnp.PyArray_DATA(p.a)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(p.b)
    cdef float *pc = <float *>cnp.PyArray_DATA(p.out)
    cdef Py_ssize_t i
    for i in prange(p.batch, nogil=True, num_threads=max(threads, 1), schedule="static"):
        sgemm_part(0, 1, p.ta, p.tb, p.m, p.n, p.k, pa + i * p.stride_a, p.lda, pb + i * p.stride_b, p.ldb,
                   beta, pc + i * p.stride_c, p.ldc)
    return p.out


# ------------------------------------------------------------------------- Winograd F(2x2, 3x3) conv backward
cdef extern from "winograd.h" nogil:
    void wino_filter_row(const float *w, int64_t c, float *u, int64_t slab)
    void wino_input_plane(const float *x, int64_t h, int64_t w, int p, float pad, int64_t th, int64_t tw, float *v,
                          int64_t slab, float *rows)
    void wino_grad_plane(const float *g, int64_t oh, int64_t ow, int64_t th, int64_t tw, float *z, int64_t slab,
                         float *rows)
    void wino_input_grad_plane(const float *n, int64_t slab, int64_t th, int64_t tw, int64_t h, int64_t w, int p,
                               float *dx, float *rows)
    void wino_filter_grad_row(const float *m, int64_t c, int64_t slab, float *dw)


cdef float *_scratch(Py_ssize_t count) noexcept nogil:
    return <float *>malloc(max(count, 1) * sizeof(float))


def winograd_slabs(Py_ssize_t rows, Py_ssize_t cols):
    """An empty (16, rows, cols) float32 array whose slabs start 64 bytes past a multiple of 4 KB from each other.
    With slabs a multiple of 4 KB apart, a transform's 16 loads or stores at the same offset of each slab all
    fall in one L1 cache set and evict each other: the filter transform of a 512x512 conv ran 8x slower so."""
    cdef Py_ssize_t size = rows * cols
    cdef Py_ssize_t stride = (size + 1023) // 1024 * 1024 + 16
    return np.empty((16, stride), dtype=np.float32)[:, :size].reshape(16, rows, cols)


cdef _check_slabs(a, Py_ssize_t rows, Py_ssize_t cols, str name):
    if a.shape != (16, rows, cols) or a.dtype != np.float32 or (rows > 1 and a.strides[1] != cols * 4) or \
            (cols > 1 and a.strides[2] != 4) or a.strides[0] % 4:
        raise ValueError(f"{name}: the array must be float32 of shape {(16, rows, cols)}, C-contiguous within each slab "
                         f"(winograd_slabs makes one)")


cdef inline Py_ssize_t _slab(const float[:, :, :] a) noexcept nogil:
    return a.strides[0] // sizeof(float)


def winograd_filters(const float[:, :, :, ::1] w, int threads=1):
    """U (16, O, C) = G w Gᵀ of every 3x3 filter of w (O, C, 3, 3)."""
    cdef Py_ssize_t o = w.shape[0], c = w.shape[1], f
    if w.shape[2] != 3 or w.shape[3] != 3:
        raise ValueError(f"winograd_filters: filters must be 3x3, not {w.shape[2]}x{w.shape[3]}")
    u = winograd_slabs(o, c)
    cdef float[:, :, :] uv = u
    if o * c == 0:
        return u
    for f in prange(o, nogil=True, num_threads=max(threads, 1), schedule="static"):
        wino_filter_row(&w[f, 0, 0, 0], c, &uv[0, f, 0], _slab(uv))
    return u


def winograd_filter_grads(m_in, int threads=1):
    """∂w (O, C, 3, 3) = Gᵀ M G of every (o, c) of M (16, O, C)."""
    _check_slabs(m_in, m_in.shape[1], m_in.shape[2], "winograd_filter_grads")
    cdef const float[:, :, :] m = m_in
    cdef Py_ssize_t o = m.shape[1], c = m.shape[2], f
    dw = np.empty((o, c, 3, 3), dtype=np.float32)
    cdef float[:, :, :, ::1] dv = dw
    if o * c == 0:
        return dw
    for f in prange(o, nogil=True, num_threads=max(threads, 1), schedule="static"):
        wino_filter_grad_row(&m[0, f, 0], c, _slab(m), &dv[f, 0, 0, 0])
    return dw


def winograd_tile_count(Py_ssize_t oh, Py_ssize_t ow):
    """(tile rows, tile columns) of 2x2 output tiles covering an oh x ow output."""
    return (oh + 1) // 2, (ow + 1) // 2


def winograd_input_tiles(const float[:, :, :, ::1] x, int p, float pad_value=0.0, out=None, int threads=1):
    """V (16, C, N·th·tw) = Bᵀ d B of the 4x4 input tile d of every output tile of a 3x3, stride-1 conv of x
    (N, C, H, W) padded by p cells of pad_value; tile index n·th·tw + i·tw + j."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t oh = _out_size(h, 3, 1, p, "winograd_input_tiles"), ow = _out_size(w, 3, 1, p,
                                                                                       "winograd_input_tiles")
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2, tiles = n * th * tw, plane
    if out is None:
        out = winograd_slabs(c, tiles)
    _check_slabs(out, c, tiles, "winograd_input_tiles")
    cdef float[:, :, :] v = out
    cdef float *rows
    cdef int failed[1]
    failed[0] = 0
    if n * c == 0:
        return out
    with nogil, parallel(num_threads=max(threads, 1)):
        rows = _scratch(16 * (tw + 1))
        if rows != NULL:
            for plane in prange(n * c, schedule="static"):
                wino_input_plane(&x[plane % n, plane // n, 0, 0], h, w, p, pad_value, th, tw,
                                 &v[0, plane // n, (plane % n) * th * tw], _slab(v), rows)
            free(rows)
        else:
            failed[0] = 1
    if failed[0]:
        raise MemoryError("winograd: no memory for a few rows of scratch")
    return out


def winograd_grad_tiles(const float[:, :, :, ::1] g, out=None, int threads=1):
    """Z (16, O, N·th·tw) = A ∂y Aᵀ of every 2x2 tile of g (N, O, OH, OW), zero beyond the map."""
    cdef Py_ssize_t n = g.shape[0], o = g.shape[1], oh = g.shape[2], ow = g.shape[3]
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2, tiles = n * th * tw, plane
    if out is None:
        out = winograd_slabs(o, tiles)
    _check_slabs(out, o, tiles, "winograd_grad_tiles")
    cdef float[:, :, :] z = out
    cdef float *rows
    cdef int failed[1]
    failed[0] = 0
    if n * o == 0:
        return out
    with nogil, parallel(num_threads=max(threads, 1)):
        rows = _scratch(16 * (tw + 1))
        if rows != NULL:
            for plane in prange(n * o, schedule="static"):
                wino_grad_plane(&g[plane % n, plane // n, 0, 0], oh, ow, th, tw,
                                &z[0, plane // n, (plane % n) * th * tw], _slab(z), rows)
            free(rows)
        else:
            failed[0] = 1
    if failed[0]:
        raise MemoryError("winograd: no memory for a few rows of scratch")
    return out


def winograd_input_grads(nt_in, out, int p, int threads=1):
    """out (N, C, H, W) += B N Bᵀ of every tile of N (16, C, N·th·tw), overlapping tiles added, padding dropped."""
    cdef float[:, :, :, ::1] dx = out
    cdef Py_ssize_t n = dx.shape[0], c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    cdef Py_ssize_t oh = _out_size(h, 3, 1, p, "winograd_input_grads"), ow = _out_size(w, 3, 1, p,
                                                                                       "winograd_input_grads")
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2, tiles = n * th * tw, plane
    _check_slabs(nt_in, c, tiles, "winograd_input_grads")
    cdef const float[:, :, :] nt = nt_in
    cdef float *rows
    cdef int failed[1]
    failed[0] = 0
    if n * c == 0:
        return out
    with nogil, parallel(num_threads=max(threads, 1)):
        rows = _scratch(34 * (tw + 1))
        if rows != NULL:
            for plane in prange(n * c, schedule="static"):
                wino_input_grad_plane(&nt[0, plane // n, (plane % n) * th * tw], _slab(nt), th, tw, h, w, p,
                                      &dx[plane % n, plane // n, 0, 0], rows)
            free(rows)
        else:
            failed[0] = 1
    if failed[0]:
        raise MemoryError("winograd: no memory for a few rows of scratch")
    return out


# --------------------------------------------------------------------------------------------- binary kernels
cdef extern from "pack.h" nogil:
    void pack_row_channels_last(const float *x, int64_t c, int64_t h, int64_t w, int64_t i, uint64_t *out,
                                int64_t cw, uint64_t *acc)
    void pack_weight_channel(const float *wf, int64_t c, int64_t taps, int64_t cw, uint64_t *bt, int64_t ld,
                             int64_t f)


def pack_channels_last(const float[:, :, :, ::1] x, int ph, int pw, int threads=1):
    """(N, C, H, W) float -> (N, H + 2ph, W + 2pw, ceil(C/64)) uint64, bit c%64 of word c//64 = (x < 0).
    Padded pixels and padded channel bits are 0, i.e. +1.  Images are split over `threads`."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
    cdef Py_ssize_t cw = (c + 63) // 64
    out = np.zeros((n, h + 2 * ph, wd + 2 * pw, cw), dtype=np.uint64)
    if n == 0 or c == 0 or h == 0 or wd == 0:
        return out
    threads = max(threads, 1)
    scratch = np.empty((threads, wd), dtype=np.uint64)  # one row of words per thread
    cdef uint64_t[:, :, :, ::1] p = out
    cdef uint64_t[:, ::1] acc = scratch
    cdef Py_ssize_t b, i
    for b in prange(n, nogil=True, num_threads=threads, schedule="static"):
        for i in range(h):
            pack_row_channels_last(&x[b, 0, 0, 0], c, h, wd, i, &p[b, i + ph, pw, 0], cw, &acc[threadid(), 0])
    return out


def packed_im2col(const uint64_t[:, :, :, ::1] xpk, int kh, int kw, int sh, int sw, int oh, int ow, int threads=1):
    """rows[n*OH*OW + i*OW + j] = the kh*kw*CW words of pixel (i, j)'s receptive field, in (u, v, word) order."""
    cdef Py_ssize_t n = xpk.shape[0], cw = xpk.shape[3]
    cdef Py_ssize_t K = kh * kw * cw
    out = np.empty((n * oh * ow, K), dtype=np.uint64)
    cdef uint64_t[:, ::1] a = out
    cdef Py_ssize_t b, i, j, u, v, q, row, col
    for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="static"):
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


def pack_weights(const float[:, :, :, ::1] w, int threads=1):
    """(O, C, kh, kw) float -> Bt (kh*kw*CW, Opad) uint64 in the (u, v, word) order of packed_im2col, output
    channels along the contiguous axis, Opad = O rounded up to 16.  Output channels are split over `threads`
    (each writes only its own column)."""
    cdef Py_ssize_t o = w.shape[0], c = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t cw = (c + 63) // 64
    cdef Py_ssize_t opad = (o + 15) // 16 * 16
    out = np.zeros((kh * kw * cw, opad), dtype=np.uint64)
    if o == 0 or c == 0 or kh * kw == 0:
        return out
    cdef uint64_t[:, ::1] bt = out
    cdef Py_ssize_t f
    for f in prange(o, nogil=True, num_threads=max(threads, 1), schedule="static"):
        pack_weight_channel(&w[f, 0, 0, 0], c, kh * kw, cw, &bt[0, 0], opad, f)
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
    # B in the layout this build's popcount loop reads (a copy split into nibbles for AVX2, else B itself)
    cdef const uint64_t *b = &bt[0, 0]
    cdef uint64_t[::1] prepared
    cdef Py_ssize_t words = bgemm_prepared_words(k, npad)
    if words:
        prepared = np.empty(words, dtype=np.uint64)
        bgemm_prepare_b(&bt[0, 0], &prepared[0], k, npad)
        b = &prepared[0]
    cdef Py_ssize_t chunk = 64
    cdef Py_ssize_t nchunks = (m + chunk - 1) // chunk
    cdef Py_ssize_t i, m0, m1
    cdef int failed = 0
    if threads <= 1:
        with nogil:
            failed = bgemm_rows(&a[0, 0], b, &c[0], 0, m, n, npad, k, nbits, &t)
    else:
        for i in prange(nchunks, nogil=True, num_threads=threads, schedule="static"):
            m0 = i * chunk
            m1 = m0 + chunk
            if m1 > m:
                m1 = m
            failed += bgemm_rows(&a[0, 0], b, &c[0], m0, m1, n, npad, k, nbits, &t) != 0   # a reduction
    if failed:
        raise MemoryError("bgemm: no memory for the popcount kernel's scratch rows")
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
    cdef Py_ssize_t b, ch, base
    with nogil:
        for b in range(n):
            for ch in range(c):
                base = (b * c + ch) * hw
                prelu_plane_f32(xs + base, slope[ch], &y[base], hw)
    return out


# ------------------------------------------------------------------------------- training-loop float kernels
cdef extern from "train_ops.h" nogil:
    void sign_ste_f32(const float *x, float *y, uint8_t *mask, int64_t n, float clip)
    int all_plus_minus_one(const float *x, int64_t n)
    int rows_plus_minus_alpha(const float *w, int64_t rows, int64_t cols)
    void masked_copy_f32(const float *g, const uint8_t *mask, float *out, int64_t n)
    void prelu_plane_f32(const float *x, float a, float *y, int64_t n)
    float abs_mean_f32(const float *w, int64_t n)
    void magnitude_sign_row_f32(const float *w, float alpha, float *q, uint8_t *mask, int64_t n)
    void magnitude_sign_backward_row_f32(const float *g, float alpha, const uint8_t *mask, float *dw, int64_t n)
    int64_t bn_channels_per_block(int64_t hw)
    int channel_mean_var_block(const float *x, int64_t n, int64_t c, int64_t hw, int64_t c0, int64_t c1,
                               float *mean, float *var)
    int batchnorm_forward_block(const float *x, int64_t n, int64_t c, int64_t hw, int64_t c0, int64_t c1,
                                const float *mean, const float *invstd, const float *gamma, const float *beta,
                                float *y)
    int batchnorm_backward_block(const float *x, const float *g, int64_t n, int64_t c, int64_t hw, int64_t c0,
                                 int64_t c1, const float *mean, const float *invstd, const float *gamma, float *dx,
                                 float *dgamma, float *dbeta)
    void avgpool_forward_plane(const float *x, int64_t w, int kh, int kw, int sh, int sw, float count, float *y,
                               int64_t oh, int64_t ow)
    void avgpool_backward_plane(const float *g, int64_t oh, int64_t ow, int kh, int kw, int sh, int sw, float count,
                                float *dx, int64_t w)
    void maxpool_fill_plane(const float *x, int64_t h, int64_t w, int ph, int pw, int sw, int64_t wq, float *xp)
    void maxpool_forward_plane(const float *xp, int64_t wq, int kh, int kw, int sh, int sw, float *y, int16_t *arg,
                               int64_t oh, int64_t ow)
    void maxpool_backward_plane(const float *g, const int16_t *arg, int64_t oh, int64_t ow, int kw, int sh, int sw,
                                int ph, int pw, float *dx, int64_t h, int64_t w)
    void adam_update_f32(float *w, const float *g, float *m, float *v, int64_t n, float b1, float one_minus_b1,
                         float b2, float one_minus_b2, float bias1, float bias2, float lr, float eps, float clip)


def is_binary_pair(const float[::1] x, const float[:, ::1] w):
    """True when every x is +-1 and every row of w is +-alpha_row: the packed XNOR-popcount conv is then exact."""
    cdef int ok = 1
    with nogil:
        if x.shape[0] > 0:
            ok = all_plus_minus_one(&x[0], x.shape[0])
        if ok and w.shape[0] > 0 and w.shape[1] > 0:
            ok = rows_plus_minus_alpha(&w[0, 0], w.shape[0], w.shape[1])
    return bool(ok)


cdef enum:
    BLOCK = 65536  # elements per OpenMP work item of the elementwise kernels


def sign_ste_forward(const float[::1] x, float clip, int threads=1):
    """(sign(x) with sign(0) = +1, the STE mask |x| <= clip as bool), one pass over a flat float32 array."""
    cdef Py_ssize_t n = x.shape[0]
    out = np.empty(n, dtype=np.float32)
    mask = np.empty(n, dtype=np.uint8)
    if n == 0:
        return out, mask.view(np.bool_)
    cdef float[::1] y = out
    cdef uint8_t[::1] m = mask
    cdef Py_ssize_t blk, start
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1), schedule="static"):
        start = blk * BLOCK
        sign_ste_f32(&x[start], &y[start], &m[start], min(BLOCK, n - start), clip)
    return out, mask.view(np.bool_)


def masked_gradient(const float[::1] g, const uint8_t[::1] mask, int threads=1):
    """g where mask else 0 (the STE backward g * mask), flat float32 and uint8 arrays."""
    cdef Py_ssize_t n = g.shape[0]
    if mask.shape[0] != n:
        raise ValueError(f"masked_gradient: {n} gradients, {mask.shape[0]} mask entries")
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    cdef float[::1] d = out
    cdef Py_ssize_t blk, start
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1), schedule="static"):
        start = blk * BLOCK
        masked_copy_f32(&g[start], &mask[start], &d[start], min(BLOCK, n - start))
    return out


def magnitude_aware_sign_forward(const float[:, ::1] w, int threads=1):
    """(q, mask, alpha) for weights flattened to (C_out, K): alpha[o] = mean |w[o]|, q[o, k] = alpha[o] *
    sign(w[o, k]) and the STE mask |w| <= 1 (uint8)."""
    cdef Py_ssize_t rows = w.shape[0], cols = w.shape[1]
    q = np.empty((rows, cols), dtype=np.float32)
    mask = np.empty((rows, cols), dtype=np.uint8)
    alpha = np.zeros(rows, dtype=np.float32)
    if q.size == 0:
        return q, mask, alpha
    cdef float[:, ::1] qv = q
    cdef uint8_t[:, ::1] mv = mask
    cdef float[::1] av = alpha
    cdef Py_ssize_t r
    for r in prange(rows, nogil=True, num_threads=max(threads, 1), schedule="static"):
        av[r] = abs_mean_f32(&w[r, 0], cols)
        magnitude_sign_row_f32(&w[r, 0], av[r], &qv[r, 0], &mv[r, 0], cols)
    return q, mask, alpha


def magnitude_aware_sign_backward(const float[:, ::1] g, const float[::1] alpha, const uint8_t[:, ::1] mask,
                                  int threads=1):
    """dw[o, k] = g[o, k] * (alpha[o] * mask[o, k])."""
    cdef Py_ssize_t rows = g.shape[0], cols = g.shape[1]
    if alpha.shape[0] != rows or mask.shape[0] != rows or mask.shape[1] != cols:
        raise ValueError("magnitude_aware_sign_backward: gradient, scales and mask disagree in shape")
    dw = np.empty((rows, cols), dtype=np.float32)
    if dw.size == 0:
        return dw
    cdef float[:, ::1] dv = dw
    cdef Py_ssize_t r
    for r in prange(rows, nogil=True, num_threads=max(threads, 1), schedule="static"):
        magnitude_sign_backward_row_f32(&g[r, 0], alpha[r], &mask[r, 0], &dv[r, 0], cols)
    return dw


cdef _check_channel_vectors(Py_ssize_t c, str name, arrays):
    for a in arrays:
        if a.shape[0] != c:
            raise ValueError(f"{name}: per-channel vectors must have {c} entries, got {a.shape[0]}")


def channel_mean_var(const float[:, :, ::1] x, int threads=1):
    """Per-channel mean and biased variance of x viewed as (N, C, HW), accumulated in double."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], hw = x.shape[2]
    mean = np.zeros(c, dtype=np.float32)
    var = np.zeros(c, dtype=np.float32)
    if n * hw == 0 or c == 0:
        return mean, var
    cdef float[::1] mv = mean
    cdef float[::1] vv = var
    cdef Py_ssize_t per = bn_channels_per_block(hw), blk
    cdef int failed = 0
    for blk in prange((c + per - 1) // per, nogil=True, num_threads=max(threads, 1), schedule="static"):
        failed += channel_mean_var_block(&x[0, 0, 0], n, c, hw, blk * per, min(c, blk * per + per), &mv[0], &vv[0])
    if failed:
        raise MemoryError("channel_mean_var: no memory for the per-block scratch")
    return mean, var


def batchnorm_forward(const float[:, :, ::1] x, const float[::1] mean, const float[::1] invstd,
                      const float[::1] gamma, const float[::1] beta, int threads=1):
    """y = ((x - mean) * invstd) * gamma + beta per channel of x viewed as (N, C, HW)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], hw = x.shape[2]
    _check_channel_vectors(c, "batchnorm_forward", (mean, invstd, gamma, beta))
    out = np.empty((n, c, hw), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[:, :, ::1] y = out
    cdef Py_ssize_t per = bn_channels_per_block(hw), blk
    cdef int failed = 0
    for blk in prange((c + per - 1) // per, nogil=True, num_threads=max(threads, 1), schedule="static"):
        failed += batchnorm_forward_block(&x[0, 0, 0], n, c, hw, blk * per, min(c, blk * per + per), &mean[0],
                                          &invstd[0], &gamma[0], &beta[0], &y[0, 0, 0])
    if failed:
        raise MemoryError("batchnorm_forward: no memory for the per-block scratch")
    return out


def batchnorm_backward(const float[:, :, ::1] x, const float[:, :, ::1] g, const float[::1] mean,
                       const float[::1] invstd, const float[::1] gamma, int threads=1):
    """Training-mode BatchNorm backward on (N, C, HW): (dx, dgamma, dbeta), x-hat recomputed from x."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], hw = x.shape[2]
    if g.shape[0] != n or g.shape[1] != c or g.shape[2] != hw:
        raise ValueError("batchnorm_backward: gradient and input shapes differ")
    _check_channel_vectors(c, "batchnorm_backward", (mean, invstd, gamma))
    dx = np.empty((n, c, hw), dtype=np.float32)
    dgamma = np.zeros(c, dtype=np.float32)
    dbeta = np.zeros(c, dtype=np.float32)
    if dx.size == 0:
        return dx, dgamma, dbeta
    cdef float[:, :, ::1] dxv = dx
    cdef float[::1] dgv = dgamma
    cdef float[::1] dbv = dbeta
    cdef Py_ssize_t per = bn_channels_per_block(hw), blk
    cdef int failed = 0
    for blk in prange((c + per - 1) // per, nogil=True, num_threads=max(threads, 1), schedule="static"):
        failed += batchnorm_backward_block(&x[0, 0, 0], &g[0, 0, 0], n, c, hw, blk * per, min(c, blk * per + per),
                                           &mean[0], &invstd[0], &gamma[0], &dxv[0, 0, 0], &dgv[0], &dbv[0])
    if failed:
        raise MemoryError("batchnorm_backward: no memory for the per-block scratch")
    return dx, dgamma, dbeta


def avgpool2d_forward(const float[:, :, :, ::1] x, int kh, int kw, int sh, int sw, int threads=1):
    """Average pooling without padding: y = (sum of the kh*kw taps in row-major order) / (kh*kw)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or kh > h or kw > w:
        raise ValueError(f"avgpool2d_forward: a {kh}x{kw} window (stride {sh}x{sw}) does not fit a {h}x{w} input")
    cdef Py_ssize_t oh = (h - kh) // sh + 1, ow = (w - kw) // sw + 1
    out = np.empty((n, c, oh, ow), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[:, :, :, ::1] y = out
    cdef float count = kh * kw
    cdef Py_ssize_t plane
    for plane in prange(n * c, nogil=True, num_threads=max(threads, 1), schedule="static"):
        avgpool_forward_plane(&x[plane // c, plane % c, 0, 0], w, kh, kw, sh, sw, count,
                              &y[plane // c, plane % c, 0, 0], oh, ow)
    return out


def avgpool2d_backward(const float[:, :, :, ::1] g, int kh, int kw, int sh, int sw, int h, int w, int threads=1):
    """The adjoint of avgpool2d_forward: every tap's input cell gets g / (kh*kw), taps in row-major order."""
    cdef Py_ssize_t n = g.shape[0], c = g.shape[1], oh = g.shape[2], ow = g.shape[3]
    if (oh - 1) * sh + kh > h or (ow - 1) * sw + kw > w:
        raise ValueError(f"avgpool2d_backward: {oh}x{ow} windows do not fit a {h}x{w} input")
    out = np.zeros((n, c, h, w), dtype=np.float32)
    if g.size == 0:
        return out
    cdef float[:, :, :, ::1] dx = out
    cdef float count = kh * kw
    cdef Py_ssize_t plane
    for plane in prange(n * c, nogil=True, num_threads=max(threads, 1), schedule="static"):
        avgpool_backward_plane(&g[plane // c, plane % c, 0, 0], oh, ow, kh, kw, sh, sw, count,
                               &dx[plane // c, plane % c, 0, 0], w)
    return out


def maxpool2d_forward(const float[:, :, :, ::1] x, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                      bint with_argmax, int threads=1):
    """Max pooling (padding = -inf) and, if asked, the int16 window index u*kw + v of each first maximum."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t hp = h + 2 * ph, wp = w + 2 * pw
    if (oh - 1) * sh + kh > hp or (ow - 1) * sw + kw > wp:
        raise ValueError(f"maxpool2d_forward: {oh}x{ow} windows do not fit the padded {hp}x{wp} input")
    out = np.empty((n, c, oh, ow), dtype=np.float32)
    arg = np.empty((n, c, oh, ow), dtype=np.int16) if with_argmax else None
    if out.size == 0:
        return out, arg
    threads = max(threads, 1)
    cdef Py_ssize_t wq = (wp + sw - 1) // sw
    plane_buf = np.full((threads, hp, sw * wq), -np.inf, dtype=np.float32)  # one padded plane per thread, reused
    cdef float[:, :, ::1] pad = plane_buf
    cdef float[:, :, :, ::1] y = out
    cdef int16_t[:, :, :, ::1] a
    cdef int16_t *ap = NULL
    if with_argmax:
        a = arg
        ap = &a[0, 0, 0, 0]
    cdef Py_ssize_t plane, r
    cdef int t
    for plane in prange(n * c, nogil=True, num_threads=threads, schedule="static"):
        t = threadid()
        maxpool_fill_plane(&x[plane // c, plane % c, 0, 0], h, w, ph, pw, sw, wq, &pad[t, 0, 0])
        maxpool_forward_plane(&pad[t, 0, 0], wq, kh, kw, sh, sw, &y[plane // c, plane % c, 0, 0],
                              (ap + plane * oh * ow) if ap != NULL else NULL, oh, ow)
    return out, arg


def maxpool2d_backward(const float[:, :, :, ::1] g, const int16_t[:, :, :, ::1] arg, int kw, int sh, int sw, int ph,
                       int pw, int h, int w, int threads=1):
    """dx[arg-max cell of each window] += g (cells in the padding are dropped)."""
    cdef Py_ssize_t n = g.shape[0], c = g.shape[1], oh = g.shape[2], ow = g.shape[3]
    if arg.shape[0] != n or arg.shape[1] != c or arg.shape[2] != oh or arg.shape[3] != ow:
        raise ValueError("maxpool2d_backward: gradient and arg-max shapes differ")
    out = np.zeros((n, c, h, w), dtype=np.float32)
    if g.size == 0 or out.size == 0:
        return out
    cdef float[:, :, :, ::1] dx = out
    cdef Py_ssize_t plane
    for plane in prange(n * c, nogil=True, num_threads=max(threads, 1), schedule="static"):
        maxpool_backward_plane(&g[plane // c, plane % c, 0, 0], &arg[plane // c, plane % c, 0, 0], oh, ow, kw,
                               sh, sw, ph, pw, &dx[plane // c, plane % c, 0, 0], h, w)
    return out


def adam_update(float[::1] w, const float[::1] g, float[::1] m, float[::1] v, float b1, float one_minus_b1,
                float b2, float one_minus_b2, float bias1, float bias2, float lr, float eps, int threads=1,
                float clip=-1.0):
    """One Adam step in place on flat float32 arrays (see train_ops.h for the exact float32 steps), then the
    weight clip to [-clip, clip] when clip >= 0.  Constants are computed in double by the caller
    (one_minus_b1 = 1 - b1, bias1 = 1 - b1**t, ...) and rounded here."""
    cdef Py_ssize_t n = w.shape[0]
    if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("adam_update: weight, gradient and moment arrays differ in size")
    if n == 0:
        return
    cdef Py_ssize_t blk, start
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1), schedule="static"):
        start = blk * BLOCK
        adam_update_f32(&w[start], &g[start], &m[start], &v[start], min(BLOCK, n - start), b1, one_minus_b1, b2,
                        one_minus_b2, bias1, bias2, lr, eps, clip)
