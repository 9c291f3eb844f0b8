# Depthwise 3x3 convolution and LAB's ArgMax, the float kernels of the LAB binarizer in training: depthwise.h.


cdef extern from "depthwise.h" nogil:
    void dw3x3_forward_plane(const float *x, int64_t xw, const float *w9, float bias, float *y, int64_t oh,
                             int64_t ow, int64_t sh, int64_t sw)
    void dw3x3_backward_plane(const float *x, float *dx, int64_t xw, const float *w9, const float *g, double *dw9,
                              int64_t oh, int64_t ow, int64_t sh, int64_t sw)


def pad_planes(const float[:, :, :, ::1] x, int ph, int pw, float value=0.0, int threads=1):
    """(N, C, H, W) -> (N, C, H + 2ph, W + 2pw) with `value` around each plane: ops.conv.pad_input's result, in one
    pass over the output with planes split over `threads`."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
    cdef Py_ssize_t hp = h + 2 * ph, wp = wd + 2 * pw
    out = np.empty((n, c, hp, wp), dtype=np.float32)
    if out.size == 0:
        return out
    cdef float[:, :, :, ::1] y = out
    cdef Py_ssize_t item, b, ch, i, j
    cdef float *row
    share_loop(n * c, threads)
    for item in prange(n * c, nogil=True, num_threads=max(threads, 1),
                       schedule="runtime"):
        b = item // c
        ch = item % c
        for i in range(hp):
            row = &y[b, ch, i, 0]
            if i < ph or i >= ph + h:
                for j in range(wp):
                    row[j] = value
            else:
                for j in range(pw):
                    row[j] = value
                    row[pw + wd + j] = value
                memcpy(row + pw, &x[b, ch, i - ph, 0], wd * sizeof(float))
    return out


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
    share_loop(n * cm, threads)
    for plane in prange(n * cm, nogil=True, num_threads=max(threads, 1),
                        schedule="runtime"):
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
