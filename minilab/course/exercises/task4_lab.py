"""Task 4 — LAB, the Learnable Activation Binarizer (Falkena, Jamali-Rad, van Gemert, WACV 2023).

LAB replaces sign by a per-pixel, learned two-class "segmentation" of every channel.  For x with C channels, a
depthwise 3×3 convolution with two kernels per channel gives 2C maps r (given: `lab` below); channel c's pair is

    r0[c] = r[:, 2c],   r1[c] = r[:, 2c + 1]          (r[:, 0::2] and r[:, 1::2])

and with β one learnable scalar (initialised to 1):

    forward (ArgMax):        y = +1 if β·(r1 − r0) > 0 else −1      (a tie, r1 = r0, gives −1: ArgMax of
                                                                      (β·r0, β·r1) returns the first index)
    backward (Soft-ArgMax):  the derivative of  s = 2·softmax(β·r0, β·r1)₁ − 1 = tanh(β·(r1 − r0)/2)
                             ∂s/∂r1 = β(1 − s²)/2
                             ∂s/∂r0 = −β(1 − s²)/2
                             ∂s/∂β  = (r1 − r0)(1 − s²)/2             (summed over every pixel: β is a scalar)

`LabArgMax.forward(ctx, r, beta)` gets r (N, 2C, H, W) and beta (a 0-d array); `backward(ctx, grad)` gets
∂L/∂y (N, C, H, W) and returns (∂L/∂r of r's shape, ∂L/∂β of β's shape).  The gradient reaches x, the kernels
and the bias through the depthwise convolution, which minilab differentiates for you.
"""
import numpy as np

from minilab import F
from minilab import Function


class LabArgMax(Function):
    """ArgMax forward, Soft-ArgMax backward, on the 2C depthwise maps r and the scalar β."""

    @staticmethod
    def forward(ctx, r, beta):
        # BEGIN SOLUTION task 4: LAB forward
        diff = r[:, 1::2] - r[:, 0::2]
        ctx.save(diff, beta)
        return np.where(beta * diff > 0, 1, -1).astype(r.dtype)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        # BEGIN SOLUTION task 4: LAB backward
        diff, beta = ctx.saved
        s = np.tanh(beta * diff / 2)
        common = grad * (1 - s * s) / 2
        n, c, h, w = grad.shape
        grad_r = np.empty((n, 2 * c, h, w), dtype=grad.dtype)
        grad_r[:, 0::2] = -beta * common
        grad_r[:, 1::2] = beta * common
        grad_beta = np.asarray((common * diff).sum(), dtype=beta.dtype).reshape(beta.shape)
        return grad_r, grad_beta
        # END SOLUTION


def lab(x, weight, bias, beta):
    """LAB on a Tensor x (N, C, H, W): weight (2C, 1, 3, 3), bias (2C,), beta a 0-d Tensor → ±1 (N, C, H, W)."""
    r = F.conv2d(x, weight, bias, stride=1, padding=1, groups=x.shape[1])
    return LabArgMax.apply(r, beta)
