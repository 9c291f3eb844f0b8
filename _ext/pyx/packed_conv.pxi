# The packed inference engine's binary conv as one call: gathering each output pixel's receptive field (what
# packed_im2col does) and the XNOR-popcount GEMM with its output transform (what bgemm does), in one parallel
# region, with everything that depends only on the weights and the input size checked and resolved once.  A LAB
# conv can run its binarizer (LabPackPlan) in the same call and the same parallel region (run_lab).


cdef struct conv_work_t:
    # one PackedConvPlan call: its packed input, output, transform, gathered rows and how its work is cut
    const uint64_t *x           # (N, H + 2ph, W + 2pw, CW)
    float *out                  # (N, O, OH, OW)
    transform_t t
    uint64_t *rows              # (M, K): each output pixel's receptive field
    Py_ssize_t groups, rblocks, cols, nblocks
    bint by_rows
    int failed


cdef inline void _gather_rows(const uint64_t *xpk, Py_ssize_t hp, Py_ssize_t wp, Py_ssize_t cw, Py_ssize_t kh,
                              Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t oh, Py_ssize_t ow,
                              Py_ssize_t m0, Py_ssize_t m1, uint64_t *rows) noexcept nogil:
    """Rows m0 .. m1 - 1 of packed_im2col's result: row m = image b, pixel (i, j) holds words
    xpk[b, i·sh + u, j·sw + v, q] in (u, v, q) order; for one u the kw·CW words are already contiguous."""
    cdef Py_ssize_t m, b, pix, i, j, u
    cdef Py_ssize_t span = kw * cw
    cdef uint64_t *dst = rows + m0 * kh * span
    for m in range(m0, m1):
        b = m // (oh * ow)
        pix = m - b * oh * ow
        i = pix // ow
        j = pix - i * ow
        for u in range(kh):
            memcpy(dst, xpk + ((b * hp + i * sh + u) * wp + j * sw) * cw, span * sizeof(uint64_t))
            dst += span


cdef inline bint _c_array(object a, int typenum, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2,
                          Py_ssize_t d3):
    """a is a C-contiguous ndarray of this dtype and 4-D shape (d0, d1, d2, d3)."""
    if not isinstance(a, cnp.ndarray):
        return False
    cdef cnp.ndarray arr = a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or cnp.PyArray_NDIM(arr) != 4:
        return False
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    return dims[0] == d0 and dims[1] == d1 and dims[2] == d2 and dims[3] == d3


