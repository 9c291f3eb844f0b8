"""Elementwise arithmetic, matmul and reductions, each with its hand-written backward.

Broadcasting: NumPy broadcasts the forward; the backward of a broadcast input sums the gradient over the axes
that were expanded (`unbroadcast`)."""
import numpy as np

from ..core.autograd import Function


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class Add(Function):
    r"""y = a + b;  ∂y/∂a = 1, ∂y/∂b = 1.

    .. math::

       y = a + b, \qquad \frac{\partial y}{\partial a} = 1, \quad \frac{\partial y}{\partial b} = 1
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    r"""y = a − b;  ∂y/∂a = 1, ∂y/∂b = −1.

    .. math::

       y = a - b, \qquad \frac{\partial y}{\partial a} = 1, \quad \frac{\partial y}{\partial b} = -1
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(-g, sb)


class Mul(Function):
    r"""y = a·b;  ∂y/∂a = b, ∂y/∂b = a.

    .. math::

       y = a\, b, \qquad \frac{\partial y}{\partial a} = b, \quad \frac{\partial y}{\partial b} = a
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)


class Div(Function):
    r"""y = a / b;  ∂y/∂a = 1/b, ∂y/∂b = −a/b².

    .. math::

       y = \frac{a}{b},
       \qquad \frac{\partial y}{\partial a} = \frac{1}{b}, \quad \frac{\partial y}{\partial b} = -\frac{a}{b^2}
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return unbroadcast(g / b, a.shape), unbroadcast(-g * a / (b * b), b.shape)


class Neg(Function):
    r"""y = −x;  ∂y/∂x = −1.

    .. math::

       y = -x, \qquad \frac{\partial y}{\partial x} = -1
    """

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    r"""y = xᵖ for a constant exponent p;  ∂y/∂x = p·xᵖ⁻¹.

    .. math::

       y = x^p, \qquad \frac{\partial y}{\partial x} = p\, x^{p-1}
    """

    @staticmethod
    def forward(ctx, x, exponent):
        ctx.save(x)
        ctx.exponent = exponent
        return x ** exponent

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        p = ctx.exponent
        return g * p * x ** (p - 1)


class MatMul(Function):
    r"""Y = A @ B for 2-D (or batched) A, B;  ∂L/∂A = G @ Bᵀ, ∂L/∂B = Aᵀ @ G.

    .. math::

       Y = A B, \qquad \frac{\partial L}{\partial A} = G B^\top, \quad \frac{\partial L}{\partial B} = A^\top G
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not line up "
                             f"(need (..., n, k) @ (..., k, m))")
        ctx.save(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = g @ np.swapaxes(b, -1, -2)
        gb = np.swapaxes(a, -1, -2) @ g
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


class Sum(Function):
    r"""y = Σ x over `axis`;  ∂y/∂x = 1 broadcast back to x's shape.

    .. math::

       y = \sum_{i \in \text{axis}} x_i, \qquad \frac{\partial y}{\partial x_i} = 1
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        if ctx.axis is not None and not ctx.keepdims:
            g = np.expand_dims(g, ctx.axis)
        return np.broadcast_to(g, ctx.shape).copy()


class Mean(Function):
    r"""y = (1/n) Σ x over `axis`;  ∂y/∂x = 1/n broadcast back.

    .. math::

       y = \frac{1}{n} \sum_{i \in \text{axis}} x_i, \qquad \frac{\partial y}{\partial x_i} = \frac{1}{n}
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        out = np.asarray(x.mean(axis=axis, keepdims=keepdims))
        ctx.count = x.size // max(out.size, 1)
        return out

    @staticmethod
    def backward(ctx, g):
        if ctx.axis is not None and not ctx.keepdims:
            g = np.expand_dims(g, ctx.axis)
        return (np.broadcast_to(g, ctx.shape) / ctx.count).astype(g.dtype)


def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def neg(x):
    return Neg.apply(x)


def pow(x, exponent):
    if not np.isscalar(exponent):
        raise TypeError("pow: the exponent must be a Python number")
    return Pow.apply(x, exponent=exponent)


def matmul(a, b):
    return MatMul.apply(a, b)


def _norm_axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axis=_norm_axis(axis), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=_norm_axis(axis), keepdims=keepdims)


class Abs(Function):
    r"""y = |x|;  ∂y/∂x = sign(x) (0 at x = 0).

    .. math::

       y = |x|, \qquad \frac{\partial y}{\partial x} = \operatorname{sign}(x) \quad (0 \text{ at } x = 0)
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * np.sign(x)


def abs(x):
    return Abs.apply(x)


class Max(Function):
    r"""y = max of all entries;  the gradient goes to the (first) arg-max entry.

    .. math::

       y = \max_i x_i,
       \qquad \frac{\partial y}{\partial x_i} = \begin{cases} 1 & i = \text{the first } \arg\max \\ 0 & \text{otherwise} \end{cases}
    """

    @staticmethod
    def forward(ctx, x):
        ctx.shape, ctx.index = x.shape, int(np.argmax(x))
        return np.asarray(x.max())

    @staticmethod
    def backward(ctx, g):
        out = np.zeros(ctx.shape, dtype=g.dtype)
        out.flat[ctx.index] = g
        return out


def amax(x):
    return Max.apply(x)


class Sqrt(Function):
    r"""y = √x;  ∂y/∂x = 1/(2√x).

    .. math::

       y = \sqrt{x}, \qquad \frac{\partial y}{\partial x} = \frac{1}{2\sqrt{x}}
    """

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g / (2 * y)


def sqrt(x):
    return Sqrt.apply(x)
