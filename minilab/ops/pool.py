"""Pooling over NCHW maps.  Average pooling excludes padded cells from the mean (TensorFlow/Keras "same"
convention); max pooling pads with −inf so padding never wins."""
import numpy as np

from ..core.autograd import Function
from .arith import mean
from .conv import output_size, pad_input, pair, unpad


def _tap_slice(u, v, stride, out_hw):
    sh, sw = stride
    oh, ow = out_hw
    return (slice(None), slice(None), slice(u, u + sh * (oh - 1) + 1, sh), slice(v, v + sw * (ow - 1) + 1, sw))


def _tap_views(xp, kernel, stride, out_hw):
    """The kh·kw strided views xp[:, :, u::s, v::s] (each (N, C, OH, OW)) that make up every window."""
    kh, kw = kernel
    return [xp[_tap_slice(u, v, stride, out_hw)] for u in range(kh) for v in range(kw)]


class AveragePooling(Function):
    r"""y[n,c,i,j] = (1/|W_ij|) Σ_{(p,q) ∈ W_ij} x[n,c,p,q], W_ij = the window's cells inside the image.
    ∂L/∂x[p,q] = Σ over windows containing (p,q) of g[i,j] / |W_ij|.
    Computed as a sum of kh·kw strided views (one pass each, no window copies).

    .. math::

       y_{n,c,i,j} = \frac{1}{|W_{ij}|} \sum_{(p,q) \in W_{ij}} x_{n,c,p,q},
       \qquad \frac{\partial L}{\partial x_{n,c,p,q}} = \sum_{(i,j):\, (p,q) \in W_{ij}} \frac{g_{n,c,i,j}}{|W_{ij}|}
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        kh, kw = kernel
        xp = pad_input(x, padding)
        out_hw = ((xp.shape[2] - kh) // stride[0] + 1, (xp.shape[3] - kw) // stride[1] + 1)
        if padding == (0, 0):
            count = np.asarray(kh * kw, dtype=x.dtype)
        else:  # cells of each window that lie inside the image
            ones = pad_input(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), padding)
            count = sum(_tap_views(ones, kernel, stride, out_hw))
        taps = _tap_views(xp, kernel, stride, out_hw)
        out = taps[0].copy()
        for tap in taps[1:]:
            out += tap
        out /= count
        ctx.kernel, ctx.stride, ctx.padding, ctx.count, ctx.xp_shape = kernel, stride, padding, count, xp.shape
        return out

    @staticmethod
    def backward(ctx, g):
        kh, kw = ctx.kernel
        gc = g / ctx.count
        dxp = np.zeros(ctx.xp_shape, dtype=g.dtype)
        for u in range(kh):
            for v in range(kw):
                dxp[_tap_slice(u, v, ctx.stride, g.shape[2:])] += gc
        return np.ascontiguousarray(unpad(dxp, ctx.padding))


class MaxPooling(Function):
    r"""y[n,c,i,j] = max over the window;  the gradient goes to the (first) arg-max cell of each window.
    A running maximum over the kh·kw strided views; the arg-max is only tracked when a gradient is needed.

    .. math::

       y_{n,c,i,j} = \max_{(p,q) \in W_{ij}} x_{n,c,p,q},
       \qquad \frac{\partial L}{\partial x_{n,c,p,q}} = \sum_{(i,j):\, (p,q) = \arg\max_{W_{ij}} x} g_{n,c,i,j}
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        kh, kw = kernel
        ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
        xp = pad_input(x, padding, value=-np.inf)
        out_hw = ((xp.shape[2] - kh) // stride[0] + 1, (xp.shape[3] - kw) // stride[1] + 1)
        taps = _tap_views(xp, kernel, stride, out_hw)
        out = taps[0].copy()
        argmax = np.zeros(out.shape, np.int16) if ctx.needs_input_grad[0] else None
        for t, tap in enumerate(taps[1:], start=1):
            if argmax is not None:
                argmax[tap > out] = t          # strictly greater: the first maximum keeps the gradient
            np.maximum(out, tap, out=out)
        ctx.argmax, ctx.xp_shape = argmax, xp.shape
        return out.astype(x.dtype, copy=False)

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
    kernel = pair(kernel_size)
    stride = kernel if stride is None else pair(stride)
    padding = pair(padding)
    _check(x, kernel, stride, padding, name)
    return {"kernel": kernel, "stride": stride, "padding": padding}


def _check(x, kernel, stride, padding, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    for option, values, low in (("kernel_size", kernel, 1), ("stride", stride, 1), ("padding", padding, 0)):
        if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and v >= low for v in values):
            raise ValueError(f"{name}: {option} must be {'positive' if low else 'non-negative'} integers (one or "
                             f"a pair), got {values}")
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding):
        if p > k // 2:
            raise ValueError(f"{name}: padding {p} is more than half the kernel {k}")
        if output_size(size, k, s, p) < 1:
            raise ValueError(f"{name}: a {kernel} window does not fit the {x.shape[2:]} input")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    return AveragePooling.apply(x, **_pool_options(x, kernel_size, stride, padding, "avg_pool2d"))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    return MaxPooling.apply(x, **_pool_options(x, kernel_size, stride, padding, "max_pool2d"))


def adaptive_avg_pool2d(x, output_size=1):
    """Global average pooling (the only adaptive size the models need): (N, C, H, W) → (N, C, 1, 1)."""
    if output_size not in (1, (1, 1)):
        raise NotImplementedError("adaptive_avg_pool2d supports output_size=1 (global average pooling)")
    return mean(x, axis=(2, 3), keepdims=True)
