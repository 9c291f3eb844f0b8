"""Pooling over NCHW maps.  Average pooling excludes padded cells from the mean (TensorFlow/Keras "same"
convention); max pooling pads with −inf so padding never wins."""
import numpy as np

from ..autograd import Function
from .arith import mean
from .conv import _pair, output_size, pad_input, unpad, windows


def _tap_slice(u, v, stride, out_hw):
    sh, sw = stride
    oh, ow = out_hw
    return (slice(None), slice(None), slice(u, u + sh * (oh - 1) + 1, sh), slice(v, v + sw * (ow - 1) + 1, sw))


class AvgPool2d(Function):
    """y[n,c,i,j] = (1/|W_ij|) Σ_{(p,q) ∈ W_ij} x[n,c,p,q], W_ij = the window's cells inside the image.
    ∂L/∂x[p,q] = Σ over windows containing (p,q) of g[i,j] / |W_ij|."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        kh, kw = kernel
        xp = pad_input(x, padding)
        if padding == (0, 0):
            count = np.asarray(kh * kw, dtype=x.dtype)
        else:  # cells of each window that lie inside the image
            ones = pad_input(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), padding)
            count = windows(ones, kh, kw, stride).sum(axis=(-1, -2))  # (1, 1, OH, OW)
        if stride == kernel and padding == (0, 0) and x.shape[2] % kh == 0 and x.shape[3] % kw == 0:
            n, c, h, w = x.shape   # non-overlapping windows: a reshape and one sum (much faster than window views)
            out = x.reshape(n, c, h // kh, kh, w // kw, kw).sum(axis=(3, 5)) / count
        else:
            out = windows(xp, kh, kw, stride).sum(axis=(-1, -2)) / count
        ctx.kernel, ctx.stride, ctx.padding, ctx.count, ctx.xp_shape = kernel, stride, padding, count, xp.shape
        return out.astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        kh, kw = ctx.kernel
        gc = g / ctx.count
        dxp = np.zeros(ctx.xp_shape, dtype=g.dtype)
        for u in range(kh):
            for v in range(kw):
                dxp[_tap_slice(u, v, ctx.stride, g.shape[2:])] += gc
        return np.ascontiguousarray(unpad(dxp, ctx.padding))


class MaxPool2d(Function):
    """y[n,c,i,j] = max over the window;  the gradient goes to the (first) arg-max cell of each window."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        kh, kw = kernel
        xp = pad_input(x, padding, value=-np.inf)
        win = windows(xp, kh, kw, stride)
        flat = win.reshape(win.shape[:4] + (kh * kw,))
        ctx.argmax = flat.argmax(axis=-1)
        ctx.kernel, ctx.stride, ctx.padding, ctx.xp_shape = kernel, stride, padding, xp.shape
        return np.take_along_axis(flat, ctx.argmax[..., None], axis=-1)[..., 0].astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        kh, kw = ctx.kernel
        dxp = np.zeros(ctx.xp_shape, dtype=g.dtype)
        for u in range(kh):
            for v in range(kw):
                dxp[_tap_slice(u, v, ctx.stride, g.shape[2:])] += g * (ctx.argmax == u * kw + v)
        return np.ascontiguousarray(unpad(dxp, ctx.padding))


def _pool_options(x, kernel_size, stride, padding, name):
    """Normalised (kernel, stride, padding) pairs — stride defaults to the kernel — after checking they fit x."""
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    padding = _pair(padding)
    _check(x, kernel, stride, padding, name)
    return {"kernel": kernel, "stride": stride, "padding": padding}


def _check(x, kernel, stride, padding, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding):
        if p > k // 2:
            raise ValueError(f"{name}: padding {p} is more than half the kernel {k}")
        if output_size(size, k, s, p) < 1:
            raise ValueError(f"{name}: a {kernel} window does not fit the {x.shape[2:]} input")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    return AvgPool2d.apply(x, **_pool_options(x, kernel_size, stride, padding, "avg_pool2d"))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    return MaxPool2d.apply(x, **_pool_options(x, kernel_size, stride, padding, "max_pool2d"))


def adaptive_avg_pool2d(x, output_size=1):
    """Global average pooling (the only adaptive size the models need): (N, C, H, W) → (N, C, 1, 1)."""
    if output_size not in (1, (1, 1)):
        raise NotImplementedError("adaptive_avg_pool2d supports output_size=1 (global average pooling)")
    return mean(x, axis=(2, 3), keepdims=True)
