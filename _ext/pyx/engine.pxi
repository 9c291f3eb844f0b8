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


def lab_binarize_pack(const float[:, :, :, ::1] x, const float[:, ::1] kernels, const float[::1] bias, float beta,
                      const int32_t[::1] map0, const int32_t[::1] map1, int p, int threads=1, short_way=None):
    """LAB's whole eval forward in one pass, into packed words (lab_pack.h): for output channel c and pixel
    (i, j), bit c is 0 (+1) iff beta * (r[map1[c]] - r[map0[c]]) > 0, r being the 2C zero-padded 3x3 depthwise
    responses of x (N, C, H, W) with kernels (2C, 9) and bias (2C,); map a reads input channel a // 2.
    Returns (N, H + 2p, W + 2p, ceil(C/64)) uint64 with zero words (+1) in the padding, like pack_channels_last.
    Blocks of pixels of all images are split over `threads`.  short_way: lab_short_way(kernels, bias, map0, map1)
    to let each block take its bits from the one-kernel difference where lab_bound certifies their sign (the
    bits are the same); None computes every response exactly."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
    _check_lab_arguments("lab_binarize_pack", c, kernels, bias, map0, map1)
    cdef const float[:, ::1] numbers
    if short_way is not None:
        numbers = short_way
        if numbers.shape[0] != c or numbers.shape[1] != LAB_SHORT:
            raise ValueError(f"lab_binarize_pack: short_way must be lab_short_way's ({c}, {LAB_SHORT}) array, got "
                             f"({numbers.shape[0]}, {numbers.shape[1]})")
    cdef Py_ssize_t cw = (c + 63) // 64
    out = np.zeros((n, h + 2 * p, wd + 2 * p, cw), dtype=np.uint64)
    if n == 0 or c == 0 or h == 0 or wd == 0:
        return out
    cdef uint64_t[:, :, :, ::1] o = out
    cdef Py_ssize_t blocks = lab_blocks(c, h, wd), item, b, i, ch
    cdef Py_ssize_t plane = h * wd
    cdef const float *src = &x[0, 0, 0, 0]
    threads = max(threads, 1)
    # per image and channel, how far from zero the short difference must be for its sign to be the bit's
    cdef float[:, ::1] bound
    cdef const float *bound_ptr = NULL
    cdef const float *numbers_ptr = NULL
    cdef double floor = lab_floor(beta)
    cdef bint bounded = short_way is not None and lab_short_way_pays(h, wd) and floor != INFINITY
    if bounded:
        bound = np.empty((n, c), dtype=np.float32)
        bound_ptr = &bound[0, 0]
        numbers_ptr = &numbers[0, 0]
    cdef float[:, :, ::1] xp
    if LAB_PACK_PADDED:
        # the zero-padded copy this build's kernel reads: planes of (H + 2) x (W + 2) floats and some slack
        plane = (h + 2) * (wd + 2) + LAB_PLANE_SLACK
        padded = np.empty((n, c, plane), dtype=np.float32)
        xp = padded
        src = &xp[0, 0, 0]
    # one team of threads for the three steps (each loop ends with a barrier): a batch-1 forward makes many
    # such calls, and starting the threads once per call instead of three times shows
    with nogil, parallel(num_threads=threads):
        if bounded:
            for item in prange(n * c, schedule="static"):
                b = item // c
                ch = item % c
                if numbers[ch, 10] == INFINITY:
                    bound[b, ch] = INFINITY
                else:
                    bound[b, ch] = lab_bound(lab_plane_max_abs(&x[b, map0[ch] // 2, 0, 0], h * wd),
                                             &numbers[ch, 0], floor)
        if LAB_PACK_PADDED:
            for item in prange(n * c, schedule="static"):
                b = item // c
                ch = item % c
                memset(&xp[b, ch, 0], 0, (wd + 3) * sizeof(float))
                for i in range(h):
                    memcpy(&xp[b, ch, (i + 1) * (wd + 2) + 1], &x[b, ch, i, 0], wd * sizeof(float))
                    xp[b, ch, (i + 1) * (wd + 2) + wd + 1] = 0
                    xp[b, ch, (i + 2) * (wd + 2)] = 0
                memset(&xp[b, ch, (h + 1) * (wd + 2) + 1], 0,
                       (plane - (h + 1) * (wd + 2) - 1) * sizeof(float))
        for item in prange(n * blocks, schedule="static"):
            b = item // blocks
            lab_pack_blocks(src + b * c * plane, plane, c, h, wd, &kernels[0, 0], &bias[0], beta, &map0[0],
                            &map1[0], item % blocks, item % blocks + 1, &o[b, 0, 0, 0], p, numbers_ptr,
                            bound_ptr + b * c if bound_ptr != NULL else NULL)
    return out


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
