"""Task 2 — ApproxSign, Bi-Real Net's piecewise-polynomial surrogate (Liu et al., 2018).

The STE of task 1 treats every x in the window alike.  ApproxSign replaces sign, in the backward pass only, by a
piecewise quadratic that hugs it more closely:

    F(x) = −1             if x < −1
           2x + x²        if −1 ≤ x < 0
           2x − x²        if 0 ≤ x < 1              (that is, 2x − x·|x| on [−1, 1])
           +1             otherwise

    forward:          q(x) = sign(x)                           (the sign of task 1, sign(0) = +1)
    pseudo-gradient:  ∂q/∂x = F′(x) = 2 − 2|x| if |x| ≤ 1 else 0
    backward:         ∂L/∂x = ∂L/∂q · F′(x)

F′ is a triangle: 2 at x = 0, falling to 0 at |x| = 1, and 0 outside.  Reuse `sign` from task 1.
"""
import numpy as np

from minilab import Function

from .task1_sign import sign


class ApproxSign(Function):
    """q(x) = sign(x); backward multiplies the gradient by max(0, 2 − 2|x|)."""

    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION task 2: ApproxSign forward
        ctx.save(x)
        return sign(x)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        # BEGIN SOLUTION task 2: ApproxSign backward
        (x,) = ctx.saved
        ax = np.abs(x)
        return grad * np.where(ax <= 1, 2 - 2 * ax, 0).astype(grad.dtype)
        # END SOLUTION


def approx_sign(x):
    return ApproxSign.apply(x)
