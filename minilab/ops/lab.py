"""LAB — the Learnable Activation Binarizer (Falkena, Jamali-Rad, van Gemert, WACV 2023).

A per-pixel learned "segmentation" of every channel into ±1.  For an input x with C channels::

    r = depthwise_conv3x3(x; weight (2C, 1, 3, 3), bias (2C,)), zero 'same' padding   → 2 maps per channel
    pair the maps:   pairing="channel"  (paper):   r0[c] = r[2c],  r1[c] = r[2c+1]   (the two kernels of channel c)
                     pairing="official" (code):    r0[c] = r[c],   r1[c] = r[C+c]    (Keras reshape quirk: compares
                                                    maps of input channels ⌊c/2⌋ and ⌊(C+c)/2⌋; C must be even)
    d = β·(r1 − r0)                                  β: one learnable scalar per LAB layer, initialised to 1
    forward:          y = +1 if d > 0 else −1        (ArgMax over (z0, z1) = β·(r0, r1); a tie gives −1)
    pseudo-gradient:  the derivative of the Soft-ArgMax surrogate
                      s = 2·softmax(β·(r0, r1))[1] − 1 = tanh(d/2)
                      ∂s/∂r1 = β(1 − s²)/2,  ∂s/∂r0 = −β(1 − s²)/2,  ∂s/∂β = (r1 − r0)(1 − s²)/2
    No clipping and no extra STE: the gradient reaches x, the kernels and the bias only through the depthwise conv.
"""
import numpy as np

from ..core.autograd import Function
from .conv import conv2d

PAIRINGS = ("channel", "official")


def split_pairs(r: np.ndarray, pairing: str):
    """(r0, r1) views of the 2C depthwise maps for the chosen pairing."""
    c = r.shape[1] // 2
    if pairing == "channel":
        return r[:, 0::2], r[:, 1::2]
    return r[:, :c], r[:, c:]


def join_pairs(g0: np.ndarray, g1: np.ndarray, pairing: str) -> np.ndarray:
    """Inverse of split_pairs: the gradient of the 2C maps from the gradients of r0 and r1."""
    n, c = g0.shape[:2]
    if pairing == "channel":
        return np.stack([g0, g1], axis=2).reshape((n, 2 * c) + g0.shape[2:])
    return np.concatenate([g0, g1], axis=1)


class LabArgMax(Function):
    r"""The ArgMax / Soft-ArgMax step of LAB on the depthwise maps r (N, 2C, H, W) and β (a scalar).

    .. math::

       d = r_1 - r_0,
       \qquad y = \begin{cases} +1 & \operatorname{ArgMax}\bigl(\beta r_0, \beta r_1\bigr) = 1, \text{ i.e. } \beta d > 0 \\ -1 & \text{otherwise (a tie included)} \end{cases}

       s = 2\,\operatorname{softmax}\bigl(\beta r_0, \beta r_1\bigr)_1 - 1 = \tanh\!\left(\frac{\beta d}{2}\right)

       \frac{\partial s}{\partial r_1} = \frac{\beta\,(1 - s^2)}{2},
       \qquad \frac{\partial s}{\partial r_0} = -\frac{\beta\,(1 - s^2)}{2},
       \qquad \frac{\partial s}{\partial \beta} = \frac{(r_1 - r_0)(1 - s^2)}{2}
    """

    @staticmethod
    def forward(ctx, r, beta, pairing="channel"):
        r0, r1 = split_pairs(r, pairing)
        diff = r1 - r0
        y = np.where(beta * diff > 0, 1, -1).astype(r.dtype)
        ctx.pairing = pairing
        ctx.save(diff, beta)
        return y

    @staticmethod
    def surrogate(ctx, r, beta, pairing="channel"):
        r0, r1 = split_pairs(r, pairing)
        diff = r1 - r0
        ctx.pairing = pairing
        ctx.save(diff, beta)
        return np.tanh(beta * diff / 2)

    @staticmethod
    def backward(ctx, g):
        diff, beta = ctx.saved
        s = np.tanh(beta * diff / 2)
        gd = g * (1 - s * s) / 2          # ∂L/∂d with d = β·(r1 − r0)
        gdiff = gd * beta                  # ∂L/∂(r1 − r0)
        gr = join_pairs(-gdiff, gdiff, ctx.pairing)
        gbeta = np.asarray((gd * diff).sum(), dtype=beta.dtype).reshape(beta.shape)
        return gr, gbeta


def lab(x, weight, bias, beta, pairing="channel"):
    r"""LAB binarizer: ±1 map of x's shape.  weight (2C, 1, 3, 3), bias (2C,), beta a scalar Tensor.

    .. math::

       r = \operatorname{DWConv}_{3\times 3}(x;\, W, b),
       \qquad y = \begin{cases} +1 & \beta\,(r_1 - r_0) > 0 \\ -1 & \text{otherwise} \end{cases}

       s = \tanh\!\left(\frac{\beta (r_1 - r_0)}{2}\right),
       \qquad \frac{\partial L}{\partial r_1} = -\frac{\partial L}{\partial r_0} = \frac{\partial L}{\partial y} \cdot \frac{\beta (1 - s^2)}{2},
       \qquad \frac{\partial L}{\partial \beta} = \sum \frac{\partial L}{\partial y} \cdot \frac{(r_1 - r_0)(1 - s^2)}{2}

       \frac{\partial L}{\partial x}, \frac{\partial L}{\partial W}, \frac{\partial L}{\partial b} \text{: the depthwise convolution's backward applied to } \frac{\partial L}{\partial r}
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"lab: pairing must be one of {PAIRINGS}, got {pairing!r}")
    c = x.shape[1]
    if weight.shape != (2 * c, 1, 3, 3) or bias.shape != (2 * c,):
        raise ValueError(f"lab: for {c} input channels weight must be ({2 * c}, 1, 3, 3) and bias ({2 * c},); "
                         f"got {weight.shape} and {bias.shape}")
    if pairing == "official" and c % 2:
        raise ValueError(f"lab: pairing='official' (the released code's reshape) needs an even channel count, got {c}")
    r = conv2d(x, weight, bias, stride=1, padding=1, groups=c)
    return LabArgMax.apply(r, beta, pairing=pairing)
