"""Compiled twins of the convolutions: three of `ops.conv.Convolution`, tried in this order, and one of
`ops.conv.DepthwiseConvolution`.

    PackedBinaryConvKernel   binary convs whose operands are ±1 and ±α_o: the XNOR-popcount forward
    ChunkedConvKernel        float32 convs with groups = 1: im2col + GEMM a cache-sized chunk of images at a time
                             (`conv_chunked.py`), and Winograd F(2×2, 3×3) for the 3×3 stride-1 backward
                             (`conv_winograd.py`) unless it is switched off (MINILAB_WINOGRAD)

    DepthwiseConvKernel      float32 depthwise 3×3 convs (LAB's and the models' depthwise layers)

The first two save the unpadded input and recompute the columns in their backward, which they share."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext
from ..core.dispatch import twin_of
from ..ops.conv import Convolution, DepthwiseConvolution, check_conv_shapes, check_fits, unpad
from . import conv_chunked, conv_winograd
from .packed import binary_conv2d_packed


def is_binary_pair(x, w):
    """The kernels' one-pass `ops.packed.is_binary_pair`: x is ±1 and every output channel of w is ±α_o."""
    return ext.is_binary_pair(np.ascontiguousarray(x).reshape(-1),
                              np.ascontiguousarray(w).reshape(w.shape[0], -1))


def dense_float32(x, w, b, groups):
    """A float32 NCHW conv with groups = 1 (the shapes themselves are checked by the forward)."""
    return (groups == 1 and x.ndim == 4 and w.ndim == 4 and x.dtype == np.float32 == w.dtype
            and (b is None or b.dtype == np.float32) and x.shape[0] > 0)   # an empty batch: the reference


def chunked_backward(ctx, g):
    """(∂L/∂x, ∂L/∂w[, ∂L/∂b]) from the saved unpadded input and weights."""
    x, w = ctx.saved
    g = np.ascontiguousarray(g, dtype=np.float32)
    db = g.sum(axis=(0, 2, 3)) if ctx.has_bias else None
    need_dx = ctx.needs_input_grad[0]
    if config.winograd and conv_winograd.applicable(x, w, ctx.stride, ctx.padding):
        dx, dw = conv_winograd.conv3x3_backward(x, w, g, ctx.padding, ctx.pad_value, need_dx)
    else:
        dx, dw = conv_chunked.conv_backward(x, w, g, ctx.stride, ctx.padding, ctx.pad_value, need_dx)
    return (dx, dw, db) if ctx.has_bias else (dx, dw)


def output_size_of(shape, w, groups, stride, padding):
    """(OH, OW) of a conv of inputs of `shape`, after the forward's checks (a frozen layer's `bind_eval`)."""
    view = np.broadcast_to(np.float32(0), shape)
    check_conv_shapes(view, w, groups)
    return check_fits(view, w, stride, padding)


