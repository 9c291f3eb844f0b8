# Kernels only the packed inference engine uses: LAB's whole binarizer written straight into packed bits
# (lab_pack.h), and the micro-benchmarks of this CPU's peak rates (peak.h).


cdef extern from "lab_pack.h" nogil:
    const int LAB_PLANE_SLACK
    const int LAB_PACK_PADDED
    int64_t lab_blocks(int64_t c, int64_t h, int64_t w)
    int lab_short_way_pays(int64_t h, int64_t w)
    void lab_pack_blocks(const float *xp, int64_t plane, int64_t c, int64_t h, int64_t w, const float *kernels,
                         const float *bias, float beta, const int32_t *map0, const int32_t *map1, int64_t b0,
                         int64_t b1, uint64_t *out, int64_t p, const float *delta, const float *bound)
    float lab_plane_max_abs(const float *x, int64_t n)
    const int LAB_SHORT
    float lab_bound(float m, const float *delta, double floor)
    double lab_floor(float beta)
    void lab_differences(int64_t c, const float *kernels, const float *bias, const int32_t *map0,
                         const int32_t *map1, float *delta)


def lab_short_way(const float[:, ::1] kernels, const float[::1] bias, const int32_t[::1] map0,
                  const int32_t[::1] map1):
    """The numbers lab_binarize_pack's short way needs, (C, LAB_SHORT) float32: per output channel the difference
    kernel k[map1] - k[map0], the bias difference, and the sums of |k| and |bias| its bound uses (lab_pack.h's
    lab_differences).  A channel whose two maps read different input channels never takes the short way."""
    cdef Py_ssize_t c = map0.shape[0], ch
    _check_lab_arguments("lab_short_way", c, kernels, bias, map0, map1)
    out = np.empty((c, LAB_SHORT), dtype=np.float32)
    cdef float[:, ::1] numbers = out
    if c:
        lab_differences(c, &kernels[0, 0], &bias[0], &map0[0], &map1[0], &numbers[0, 0])
    for ch in range(c):
        if map0[ch] // 2 != map1[ch] // 2:
            numbers[ch, 10] = np.inf
    return out


cdef int _check_lab_arguments(str name, Py_ssize_t c, const float[:, ::1] kernels, const float[::1] bias,
                              const int32_t[::1] map0, const int32_t[::1] map1) except -1:
    if kernels.shape[0] != 2 * c or kernels.shape[1] != 9 or bias.shape[0] != 2 * c:
        raise ValueError(f"{name}: {c} input channels need kernels (2C, 9) = ({2 * c}, 9) and bias "
                         f"({2 * c},); got ({kernels.shape[0]}, {kernels.shape[1]}) and ({bias.shape[0]},)")
    if map0.shape[0] != c or map1.shape[0] != c:
        raise ValueError(f"{name}: map0 / map1 must name a pair of maps for each of the {c} channels")
    cdef Py_ssize_t ch
    for ch in range(c):
        if not (0 <= map0[ch] < 2 * c and 0 <= map1[ch] < 2 * c):
            raise ValueError(f"{name}: channel {ch} pairs maps {map0[ch]} and {map1[ch]}, outside 0..{2 * c - 1}")
    return 0


def lab_binarize_pack(const float[:, :, :, ::1] x, kernels, bias, float beta, map0, map1, int p, int threads=1,
                      bint short_way=False):
    """LAB's whole eval forward in one pass, into packed words (lab_pack.h): for output channel c and pixel
    (i, j), bit c is 0 (+1) iff beta * (r[map1[c]] - r[map0[c]]) > 0, r being the 2C zero-padded 3x3 depthwise
    responses of x (N, C, H, W) with kernels (2C, 9) and bias (2C,); map a reads input channel a // 2.
    Returns (N, H + 2p, W + 2p, ceil(C/64)) uint64 with zero words (+1) in the padding, like pack_channels_last.
    Blocks of pixels of all images are split over `threads`.  short_way: let each block take its bits from the
    one-kernel difference where lab_bound certifies their sign (the bits are the same); False computes every
    response exactly.  (LabPackPlan is the same, made once for a layer.)"""
    return LabPackPlan(kernels, bias, beta, map0, map1, short_way).run(np.asarray(x), p, threads)


