"""The convolution on the compiled kernels: `ops/conv.py`'s im2col + GEMM, one chunk of images at a time.

A whole batch's im2col matrix is large (Bi-Real-18's first stage at 64 px, batch 64: 38 MB) and every pass over
it goes to main memory.  Cut into chunks of a few MB, each chunk's columns are written, multiplied and (in the
backward) scattered back while they are still in cache, and nothing batch-sized is kept between forward and
backward: the backward rebuilds each chunk's columns from the input instead.

The kernels use the transposed ("Caffe") layout, colsᵀ of shape (C·kh·kw, images·OH·OW), in which im2col and
col2im run along image rows and a gradient chunk needs no pixel-major transpose:

    forward:   for each chunk   Y[chunk]  = W · colsᵀ                           (O, images·OH·OW)
    backward:  for each chunk   ∂W       += Gᵀ[chunk] · cols,   ∂x[chunk] = col2im(Wᵀ · Gᵀ[chunk])

with W the (O, C·kh·kw) weight matrix and Gᵀ[chunk] the chunk's gradient as (O, images·OH·OW).  Padding is
implicit in the kernels (`pad_value` fills the border), so no padded copy of x is made either.  Only for float32,
groups = 1 (`fast.conv.ChunkedConvKernel`)."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext

CHUNK_BYTES = 4 << 20  # im2col columns per chunk: well inside a desktop or server L3, big enough for good GEMMs


def image_chunks(n, bytes_per_image, budget=None):
    """Consecutive (start, stop) ranges of images, each with at most `budget` (CHUNK_BYTES) bytes of columns
    (at least one image)."""
    budget = CHUNK_BYTES if budget is None else budget
    step = max(1, min(n, budget // max(bytes_per_image, 1)))
    return [(start, min(n, start + step)) for start in range(0, n, step)]


def matmul(a, b, out=None, accumulate=False):
    """out = a @ b (or out += a @ b), float32, for matrices or stacks of them: on the kernels' threads when they
    have a GEMM (their own AVX-512 one or the BLAS': `ext.has_sgemm()`, see `minilab.core.config.load`), else
    NumPy's matmul on BLAS' own threads.  A matrix is cut into `config.gemm_split()` blocks whatever the thread
    count, and a stack's threads take whole products, so the bits do not depend on how many threads run them."""
    if ext.has_sgemm():
        beta = 1.0 if accumulate else 0.0
        if a.ndim == 3:
            return ext.sgemm_batch(a, b, out=out, beta=beta, threads=config.threads)
        return ext.sgemm(a, b, out=out, beta=beta, threads=config.threads, parts=config.gemm_split())
    if accumulate:
        out += a @ b
        return out
    return np.matmul(a, b, out=out)


class _Chunks:
    """The chunking of one conv: image ranges and one reusable (taps, pixels) buffer per matrix."""

    def __init__(self, x, w, out_hw):
        self.kh, self.kw = w.shape[2:]
        self.pixels = out_hw[0] * out_hw[1]
        self.taps = w.shape[1] * self.kh * self.kw
        self.ranges = image_chunks(x.shape[0], self.pixels * self.taps * 4)
        self.largest = max(stop - start for start, stop in self.ranges)

    def buffer(self):
        return np.empty(self.taps * self.largest * self.pixels, dtype=np.float32)

    def matrix(self, buffer, images):
        """The first taps × images·pixels entries of `buffer` as a C-contiguous matrix."""
        return buffer[:self.taps * images * self.pixels].reshape(self.taps, images * self.pixels)


def conv_forward(x, w, stride, padding, pad_value, out_hw):
    """y (N, O, OH, OW) = conv(x padded with pad_value, w), chunk by chunk."""
    chunks = _Chunks(x, w, out_hw)
    n, o = x.shape[0], w.shape[0]
    wmat = w.reshape(o, chunks.taps)
    out = np.empty((n, o) + tuple(out_hw), dtype=np.float32)
    pointwise = (chunks.kh, chunks.kw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
    buffer = None
    for start, stop in chunks.ranges:
        images = stop - start
        if images == 1 and pointwise:    # a 1×1 conv's columns of one image are the image itself: no copy
            cols_t = x[start].reshape(chunks.taps, chunks.pixels)
        else:
            buffer = chunks.buffer() if buffer is None else buffer
            cols_t = ext.im2col(x[start:stop], chunks.kh, chunks.kw, *stride, *padding, pad_value,
                                out=chunks.matrix(buffer, images), threads=config.threads)
        if images == 1:     # one image's (O, OH·OW) product is its NCHW output: written in place, no copy
            matmul(wmat, cols_t, out=out[start].reshape(o, chunks.pixels))
            continue
        y = matmul(wmat, cols_t)                                             # (O, images·OH·OW)
        out[start:stop] = y.reshape(o, images, *out_hw).transpose(1, 0, 2, 3)
    return out


def conv_backward(x, w, g, stride, padding, pad_value, need_input_grad):
    """(∂L/∂x or None, ∂L/∂w) for y = conv(x padded with pad_value, w) and ∂L/∂y = g, chunk by chunk."""
    chunks = _Chunks(x, w, g.shape[2:])
    o = w.shape[0]
    wmat = w.reshape(o, chunks.taps)
    dw = np.empty((o, chunks.taps), dtype=np.float32)
    dx = np.zeros(x.shape, dtype=np.float32) if need_input_grad else None
    cols_buffer = chunks.buffer()
    dcols_buffer = chunks.buffer() if need_input_grad else None
    for start, stop in chunks.ranges:
        images = stop - start
        cols_t = ext.im2col(x[start:stop], chunks.kh, chunks.kw, *stride, *padding, pad_value,
                            out=chunks.matrix(cols_buffer, images), threads=config.threads)
        g_t = g[start:stop].transpose(1, 0, 2, 3).reshape(o, images * chunks.pixels)   # (O, images·OH·OW)
        matmul(g_t, cols_t.T, out=dw, accumulate=start > 0)
        if need_input_grad:
            dcols_t = matmul(wmat.T, g_t, out=chunks.matrix(dcols_buffer, images))
            ext.col2im(dcols_t, dx[start:stop], chunks.kh, chunks.kw, *stride, *padding, threads=config.threads)
    return dx, dw.reshape(w.shape)