cdef class PackedConvPlan:
    """One packed binary conv at one input shape (N, C, H, W), ready to run many times:

        plan.run(xpk, residual=None, prelu=None, threads=1)  ==  bgemm(packed_im2col(xpk, …), bt, …, transform)

    bit for bit, with xpk from pack_channels_last (or lab_binarize_pack).  Made once per input shape, it holds
    the weights (and AVX2's prepared copy of them), the zero-padding pattern tiled over the batch and pointers to
    the transform's vectors, so a call only checks its input and output arrays: a batch-1 forward is dozens of
    small convs, and the work around each one does not shrink with more threads.

    The threads share one parallel region: with enough output rows each takes a block of rows, gathers exactly
    those rows' receptive fields and multiplies them (no wait between the two steps); with few rows (the last
    layers: few pixels, many channels) the rows are gathered first and the threads split the channels."""
    cdef object keep                     # the arrays the pointers below point into
    cdef object prelu_seen, prelu_kept   # the last PReLU slopes passed to run, and their float32 copy
    cdef object res_bn_seen, res_bn_kept # the last residual BatchNorm passed to run, and its float32 copies
    cdef transform_t t
    cdef const uint64_t *b
    cdef readonly Py_ssize_t batch, out_channels, out_h, out_w
    cdef Py_ssize_t npad, k, nbits, kh, kw, sh, sw, hp, wp, cw

    def __init__(self, const uint64_t[:, ::1] bt, Py_ssize_t out_channels, Py_ssize_t nbits, in_shape,
                 kernel, stride, padding, alpha=None, int relu=0, mean=None, invstd=None, gamma=None, beta=None,
                 row_pattern=None, pattern_corr=None):
        """bt, out_channels, nbits and the transform as for bgemm; in_shape (N, C, H, W) of the float input,
        kernel / stride / padding (h, w) pairs; row_pattern (OH·OW,) for ONE image (tiled here over N)."""
        cdef Py_ssize_t n = in_shape[0], c = in_shape[1]
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.hp, self.wp = in_shape[2] + 2 * padding[0], in_shape[3] + 2 * padding[1]
        self.out_h, self.out_w = (self.hp - self.kh) // self.sh + 1, (self.wp - self.kw) // self.sw + 1
        self.cw = (c + 63) // 64
        self.k, self.npad = bt.shape[0], bt.shape[1]
        if self.k != self.kh * self.kw * self.cw:
            raise ValueError(f"PackedConvPlan: B has {self.k} words per column; {c} channels and a "
                             f"{self.kh}x{self.kw} kernel need {self.kh * self.kw * self.cw}")
        if out_channels > self.npad:
            raise ValueError(f"PackedConvPlan: {out_channels} channels but B is padded to {self.npad}")
        if self.out_h <= 0 or self.out_w <= 0:
            raise ValueError(f"PackedConvPlan: a {self.kh}x{self.kw} kernel does not fit the padded "
                             f"{self.hp}x{self.wp} input")
        self.batch, self.out_channels, self.nbits = n, out_channels, nbits
        self.keep = [bt]
        cdef list keep = self.keep
        self.t.alpha = _vec(alpha, out_channels, "alpha", keep)
        self.t.mean = _vec(mean, out_channels, "mean", keep)
        self.t.invstd = _vec(invstd, out_channels, "invstd", keep)
        self.t.gamma = _vec(gamma, out_channels, "gamma", keep)
        self.t.beta = _vec(beta, out_channels, "beta", keep)
        if (self.t.mean == NULL) != (self.t.invstd == NULL):
            raise ValueError("PackedConvPlan: mean and invstd go together")
        self.t.relu = relu
        self.t.pixels = self.out_h * self.out_w
        self.t.residual = NULL
        self.t.res_mean = self.t.res_invstd = self.t.res_gamma = self.t.res_beta = NULL
        self.t.prelu = NULL
        self.t.row_pattern = NULL
        self.t.pattern_corr = NULL
        cdef int32_t[::1] pat
        if row_pattern is not None:
            one = np.ascontiguousarray(row_pattern, dtype=np.int32).reshape(-1)
            corr = np.ascontiguousarray(pattern_corr, dtype=np.float32)
            if one.shape[0] != self.t.pixels:
                raise ValueError(f"PackedConvPlan: row_pattern has {one.shape[0]} entries for "
                                 f"{self.t.pixels} output pixels")
            if corr.ndim != 2 or corr.shape[1] != out_channels or (one.size and one.max() >= corr.shape[0]):
                raise ValueError("PackedConvPlan: pattern_corr must be (patterns, out_channels) and cover "
                                 "every row pattern")
            pat = np.tile(one, n) if n > 1 else one
            keep.append(pat)
            self.t.row_pattern = &pat[0]
            self.t.pattern_corr = _vec(corr, corr.size, "pattern_corr", keep)
        # B in the layout this build's popcount loop reads (a copy split into nibbles for AVX2, else B itself)
        self.b = &bt[0, 0]
        cdef uint64_t[::1] prepared
        cdef Py_ssize_t words = bgemm_prepared_words(self.k, self.npad)
        if words:
            prepared = np.empty(words, dtype=np.uint64)
            bgemm_prepare_b(&bt[0, 0], &prepared[0], self.k, self.npad)
            keep.append(prepared)
            self.b = &prepared[0]

    def run(self, xpk, residual=None, prelu=None, int threads=1, residual_bn=None):
        """The conv's float32 output (N, O, OH, OW) for packed input xpk (N, H + 2ph, W + 2pw, CW) uint64.
        residual: C-contiguous float32 of the output's shape, added after BatchNorm; prelu (O,): slopes applied
        last; residual_bn: (mean, invstd, gamma, beta), each (O,), an eval BatchNorm applied to each residual
        value before the add, as the BatchNorm kernel computes it: ((r − mean)·invstd)·gamma + beta.  (The arrays
        are checked and read through their data pointers: cheaper than typed memoryviews.)"""
        if not _c_array(xpk, cnp.NPY_UINT64, self.batch, self.hp, self.wp, self.cw):
            raise ValueError(f"PackedConvPlan: expected packed input: C-contiguous uint64 of shape ({self.batch}, "
                             f"{self.hp}, {self.wp}, {self.cw}), got {getattr(xpk, 'dtype', type(xpk))} "
                             f"{getattr(xpk, 'shape', '')}")
        cdef conv_work_t work
        out = self._start(residual, prelu, residual_bn, threads, &work)
        if work.rows == NULL:
            return out
        work.x = <const uint64_t *>cnp.PyArray_DATA(xpk)
        try:
            if threads > 1:
                engine_team(None, NULL, self, &work, threads)
            else:
                self._multiply_alone(&work)
        finally:
            free(work.rows)
        if work.failed:
            raise MemoryError("PackedConvPlan: no memory for the popcount kernel's scratch rows")
        return out

    def run_lab(self, LabPackPlan lab not None, x, int p, residual=None, prelu=None, int threads=1,
                residual_bn=None):
        """plan.run(lab.run(x, p, threads), residual, prelu, threads), bit for bit, in one call: on several
        threads LAB's loops and the conv's share one parallel region (a batch-1 forward makes sixteen of these
        calls, and each region's start and end cost as much as some of its small layers)."""
        cdef lab_work_t lw
        cdef conv_work_t cw
        cw.rows = NULL
        xpk, padded = lab._start(x, p, threads, &lw)
        if not _c_array(xpk, cnp.NPY_UINT64, self.batch, self.hp, self.wp, self.cw):
            free(lw.bound)
            free(lw.part)
            raise ValueError(f"PackedConvPlan.run_lab: LAB's packed input {xpk.shape} does not fit this plan's "
                             f"({self.batch}, {self.hp}, {self.wp}, {self.cw})")
        try:
            out = self._start(residual, prelu, residual_bn, threads, &cw)
            cw.x = <const uint64_t *>cnp.PyArray_DATA(xpk)
            if threads > 1 and lw.n and cw.rows != NULL:
                engine_team(lab, &lw, self, &cw, threads)
            else:
                if lw.n:
                    lab._pack_alone(&lw)
                if cw.rows != NULL:
                    self._multiply_alone(&cw)
        finally:
            free(lw.bound)
            free(lw.part)
            free(cw.rows)
        if cw.failed:
            raise MemoryError("PackedConvPlan: no memory for the popcount kernel's scratch rows")
        return out

    cdef object _start(self, residual, prelu, residual_bn, int threads, conv_work_t *work):
        """Check residual, prelu and residual_bn, make the output (returned), the gathered rows' buffer
        (work.rows, which the caller frees; NULL when the output is empty) and the cut of the work over
        `threads`: row blocks of whole 8-row groups, as many per thread (each gathers its own rows, then
        multiplies them); with few rows (the last layers: few pixels, many channels), the rows are gathered first
        and the threads take column blocks."""
        cdef Py_ssize_t m = self.batch * self.t.pixels, n = self.out_channels
        cdef cnp.npy_intp dims[4]
        work.rows = NULL
        work.failed = 0
        work.t = self.t
        dims[0], dims[1], dims[2], dims[3] = self.batch, n, self.out_h, self.out_w
        out = cnp.PyArray_EMPTY(4, dims, cnp.NPY_FLOAT32, 0)
        if residual is not None:
            if not _c_array(residual, cnp.NPY_FLOAT32, self.batch, n, self.out_h, self.out_w):
                raise ValueError(f"PackedConvPlan: residual must be C-contiguous float32 of the output's shape "
                                 f"{out.shape}, got {getattr(residual, 'dtype', type(residual))} "
                                 f"{getattr(residual, 'shape', '')}")
            work.t.residual = <const float *>cnp.PyArray_DATA(residual)
        if prelu is not None:
            if prelu is not self.prelu_seen:      # a block passes the same slopes every time
                kept = np.ascontiguousarray(prelu, dtype=np.float32).reshape(-1)
                if kept.shape[0] != n:
                    raise ValueError(f"PackedConvPlan: prelu has {kept.shape[0]} slopes, expected {n}")
                self.prelu_seen, self.prelu_kept = prelu, kept
            work.t.prelu = <const float *>cnp.PyArray_DATA(self.prelu_kept)
        if residual_bn is not None:
            if residual is None:
                raise ValueError("PackedConvPlan: residual_bn needs a residual")
            if residual_bn is not self.res_bn_seen:     # a block passes the same tuple every time
                if len(residual_bn) != 4:
                    raise ValueError("PackedConvPlan: residual_bn is (mean, invstd, gamma, beta)")
                kept = [np.ascontiguousarray(v, dtype=np.float32).reshape(-1) for v in residual_bn]
                if any(v.shape[0] != n for v in kept):
                    raise ValueError(f"PackedConvPlan: residual_bn's vectors must have {n} values each, got "
                                     f"{[v.shape[0] for v in kept]}")
                self.res_bn_seen, self.res_bn_kept = residual_bn, kept
            work.t.res_mean = <const float *>cnp.PyArray_DATA(self.res_bn_kept[0])
            work.t.res_invstd = <const float *>cnp.PyArray_DATA(self.res_bn_kept[1])
            work.t.res_gamma = <const float *>cnp.PyArray_DATA(self.res_bn_kept[2])
            work.t.res_beta = <const float *>cnp.PyArray_DATA(self.res_bn_kept[3])
        work.out = <float *>cnp.PyArray_DATA(out)
        if m == 0 or n == 0:
            return out
        threads = max(threads, 1)
        work.groups = (m + 7) // 8
        work.by_rows = work.groups >= 4 * threads
        work.rblocks, work.cols = 1, self.npad
        if work.by_rows:
            work.rblocks = threads * ((work.groups + 8 * threads - 1) // (8 * threads))
        elif threads > 1:
            work.cols = max(16, (self.npad // (4 * threads)) // 16 * 16)
        work.nblocks = (n + work.cols - 1) // work.cols
        work.rows = <uint64_t *>malloc(m * self.k * sizeof(uint64_t))
        if work.rows == NULL:
            raise MemoryError(f"PackedConvPlan: no memory for {m} x {self.k} gathered words")
        return out

    cdef void _multiply_alone(self, conv_work_t *work) noexcept:
        """run's work on the calling thread; on several threads it runs as engine_team's loops."""
        cdef Py_ssize_t m = self.batch * self.t.pixels
        with nogil:
            self._gather(work, 0, m)
            if bgemm_rows(work.rows, self.b, work.out, 0, m, 0, self.out_channels, self.out_channels, self.npad,
                          self.k, self.nbits, &work.t) != 0:
                work.failed = 1

    cdef inline void _gather(self, conv_work_t *work, Py_ssize_t m0, Py_ssize_t m1) noexcept nogil:
        _gather_rows(work.x, self.hp, self.wp, self.cw, self.kh, self.kw, self.sh, self.sw, self.out_h, self.out_w,
                     m0, m1, work.rows)

    cdef inline void _multiply_block(self, conv_work_t *work, Py_ssize_t i) noexcept nogil:
        """Work item i of the cut _start made: its rows (gathered here when the cut is by rows) times its
        columns."""
        cdef Py_ssize_t m = self.batch * self.t.pixels, n = self.out_channels
        cdef Py_ssize_t rb = i // work.nblocks
        cdef Py_ssize_t m0 = (rb * work.groups) // work.rblocks * 8
        cdef Py_ssize_t m1 = ((rb + 1) * work.groups) // work.rblocks * 8
        cdef Py_ssize_t n0 = (i % work.nblocks) * work.cols
        cdef Py_ssize_t n1 = n0 + work.cols
        if m1 > m:
            m1 = m
        if n1 > n:
            n1 = n
        if m0 >= m1:
            return
        if work.by_rows:
            self._gather(work, m0, m1)
        if bgemm_rows(work.rows, self.b, work.out, m0, m1, n0, n1, n, self.npad, self.k, self.nbits, &work.t) != 0:
            work.failed = 1


cdef void engine_team(LabPackPlan lab, lab_work_t *lw, PackedConvPlan conv, conv_work_t *cw,
                      int threads) noexcept:
    """The engine's work on `threads` OpenMP threads in one parallel region: LabPackPlan's (when lw is not
    NULL) — the row maxima of the rows each thread packs, the bounds, the padded copy, the packed units —
    then PackedConvPlan's (when cw is not NULL) — the gathered rows, unless each block gathers its own, and the
    popcount blocks.  Each loop ends with a barrier, so a step reads only what the previous one finished."""
    cdef Py_ssize_t c = 0, item, m = 0
    if lw != NULL:
        c = lab.channels
    if cw != NULL:
        m = conv.batch * conv.t.pixels
    with nogil, parallel(num_threads=threads):
        if lw != NULL:
            if lw.bound != NULL:
                # each thread takes the maxima of the rows it will pack (the rows the previous layer wrote from
                # the same core, most likely), then the bounds from all threads' maxima
                for item in prange(threads, schedule="static", chunksize=1):
                    lab._row_maxima(lw.x, lw.part + item * lw.n * c, lw.n, lw.h, lw.w, (item * lw.h) // threads,
                                    ((item + 1) * lw.h) // threads)
                share_loop(lw.n * c, threads)
                for item in prange(lw.n * c, schedule="runtime"):
                    lab._bound_from_parts(lw.part, lw.bound, item, lw.n, threads)
            if lw.xp != NULL:
                share_loop(lw.n * c, threads)
                for item in prange(lw.n * c, schedule="runtime"):
                    lab._pad_plane(lw.x, lw.xp, item, lw.h, lw.w, lw.plane)
            share_loop(lw.n * lw.blocks, threads)
            for item in prange(lw.n * lw.blocks, schedule="runtime"):
                lab._pack_units(lw, item, item + 1)
        if cw != NULL:
            if not cw.by_rows:
                share_loop(m, threads)
                for item in prange(m, schedule="runtime"):
                    conv._gather(cw, item, item + 1)
            share_loop(cw.rblocks * cw.nblocks, threads)
            for item in prange(cw.rblocks * cw.nblocks, schedule="runtime"):
                conv._multiply_block(cw, item)
