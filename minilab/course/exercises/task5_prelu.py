"""Task 5 — PReLU, the learnable leaky rectifier of LAB-BNN's blocks (He et al., 2015).

One slope a_c per channel c (axis 1), shared over the batch and the pixels:

    forward:   y = x         if x > 0
                   a_c·x     otherwise
    backward:  ∂L/∂x   = ∂L/∂y · (1 if x > 0 else a_c)
               ∂L/∂a_c = Σ_{n,h,w: x ≤ 0} ∂L/∂y · x          (one number per channel: shape (C,))

`PReLU.forward(ctx, x, a)` gets x (N, C, …) and a (C,); `backward` returns (∂L/∂x, ∂L/∂a).
Broadcast a against x by reshaping it to (1, C, 1, …).
"""
import numpy as np

from minilab import Function


class PReLU(Function):
    @staticmethod
    def forward(ctx, x, a):
        # BEGIN SOLUTION task 5: PReLU forward
        slope = a.reshape((1, -1) + (1,) * (x.ndim - 2))
        ctx.save(x, slope)
        return np.where(x > 0, x, slope * x)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        # BEGIN SOLUTION task 5: PReLU backward
        x, slope = ctx.saved
        positive = x > 0
        per_channel = tuple(axis for axis in range(x.ndim) if axis != 1)
        return np.where(positive, grad, grad * slope), np.where(positive, 0, grad * x).sum(axis=per_channel)
        # END SOLUTION


def prelu(x, a):
    return PReLU.apply(x, a)
