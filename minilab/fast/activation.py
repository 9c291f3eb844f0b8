"""Compiled twins of ReLU's and PReLU's forwards."""
import numpy as np

from ..core.dispatch import twin_of
from ..core import config
from ..core.config import compiled as ext
from ..ops.activation import ParametricRectifier, Rectifier


@twin_of(ParametricRectifier)
class PReLUKernel:
    """float32 NCHW maps with one float32 slope per channel: the forward in one pass.  The backward is the
    reference's (same saved arrays).  Equals the reference bit for bit."""
    exact = True

    @staticmethod
    def accepts(x, a):
        return x.ndim == 4 and x.dtype == np.float32 == a.dtype and a.shape == (x.shape[1],)

    @staticmethod
    def forward(ctx, x, a):
        ctx.save(x, a.reshape(1, -1, 1, 1))
        return ext.prelu_forward(np.ascontiguousarray(x), np.ascontiguousarray(a))

    backward = ParametricRectifier.backward


@twin_of(Rectifier)
class ReLUKernel:
    """float32 of any shape: max(x, 0) in one pass split over the configured threads, saving x instead of the
    reference's mask (the backward rebuilds the mask from it).  Equals the reference bit for bit."""
    exact = True

    @staticmethod
    def accepts(x):
        return x.dtype == np.float32

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return ext.relu_forward(x, config.threads)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * (x > 0)
