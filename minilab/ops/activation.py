"""Float activations: ReLU, hardtanh, PReLU (one slope per channel, shared over H and W)."""
import numpy as np

from ..core.autograd import Function
from .arith import add, matmul
from .shape import transpose


class Rectifier(Function):
    r"""ReLU: y = max(x, 0);  ∂y/∂x = 1 if x > 0 else 0.

    .. math::

       y = \max(x, 0), \qquad \frac{\partial y}{\partial x} = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save(x > 0)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return g * mask


class Hardtanh(Function):
    r"""y = clip(x, lo, hi);  ∂y/∂x = 1 inside [lo, hi], 0 outside.

    .. math::

       y = \min(\max(x, \ell), h),
       \qquad \frac{\partial y}{\partial x} = \begin{cases} 1 & \ell \le x \le h \\ 0 & \text{otherwise} \end{cases}
    """

    @staticmethod
    def forward(ctx, x, lo=-1.0, hi=1.0):
        ctx.save((x >= lo) & (x <= hi))
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return g * mask


class ParametricRectifier(Function):
    r"""PReLU: y = x if x > 0 else a_c·x  (a_c: one slope per channel c = axis 1).
    ∂y/∂x = 1 or a_c;  ∂L/∂a_c = Σ_{x ≤ 0} g·x.

    .. math::

       y = \begin{cases} x & x > 0 \\ a_c\, x & x \le 0 \end{cases}

       \frac{\partial y}{\partial x} = \begin{cases} 1 & x > 0 \\ a_c & x \le 0 \end{cases},
       \qquad \frac{\partial L}{\partial a_c} = \sum_{n,h,w:\; x_{n,c,h,w} \le 0} g_{n,c,h,w}\, x_{n,c,h,w}
    """

    @staticmethod
    def forward(ctx, x, a):
        if a.shape != (x.shape[1],):
            raise ValueError(f"prelu: slope must have shape ({x.shape[1]},) for input {x.shape}, got {a.shape}")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        ar = a.reshape(shape)
        ctx.save(x, ar)
        return np.where(x > 0, x, ar * x)

    @staticmethod
    def backward(ctx, g):
        x, ar = ctx.saved
        pos = x > 0
        axes = (0,) + tuple(range(2, x.ndim))
        return np.where(pos, g, g * ar), np.where(pos, 0, g * x).sum(axis=axes)


def relu(x):
    return Rectifier.apply(x)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return Hardtanh.apply(x, lo=min_val, hi=max_val)


def prelu(x, weight):
    return ParametricRectifier.apply(x, weight)


def linear(x, weight, bias=None):
    r"""y = x Wᵀ + b, W of shape (out_features, in_features) as in PyTorch.

    .. math::

       y = x W^\top + b,
       \qquad \frac{\partial L}{\partial x} = G W, \quad \frac{\partial L}{\partial W} = G^\top x, \quad \frac{\partial L}{\partial b} = \sum_n G_n
    """
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features, weight {weight.shape} expects {weight.shape[1]}")
    y = matmul(x, transpose(weight))
    return y if bias is None else add(y, bias)