cdef enum:
    # pixels per map from which the short way also pays on several threads: there its maxima and bounds are two
    # more loops, each ending with a barrier, which on smaller maps (LAB-BNN's 14 x 14 and 7 x 7 layers) cost the
    # threads more than the responses it saves (the bits are the same either way)
    LAB_SHARED_SHORT_WAY = 28 * 28


cdef struct lab_work_t:
    # one LabPackPlan call: its input, output and scratch (LabPackPlan._start makes it)
    const float *x              # (N, C, H, W)
    float *xp                   # the zero-padded copy this build's kernel reads, or NULL (it reads x)
    const float *src            # what the packing reads: xp, or x
    uint64_t *out               # (N, H + 2p, W + 2p, CW)
    float *bound                # (N, C): the short way's bounds, or NULL: exact responses only
    float *part                 # (threads, N, C): each thread's row maxima, the bounds are made of
    Py_ssize_t n, h, w, p, plane
    Py_ssize_t blocks, out_image    # lab_blocks units per image; words per image of out


cdef class LabPackPlan:
    """One LAB layer's binarize-and-pack, ready to run many times: plan.run(x, p, threads) equals
    lab_binarize_pack(x, kernels, bias, beta, map0, map1, p, threads, short_way) bit for bit.  Made once per
    layer, it checks and keeps the kernels, biases, pairs and the short way's numbers, so a call only checks its
    input: a batch-1 forward makes sixteen such calls, and the work around each does not shrink with threads."""
    cdef object keep
    cdef const float *kernels
    cdef const float *bias
    cdef const int32_t *map0
    cdef const int32_t *map1
    cdef const float *numbers             # lab_short_way's (C, LAB_SHORT) array, or NULL: always exact
    cdef float beta
    cdef double floor
    cdef readonly Py_ssize_t channels

    def __init__(self, kernels, bias, float beta, map0, map1, bint short_way=True):
        k = np.ascontiguousarray(kernels, dtype=np.float32)
        b = np.ascontiguousarray(bias, dtype=np.float32)
        m0 = np.ascontiguousarray(map0, dtype=np.int32)
        m1 = np.ascontiguousarray(map1, dtype=np.int32)
        cdef Py_ssize_t c = m0.shape[0] if m0.ndim == 1 else -1
        if k.ndim != 2 or b.ndim != 1:
            raise ValueError(f"LabPackPlan: kernels must be (2C, 9) and bias (2C,), got {k.shape} and {b.shape}")
        _check_lab_arguments("LabPackPlan", c, k, b, m0, m1)
        self.channels, self.beta, self.floor = c, beta, lab_floor(beta)
        self.keep = [k, b, m0, m1]
        cdef const float[:, ::1] kv = k
        cdef const float[::1] bv = b
        cdef const int32_t[::1] m0v = m0, m1v = m1
        self.kernels = self.bias = NULL
        self.map0 = self.map1 = NULL
        if c:
            self.kernels = &kv[0, 0]
            self.bias = &bv[0]
            self.map0 = &m0v[0]
            self.map1 = &m1v[0]
        self.numbers = NULL
        cdef const float[:, ::1] nv
        if short_way and c and self.floor != INFINITY:
            numbers = lab_short_way(k, b, m0, m1)
            self.keep.append(numbers)
            nv = numbers
            self.numbers = &nv[0, 0]

    def run(self, x, int p, int threads=1):
        """The packed words (N, H + 2p, W + 2p, ceil(C/64)) for x (N, C, H, W), C-contiguous float32."""
        cdef lab_work_t work
        out, padded = self._start(x, p, threads, &work)
        try:
            if work.n and threads > 1:
                engine_team(self, &work, None, NULL, threads)
            elif work.n:
                self._pack_alone(&work)
        finally:
            free(work.bound)
            free(work.part)
        return out

    cdef object _start(self, x, int p, int threads, lab_work_t *work):
        """Check x, make the output and the scratch `work` points to; returns (output, the padded copy or None),
        which the caller keeps until the work is done, and frees work.bound and work.part.  work.n is 0 when
        there is nothing to compute."""
        if not (isinstance(x, cnp.ndarray) and cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32 and
                cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_NDIM(x) == 4 and
                cnp.PyArray_DIMS(x)[1] == self.channels):
            raise ValueError(f"LabPackPlan: expected C-contiguous float32 (N, {self.channels}, H, W), got "
                             f"{getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
        if p < 0:
            raise ValueError(f"LabPackPlan: padding must be >= 0, got {p}")
        work.bound = work.part = work.xp = NULL
        work.n = 0
        cdef cnp.npy_intp *d = cnp.PyArray_DIMS(x)
        cdef Py_ssize_t n = d[0], c = d[1], h = d[2], wd = d[3]
        cdef cnp.npy_intp dims[4]
        dims[0], dims[1], dims[2], dims[3] = n, h + 2 * p, wd + 2 * p, (c + 63) // 64
        out = cnp.PyArray_ZEROS(4, dims, cnp.NPY_UINT64, 0)
        if n == 0 or c == 0 or h == 0 or wd == 0:
            return out, None
        work.x = work.src = <const float *>cnp.PyArray_DATA(x)
        work.out = <uint64_t *>cnp.PyArray_DATA(out)
        work.h, work.w, work.p, work.plane = h, wd, p, h * wd
        work.blocks = lab_blocks(c, h, wd)
        work.out_image = dims[1] * dims[2] * dims[3]
        if (self.numbers != NULL and lab_short_way_pays(h, wd)
                and (threads <= 1 or h * wd >= LAB_SHARED_SHORT_WAY)):
            work.bound = <float *>malloc(n * c * sizeof(float))
            work.part = <float *>malloc(max(threads, 1) * n * c * sizeof(float))      # per thread, row maxima
            if work.bound == NULL or work.part == NULL:
                free(work.bound)
                free(work.part)
                raise MemoryError("LabPackPlan: no memory for the short way's bounds")
        cdef float[:, :, ::1] xp
        padded = None
        if LAB_PACK_PADDED:     # the zero-padded copy this build's kernel reads
            work.plane = (h + 2) * (wd + 2) + LAB_PLANE_SLACK
            padded = np.empty((n, c, work.plane), dtype=np.float32)
            xp = padded
            work.xp = &xp[0, 0, 0]
            work.src = work.xp
        work.n = n
        return out, padded

    cdef void _pack_alone(self, lab_work_t *work) noexcept:
        """run's work on the calling thread: the bounds (when work.bound is set), the padded copy (when work.xp
        is), the packing.  On several threads the same steps run as engine_team's loops."""
        cdef Py_ssize_t c = self.channels, n = work.n, h = work.h, wd = work.w, item
        with nogil:
            if work.bound != NULL:
                self._row_maxima(work.x, work.part, n, h, wd, 0, h)
                for item in range(n * c):
                    self._bound_from_parts(work.part, work.bound, item, n, 1)
            if work.xp != NULL:
                for item in range(n * c):
                    self._pad_plane(work.x, work.xp, item, h, wd, work.plane)
            for item in range(n):
                self._pack_units(work, item * work.blocks, (item + 1) * work.blocks)

    cdef inline void _pack_units(self, const lab_work_t *work, Py_ssize_t u0, Py_ssize_t u1) noexcept nogil:
        """Units u0 .. u1 - 1 of all images' lab_blocks units (both in one image)."""
        cdef Py_ssize_t c = self.channels, image = u0 // work.blocks
        lab_pack_blocks(work.src + image * c * work.plane, work.plane, c, work.h, work.w, self.kernels, self.bias,
                        self.beta, self.map0, self.map1, u0 - image * work.blocks, u1 - image * work.blocks,
                        work.out + image * work.out_image, work.p, self.numbers,
                        work.bound + image * c if work.bound != NULL else NULL)

    cdef inline void _row_maxima(self, const float *x, float *part, Py_ssize_t n, Py_ssize_t h, Py_ssize_t wd,
                                 Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
        """part[b * C + ch]: the largest |x| in rows r0 .. r1 - 1 of the plane channel ch reads (0 if none)."""
        cdef Py_ssize_t c = self.channels, b, ch
        for b in range(n):
            for ch in range(c):
                part[b * c + ch] = lab_plane_max_abs(x + (b * c + self.map0[ch] // 2) * h * wd + r0 * wd,
                                                     (r1 - r0) * wd)

    cdef inline void _bound_from_parts(self, const float *part, float *bound, Py_ssize_t item, Py_ssize_t n,
                                       int threads) noexcept nogil:
        cdef Py_ssize_t c = self.channels, t
        cdef float m = 0
        if self.numbers[(item % c) * LAB_SHORT + 10] == INFINITY:
            bound[item] = INFINITY
            return
        for t in range(threads):
            if not (part[t * n * c + item] <= m):      # INFINITY (a NaN or an infinity) wins too
                m = part[t * n * c + item]
        bound[item] = lab_bound(m, self.numbers + (item % c) * LAB_SHORT, self.floor)

    cdef inline void _pad_plane(self, const float *x, float *xp, Py_ssize_t item, Py_ssize_t h, Py_ssize_t wd,
                                Py_ssize_t plane) noexcept nogil:
        """Plane `item` (image item // C, channel item % C) zero-padded into xp, as lab_pack.h's portable loop
        reads it."""
        cdef Py_ssize_t i
        xp += item * plane
        memset(xp, 0, (wd + 3) * sizeof(float))
        for i in range(h):
            memcpy(xp + (i + 1) * (wd + 2) + 1, x + (item * h + i) * wd, wd * sizeof(float))
            xp[(i + 1) * (wd + 2) + wd + 1] = 0
            xp[(i + 2) * (wd + 2)] = 0
        memset(xp + (h + 1) * (wd + 2) + 1, 0, (plane - (h + 1) * (wd + 2) - 1) * sizeof(float))


cdef extern from "peak.h" nogil:
    const int PEAK_WORDS
    void peak_parallel(int kind, int64_t iters, int threads, const uint64_t *words, double *work)


cdef double _peak_round(int kind, int64_t iters, int threads, const uint64_t[::1] words, double[::1] work):
    """MACs done by one round of micro-benchmark `kind` on every thread at once."""
    with nogil:
        peak_parallel(kind, iters, threads, &words[0], &work[0])
    return sum(work)


def peak_rates(double seconds=0.05, int threads=1):
    """(binary MACs / s, float32 MACs / s) this CPU reaches at most on `threads` cores at once (peak.h): each
    micro-benchmark round lasts about `seconds`, and the best of three rounds counts."""
    import time
    cdef int nt = max(threads, 1)
    words = np.random.default_rng(0).integers(0, 2**63, PEAK_WORDS + 16, dtype=np.uint64)
    done = np.zeros(nt)
    cdef int64_t iters
    rates = []
    for kind in range(2):
        iters = 16
        while True:                      # grow the round on one thread until it lasts long enough to time
            start = time.perf_counter()
            _peak_round(kind, iters, 1, words, done)
            if time.perf_counter() - start >= seconds / 4 or iters > (1 << 40):
                break
            iters *= 4
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            work = _peak_round(kind, iters, nt, words, done)
            best = max(best, work / (time.perf_counter() - start))
        rates.append(best)
    return tuple(rates)
