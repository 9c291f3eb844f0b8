"""Task 1 — sign and its straight-through estimator (STE).

A binary network computes with ±1.  Its binarizer is the sign function, with the convention

    sign(x) = +1 if x ≥ 0, −1 if x < 0            (so sign(0) = +1: a binary value is never 0)

Its derivative is 0 almost everywhere, which would stop all learning.  The straight-through estimator
(Bengio et al., 2013; Hubara et al., 2016) pretends in the backward pass that sign was the clipped identity
clip(x, −c, c), and passes the gradient through where |x| ≤ c (the *window*, closed at its edges):

    forward:          q(x) = sign(x)
    pseudo-gradient:  ∂q/∂x = 1 if |x| ≤ c else 0           (c = `clip`, 1 by default)
    backward:         ∂L/∂x = ∂L/∂q · 1[|x| ≤ c]

Write `sign`, then `SignSTE.forward` and `SignSTE.backward`.  `forward` receives NumPy arrays and returns one;
save what `backward` needs with `ctx.save(...)` and read it back from `ctx.saved` (a tuple).  Keep x's dtype.
"""
import numpy as np

from minilab import Function


def sign(x: np.ndarray) -> np.ndarray:
    """±1 of x's shape and dtype, with sign(0) = +1."""
    # BEGIN SOLUTION task 1: sign
    return np.where(x >= 0, x.dtype.type(1), x.dtype.type(-1))
    # END SOLUTION


class SignSTE(Function):
    """q(x) = sign(x); backward passes the gradient where |x| ≤ clip and zeroes it elsewhere."""

    @staticmethod
    def forward(ctx, x, clip=1.0):
        # BEGIN SOLUTION task 1: SignSTE forward
        ctx.save(np.abs(x) <= clip)
        return sign(x)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        # BEGIN SOLUTION task 1: SignSTE backward
        (inside,) = ctx.saved
        return grad * inside
        # END SOLUTION


def sign_ste(x, clip=1.0):
    """The op on Tensors: SignSTE.apply records it in the graph so that .backward() reaches x."""
    return SignSTE.apply(x, clip=clip)
