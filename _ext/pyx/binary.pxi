# Bit-packing and the XNOR-popcount GEMM (binary convolutions): pack.h, bgemm.h and the bgemm/ headers.


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
        const float *residual
        const float *res_mean
        const float *res_invstd
        const float *res_gamma
        const float *res_beta
        const float *prelu
        int64_t pixels
    int64_t bgemm_prepared_words(int64_t K, int64_t Npad)
    void bgemm_prepare_b(const uint64_t *Bt, uint64_t *out, int64_t K, int64_t Npad)
    int bgemm_rows(const uint64_t *A, const uint64_t *B, float *C, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                   int64_t N,
                   int64_t Npad, int64_t K, int64_t nbits, const transform_t *t)


def isa():
    """Which popcount implementation this build uses: avx512-vpopcntdq, neon, avx2 or portable."""
    return MINILAB_BGEMM_ISA.decode()


def built_portable():
    """True for the portable module (minilab._kernels_portable: baseline flags, portable C)."""
    return bool(MINILAB_BUILT_PORTABLE)


cdef extern from "pack.h" nogil:
    void pack_row_channels_last(const float *x, int64_t c, int64_t h, int64_t w, int64_t i, uint64_t *out,
                                int64_t cw, uint64_t *acc)
    void pack_weight_channel(const float *wf, int64_t c, int64_t taps, int64_t cw, uint64_t *bt, int64_t ld,
                             int64_t f)


def pack_channels_last(const float[:, :, :, ::1] x, int ph, int pw, int threads=1):
    """(N, C, H, W) float -> (N, H + 2ph, W + 2pw, ceil(C/64)) uint64, bit c%64 of word c//64 = (x < 0).
    Padded pixels and padded channel bits are 0, i.e. +1.  Rows of all images are split over `threads`."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
    cdef Py_ssize_t cw = (c + 63) // 64
    out = np.zeros((n, h + 2 * ph, wd + 2 * pw, cw), dtype=np.uint64)
    if n == 0 or c == 0 or h == 0 or wd == 0:
        return out
    threads = max(threads, 1)
    # one row of words per thread, each on cache lines of its own (threads writing one line would take turns)
    scratch = np.empty((threads, (wd + 7) // 8 * 8 + 8), dtype=np.uint64)
    cdef uint64_t[:, :, :, ::1] p = out
    cdef uint64_t[:, ::1] acc = scratch
    cdef Py_ssize_t item, b, i
    share_loop(n * h, threads)
    for item in prange(n * h, nogil=True, num_threads=threads, schedule="runtime"):
        b = item // h
        i = item % h
        pack_row_channels_last(&x[b, 0, 0, 0], c, h, wd, i, &p[b, i + ph, pw, 0], cw, &acc[threadid(), 0])
    return out


def packed_im2col(const uint64_t[:, :, :, ::1] xpk, int kh, int kw, int sh, int sw, int oh, int ow, int threads=1):
    """rows[n*OH*OW + i*OW + j] = the kh*kw*CW words of pixel (i, j)'s receptive field, in (u, v, word) order.
    Output rows of all images are split over `threads`."""
    cdef Py_ssize_t n = xpk.shape[0], cw = xpk.shape[3]
    cdef Py_ssize_t K = kh * kw * cw
    out = np.empty((n * oh * ow, K), dtype=np.uint64)
    cdef uint64_t[:, ::1] a = out
    cdef Py_ssize_t item, b, i, j, u, v, q, row, col
    share_loop(n * oh, threads)
    for item in prange(n * oh, nogil=True, num_threads=max(threads, 1),
                       schedule="runtime"):
        b = item // oh
        i = item % oh
        for j in range(ow):
            row = item * ow + j
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
    share_loop(o, threads)
    for f in prange(o, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
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
    cdef const float[::1] view = a
    return &view[0]


def bgemm(const uint64_t[:, ::1] a, const uint64_t[:, ::1] bt, Py_ssize_t n, Py_ssize_t nbits, alpha=None,
          int relu=0, mean=None, invstd=None, gamma=None, beta=None, row_pattern=None, pattern_corr=None,
          Py_ssize_t pixels=0, int threads=1, prelu=None, residual=None):
    """C = nbits - 2 * popcount(A XOR B) followed by the fused output transform of bgemm.h:
    - row_pattern (M,) int32 + pattern_corr (P, n): zero-padding correction subtracted per row pattern;
    - alpha (n,): per-channel scale; relu; mean/invstd/gamma/beta (n,): eval-mode BatchNorm;
    - residual: float32 laid out like C (a residual block's shortcut), added after BatchNorm; prelu (n,): slopes.
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
    t.residual = NULL
    t.res_mean = t.res_invstd = t.res_gamma = t.res_beta = NULL
    if residual is not None:
        if residual.shape != out.shape or residual.dtype != np.float32 or not residual.flags.c_contiguous:
            raise ValueError(f"bgemm: residual must be C-contiguous float32 of the output's shape {out.shape}, "
                             f"got {residual.dtype} {residual.shape}")
        t.residual = _vec(residual, out.size, "residual", keep)
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
    # Work items: row blocks x column blocks.  The kernel steps through 8 rows at a time, so rows are dealt out in
    # groups of 8, every block getting the same number of groups (± 1), and the blocks are a multiple of the
    # thread count: static scheduling then gives each thread the same work (64-row tiles dealt out in order
    # would give one thread twice the other's rows at 14 x 14).  Columns are cut only when there are too few
    # row groups to keep every thread busy (the last layers of a network: few pixels, many channels).
    cdef Py_ssize_t groups = (m + 7) // 8
    cdef Py_ssize_t rblocks, cols
    if groups >= 4 * threads:
        rblocks = threads * ((groups + 8 * threads - 1) // (8 * threads))      # ~64 rows each
        cols = npad
    else:
        rblocks = 1
        cols = max(16, (npad // (4 * threads)) // 16 * 16)
    cdef Py_ssize_t nblocks = (n + cols - 1) // cols
    cdef Py_ssize_t i, m0, m1, n0, n1, rb
    cdef int failed = 0
    if threads <= 1:
        with nogil:
            failed = bgemm_rows(&a[0, 0], b, &c[0], 0, m, 0, n, n, npad, k, nbits, &t)
    else:
        share_loop(rblocks * nblocks, threads)
        for i in prange(rblocks * nblocks, nogil=True, num_threads=threads,
                        schedule="runtime"):
            rb = i // nblocks
            m0 = (rb * groups) // rblocks * 8
            m1 = ((rb + 1) * groups) // rblocks * 8
            if m1 > m:
                m1 = m
            n0 = (i % nblocks) * cols
            n1 = n0 + cols
            if n1 > n:
                n1 = n
            if m0 < m1:
                failed += bgemm_rows(&a[0, 0], b, &c[0], m0, m1, n0, n1, n, npad, k, nbits, &t) != 0   # a reduction
    if failed:
        raise MemoryError("bgemm: no memory for the popcount kernel's scratch rows")
    return out