def depthwise_padded(x, w, bias, stride, padding, pad_value, out_hw):
    """(the padded input, the depthwise 3×3 conv's output): the padded copy made on the kernels' threads
    (pad_input's result: a batch-1 stem spends longer in a NumPy copy), then the conv with its bias fused."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    xp = ext.pad_planes(x, padding[0], padding[1], pad_value, config.threads) if padding[0] or padding[1] else x
    return xp, ext.depthwise3x3_forward(xp, w, stride[0], stride[1], *out_hw, config.threads, bias=bias)


def save_for_chunked_backward(ctx, x, w, b, stride, padding, pad_value):
    check_conv_shapes(x, w, 1)
    out_hw = check_fits(x, w, stride, padding)
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    ctx.stride, ctx.padding, ctx.pad_value, ctx.has_bias = stride, padding, pad_value, b is not None
    ctx.save(x, w)
    return x, w, out_hw


@twin_of(Convolution)
class PackedBinaryConvKernel:
    """binary=True, float32, groups = 1, no bias, and the operands really are ±1 and ±α_o (checked in one pass):
    the forward is the XNOR-popcount conv, exact in integers and scaled once by α (the float reference sums ±α
    products, so the two agree to float32 rounding).  The backward is ChunkedConvKernel's."""
    rtol = 1e-4

    @staticmethod
    def accepts(x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        return (binary and config.packed_conv and b is None and dense_float32(x, w, b, groups)
                and x.shape[1] == w.shape[1] and is_binary_pair(x, w))

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        x, w, _ = save_for_chunked_backward(ctx, x, w, b, stride, padding, pad_value)
        return binary_conv2d_packed(x, w, stride, padding, pad_value, threads=config.threads)

    backward = staticmethod(chunked_backward)


@twin_of(Convolution)
class ChunkedConvKernel:
    """float32, groups = 1: the reference's im2col + GEMM one cache-sized chunk of images at a time, in the
    kernels' transposed layout; sums in another order than NumPy's, so float32-close."""
    rtol = 1e-4

    @staticmethod
    def accepts(x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        return dense_float32(x, w, b, groups)

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        x, w, out_hw = save_for_chunked_backward(ctx, x, w, b, stride, padding, pad_value)
        out = conv_chunked.conv_forward(x, w, stride, padding, pad_value, out_hw)
        return out if b is None else out + b.reshape(1, -1, 1, 1)

    @staticmethod
    def bind_eval(shape, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        """`forward` for inputs of `shape` in a frozen layer (the packed engine): the same values bit for bit,
        with the shapes checked and the output size found once, and nothing kept for a backward."""
        out_hw = output_size_of(shape, w, 1, stride, padding)
        w = np.ascontiguousarray(w)
        bias = None if b is None else b.reshape(1, -1, 1, 1)

        def forward(x):
            out = conv_chunked.conv_forward(np.ascontiguousarray(x), w, stride, padding, pad_value, out_hw)
            return out if bias is None else out + bias
        return forward

    backward = staticmethod(chunked_backward)


@twin_of(DepthwiseConvolution)
class DepthwiseConvKernel:
    """float32 depthwise 3×3 (groups = C_in, one or more kernels per channel), bias fused into the forward;
    sums of the nine taps in the reference's order, the backward's sums over pixels in another: float32-close."""
    rtol = 1e-4

    @staticmethod
    def accepts(x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0):
        return (x.ndim == 4 and w.ndim == 4 and w.shape[2:] == (3, 3) and x.dtype == np.float32 == w.dtype
                and (b is None or b.dtype == np.float32) and x.shape[0] > 0)   # an empty batch: the reference

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0):
        check_conv_shapes(x, w, groups)
        out_hw = check_fits(x, w, stride, padding)
        w = np.ascontiguousarray(w)
        xp, y = depthwise_padded(x, w, None if b is None else np.ascontiguousarray(b), stride, padding, pad_value,
                                 out_hw)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, b is not None
        ctx.save(xp, w)
        return y

    @staticmethod
    def bind_eval(shape, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0):
        """`forward` for inputs of `shape` in a frozen layer (the packed engine): the same values bit for bit,
        with the shapes checked and the output size found once, and nothing kept for a backward."""
        out_hw = output_size_of(shape, w, groups, stride, padding)
        w = np.ascontiguousarray(w)
        bias = None if b is None else np.ascontiguousarray(b)
        return lambda x: depthwise_padded(x, w, bias, stride, padding, pad_value, out_hw)[1]

    @staticmethod
    def backward(ctx, g):
        xp, w = ctx.saved
        db = g.sum(axis=(0, 2, 3)) if ctx.has_bias else None
        dxp, dw = ext.depthwise3x3_backward(xp, w, np.ascontiguousarray(g, dtype=np.float32), *ctx.stride)
        dx = np.ascontiguousarray(unpad(dxp, ctx.padding))
        return (dx, dw, db) if ctx.has_bias else (dx, dw)
