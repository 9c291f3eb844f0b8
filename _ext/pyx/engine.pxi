# Kernels only the packed inference engine uses: LAB's ArgMax written straight into packed bits.


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
