# Float kernels of the training loop (train_ops.h): im2col / col2im for conv2d, sign + STE mask, the
# magnitude-aware weight quantizer, BatchNorm, PReLU, average / max pooling, Adam.


cdef extern from "train_ops.h" nogil:
    void relu_f32(const float *x, float *y, int64_t n)
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

    void im2col_image_rows(const float *x, int64_t c, int64_t h, int64_t w, int kh, int kw, int sh, int sw,
                           int ph, int pw, float pad, int64_t oh, int64_t ow, float *cols, int64_t ld, int64_t i0,
                           int64_t i1)
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
    preallocated C-contiguous float32 (C*kh*kw, N*OH*OW) matrix.  Bands of output rows of every (image, channel)
    plane are split over OpenMP `threads`."""
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
    # work items of one (image, channel) plane, or of a band of its rows: one image still spreads over the threads
    cdef Py_ssize_t item, ch, i, taps = kh * kw
    if ow < GATHER_BELOW:
        index = _tap_index(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
        share_loop(n * c, threads)
        for item in prange(n * c, nogil=True, num_threads=max(threads, 1),
                           schedule="runtime"):
            b = item // c
            ch = item % c
            im2col_gather_image(&x[b, ch, 0, 0], 1, h * w, kh * kw, &index[0], oh * ow, pad_value,
                                &cols[ch * taps, b * oh * ow], ld)
        return out
    cdef Py_ssize_t band = 8, bands = (oh + band - 1) // band     # bands of 8 output rows
    share_loop(n * c * bands, threads)
    for item in prange(n * c * bands, nogil=True, num_threads=max(threads, 1),
                       schedule="runtime"):
        b = item // (c * bands)
        ch = (item // bands) % c
        i = (item % bands) * band
        im2col_image_rows(&x[b, ch, 0, 0], 1, h, w, kh, kw, sh, sw, ph, pw, pad_value, oh, ow,
                          &cols[ch * taps, b * oh * ow], ld, i, min(i + band, oh))
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
        share_loop(n, threads)
        for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
            col2im_gather_image(&cols[0, b * oh * ow], ld, c, h * w, kh * kw, &index[0], oh * ow, &dx[b, 0, 0, 0])
        return out
    share_loop(n, threads)
    for b in prange(n, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
        col2im_image(&cols[0, b * oh * ow], ld, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, &dx[b, 0, 0, 0])
    return out


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
    share_loop((n + BLOCK - 1) // BLOCK, threads)
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
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
    share_loop((n + BLOCK - 1) // BLOCK, threads)
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
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
    share_loop(rows, threads)
    for r in prange(rows, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
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
    share_loop(rows, threads)
    for r in prange(rows, nogil=True, num_threads=max(threads, 1), schedule="runtime"):
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
    share_loop((c + per - 1) // per, threads)
    for blk in prange((c + per - 1) // per, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
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
    share_loop((c + per - 1) // per, threads)
    for blk in prange((c + per - 1) // per, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
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
    share_loop((c + per - 1) // per, threads)
    for blk in prange((c + per - 1) // per, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
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
    share_loop(n * c, threads)
    for plane in prange(n * c, nogil=True, num_threads=max(threads, 1),
                        schedule="runtime"):
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
    share_loop(n * c, threads)
    for plane in prange(n * c, nogil=True, num_threads=max(threads, 1),
                        schedule="runtime"):
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
    share_loop(n * c, threads)
    for plane in prange(n * c, nogil=True, num_threads=threads, schedule="runtime"):
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
    share_loop(n * c, threads)
    for plane in prange(n * c, nogil=True, num_threads=max(threads, 1),
                        schedule="runtime"):
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
    share_loop((n + BLOCK - 1) // BLOCK, threads)
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
        start = blk * BLOCK
        adam_update_f32(&w[start], &g[start], &m[start], &v[start], min(BLOCK, n - start), b1, one_minus_b1, b2,
                        one_minus_b2, bias1, bias2, lr, eps, clip)


def relu_forward(x, int threads=1):
    """y = max(x, 0) of a float32 array of any shape (NaN stays NaN, as with np.maximum), in blocks split over
    `threads`."""
    src = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(src.shape, dtype=np.float32)
    if out.size == 0:
        return out
    cdef const float[::1] xs = src.reshape(-1)
    cdef float[::1] y = out.reshape(-1)
    cdef Py_ssize_t n = xs.shape[0], BLOCK = 16384, blk, start
    share_loop((n + BLOCK - 1) // BLOCK, threads)
    for blk in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(threads, 1),
                      schedule="runtime"):
        start = blk * BLOCK
        relu_f32(&xs[start], &y[start], min(BLOCK, n - start))
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
