"""Compiled twins of max and average pooling."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext
from ..core.dispatch import twin_of
from ..ops.conv import output_size
from ..ops.pool import AveragePooling, MaxPooling


@twin_of(AveragePooling)
class AvgPoolKernel:
    """float32 NCHW, no padding: the reference's running sum over the taps, in the same order, one pass over
    each plane; the backward spreads each gradient the same way.  Equals the reference bit for bit."""
    exact = True

    @staticmethod
    def accepts(x, kernel, stride, padding):
        return x.dtype == np.float32 and tuple(padding) == (0, 0)

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        ctx.kernel, ctx.stride, ctx.in_hw = kernel, stride, x.shape[2:]
        return ext.avgpool2d_forward(np.ascontiguousarray(x), *kernel, *stride, config.threads)

    @staticmethod
    def backward(ctx, g):
        return ext.avgpool2d_backward(np.ascontiguousarray(g, dtype=np.float32), *ctx.kernel, *ctx.stride,
                                      *ctx.in_hw, config.threads)


@twin_of(MaxPooling)
class MaxPoolKernel:
    """float32 NCHW: the maximum and (only when a gradient is needed) its first arg-max in one pass.  The
    forward equals the reference bit for bit; the backward too, up to the order in which overlapping windows add
    their gradients into one cell."""
    rtol = 1e-6

    @staticmethod
    def accepts(x, kernel, stride, padding):
        return x.dtype == np.float32

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        kh, kw = kernel
        oh = output_size(x.shape[2], kh, stride[0], padding[0])
        ow = output_size(x.shape[3], kw, stride[1], padding[1])
        out, ctx.argmax = ext.maxpool2d_forward(np.ascontiguousarray(x), kh, kw, *stride, *padding, oh, ow,
                                                ctx.needs_input_grad[0], config.threads)
        ctx.kernel, ctx.stride, ctx.padding, ctx.in_hw = kernel, stride, padding, x.shape[2:]
        return out

    @staticmethod
    def backward(ctx, g):
        return ext.maxpool2d_backward(np.ascontiguousarray(g, dtype=np.float32), ctx.argmax, ctx.kernel[1],
                                      *ctx.stride, *ctx.padding, *ctx.in_hw, config.threads)
