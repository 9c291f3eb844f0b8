# Float32 GEMM split over the kernels' OpenMP threads (sgemm.h) and the Winograd F(2x2, 3x3) conv backward
# (winograd.h).


cdef extern from "sgemm.h" nogil:
    void sgemm_set(void *address, int index_bits)
    int sgemm_use_own(int on)
    int sgemm_own                   # 1 while sgemm runs on the own GEMM (sgemm_use_own)
    const char *MINILAB_OWN_SGEMM
    void sgemm_part(int part, int parts, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)

cdef int _sgemm_index_bits = 0

cdef enum:
    SGEMM_SPLIT_MACS = 1 << 18  # smaller products run whole on the calling thread: a split would cost more
    # blocks per thread of a split product: more let the running threads take over the blocks of a thread whose
    # core another process took; each block packs the whole of A again, so few
    SGEMM_PARTS_PER_THREAD = 2


def use_blas_sgemm(size_t address, int index_bits):
    """Hand over the address of the loaded BLAS' cblas_sgemm (`index_bits` 32 for LP64, 64 for ILP64); `sgemm`
    calls it.  minilab.threads.find_blas_sgemm finds it in the OpenBLAS NumPy loaded.  Address 0 turns it off."""
    global _sgemm_index_bits
    if index_bits not in (32, 64):
        raise ValueError(f"use_blas_sgemm: index_bits must be 32 or 64, not {index_bits}")
    sgemm_set(<void *>address, index_bits)
    _sgemm_index_bits = index_bits if address else 0


def use_own_sgemm(bint on=True):
    """Run `sgemm` on this module's own float GEMM (built only for AVX-512: `_ext/sgemm/avx512.h`) instead of the
    BLAS'.  Returns whether it is on now: False where this module has none."""
    return sgemm_use_own(on) != 0


def own_sgemm():
    """The instruction set of this module's own float GEMM ('avx512'), or None when it has none."""
    return MINILAB_OWN_SGEMM.decode() if MINILAB_OWN_SGEMM != NULL else None


def own_sgemm_in_use():
    """The instruction set of the own GEMM when `sgemm` runs on it ('avx512'), else None."""
    return own_sgemm() if sgemm_own else None


def sgemm_kind():
    """Which GEMM `sgemm` runs: 'own-avx512', 'blas', or None (no GEMM given)."""
    if sgemm_own:
        return "own-" + own_sgemm()
    return "blas" if _sgemm_index_bits else None


def has_sgemm():
    """True once `use_blas_sgemm` was given a GEMM or `use_own_sgemm` turned the own one on."""
    return sgemm_own != 0 or _sgemm_index_bits != 0


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
        if not has_sgemm():
            raise RuntimeError("sgemm: no GEMM to run: no BLAS GEMM was given (minilab.core.blas.find_blas_sgemm "
                               "found none) and the own one is off (use_own_sgemm)")
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
        elif not out.flags.writeable:
            raise ValueError("sgemm: out is read-only")
        elif ndim == 3 and self.batch > 1 and abs(out.strides[0]) < self.m * self.n * 4:
            raise ValueError("sgemm: the matrices of out overlap each other")
        elif np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError("sgemm: out shares memory with a or b (the product would read what it writes)")
        if not sgemm_own and _sgemm_index_bits == 32 and max(self.m, self.n, self.k, la[1], lb[1]) >= 2 ** 31:
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


def sgemm(a, b, out=None, float beta=0.0, int threads=1, int parts=0):
    """out = a @ b + beta * out, float32, on the own GEMM (`use_own_sgemm`) or else the BLAS given to
    `use_blas_sgemm`.

    a (m, k) and b (k, n) may be C- or F-ordered (a transposed view costs nothing); other layouts are copied.
    `out` (m, n), C-contiguous, is required when beta != 0.  The columns of out (or its rows, see sgemm.h) are
    cut into `parts` blocks (0: SGEMM_PARTS_PER_THREAD × `threads`), each one GEMM call in the thread that takes
    it; OpenMP threads take the blocks one at a time (a thread whose core is busy with another process leaves its
    remaining blocks to the others), one thread takes them all in turn.  So the BLAS must be set to one thread
    (minilab.threads.set_threads does it), or its own workers would fight over the cores.  The own GEMM gives
    every value the same bits however C is cut; on the BLAS a block's bits depend on its shape (the BLAS may pick
    other kernels, or sum k in other steps, for a narrower block), so for a fixed `parts` the result is the same
    bits for any `threads`: minilab passes `config.gemm_split()`, which a run that may change its thread count
    fixes, so its numbers do not change with the count."""
    cdef _Gemm p = _Gemm(a, b, out, beta, 2)
    if p.trivial(beta):
        return p.out
    cdef const float *pa = <const float *>cnp.PyArray_DATA(p.a)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(p.b)
    cdef float *pc = <float *>cnp.PyArray_DATA(p.out)
    threads = max(threads, 1)
    if parts <= 0:
        parts = SGEMM_PARTS_PER_THREAD * threads
    cdef int part
    # one thread makes the whole product in one call where the bits allow it (the own GEMM's never depend on
    # the split), or where a split would cost more than it could save
    if p.m * p.n * p.k < SGEMM_SPLIT_MACS or parts == 1 or (threads == 1 and sgemm_own):
        with nogil:
            sgemm_part(0, 1, p.ta, p.tb, p.m, p.n, p.k, pa, p.lda, pb, p.ldb, beta, pc, p.ldc)
        return p.out
    if threads == 1:
        with nogil:
            for part in range(parts):
                sgemm_part(part, parts, p.ta, p.tb, p.m, p.n, p.k, pa, p.lda, pb, p.ldb, beta, pc, p.ldc)
        return p.out
    share_loop(parts, threads)
    for part in prange(parts, nogil=True, num_threads=threads, schedule="runtime"):
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
    cdef Py_ssize_t i, batch = p.batch
    share_loop(batch, threads)
    for i in prange(batch, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
        sgemm_part(0, 1, p.ta, p.tb, p.m, p.n, p.k, pa + i * p.stride_a, p.lda, pb + i * p.stride_b, p.ldb,
                   beta, pc + i * p.stride_c, p.ldc)
    return p.out


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
    share_loop(o, threads)
    for f in prange(o, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
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
    share_loop(o, threads)
    for f in prange(o, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
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
            share_loop(n * c, threads)
            for plane in prange(n * c, schedule="runtime"):
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
            share_loop(n * o, threads)
            for plane in prange(n * o, schedule="runtime"):
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
            share_loop(n * c, threads)
            for plane in prange(n * c, schedule="runtime"):
                wino_input_grad_plane(&nt[0, plane // n, (plane % n) * th * tw], _slab(nt), th, tw, h, w, p,
                                      &dx[plane % n, plane // n, 0, 0], rows)
            free(rows)
        else:
            failed[0] = 1
    if failed[0]:
        raise MemoryError("winograd: no memory for a few rows of scratch")
    return out
