"""Ops that move numbers around without changing them: reshape, transpose, flatten, indexing, padding, concat.
Their backward moves the gradient back the same way."""
import numpy as np

from ..core.autograd import Function


class Reshape(Function):
    r"""y = x viewed with a new shape;  ∂L/∂x = ∂L/∂y reshaped back.

    .. math::

       y = \operatorname{reshape}(x),
       \qquad \frac{\partial L}{\partial x} = \operatorname{reshape}^{-1}\!\left(\frac{\partial L}{\partial y}\right)
    """

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot view {x.shape} ({x.size} values) as {shape}") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


# Reshape and Transpose read alike because every op has the same small shape: a forward that remembers what
# undoes it, and a backward that undoes it.
class Transpose(Function):
    r"""y = x with axes permuted;  ∂L/∂x = ∂L/∂y with the inverse permutation.

    .. math::

       y = x^{\pi}, \qquad \frac{\partial L}{\partial x} = \left(\frac{\partial L}{\partial y}\right)^{\pi^{-1}}
    """

    @staticmethod
    def forward(ctx, x, axes):
        axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
        ctx.inverse = tuple(np.argsort(axes))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse)


class GetItem(Function):
    r"""y = x[index];  ∂L/∂x is zero except at the selected places (accumulated with np.add.at).

    .. math::

       y = x[\text{index}],
       \qquad \frac{\partial L}{\partial x}[\text{index}] \;{+}{=}\; \frac{\partial L}{\partial y}, \quad 0 \text{ elsewhere}
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        return np.array(x[index])

    @staticmethod
    def backward(ctx, g):
        out = np.zeros(ctx.shape, dtype=g.dtype)
        np.add.at(out, ctx.index, g)
        return out


class Pad2d(Function):
    r"""Constant padding of the last two axes: y = x surrounded by `padding` rows/columns of `value`.
    ∂L/∂x = the centre crop of ∂L/∂y (the padded cells are constants).

    .. math::

       y = \operatorname{pad}(x, p, v),
       \qquad \frac{\partial L}{\partial x} = \operatorname{crop}_p\!\left(\frac{\partial L}{\partial y}\right)
    """

    @staticmethod
    def forward(ctx, x, padding, value=0.0):
        ph, pw = padding
        ctx.padding = (ph, pw)
        widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
        return np.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        ph, pw = ctx.padding
        return g[..., ph:g.shape[-2] - ph, pw:g.shape[-1] - pw].copy()


class Concat(Function):
    r"""y = concatenation of the inputs along `axis`;  each input gets its slice of ∂L/∂y.

    .. math::

       y = [x_1, x_2, \ldots]_{\text{axis}},
       \qquad \frac{\partial L}{\partial x_k} = \left(\frac{\partial L}{\partial y}\right)_{\text{slice } k}
    """

    @staticmethod
    def forward(ctx, *arrays, axis=1):
        ctx.axis = axis
        ctx.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.split(g, ctx.splits, axis=ctx.axis))


def reshape(x, shape):
    return Reshape.apply(x, shape=tuple(shape))


def transpose(x, axes=None):
    return Transpose.apply(x, axes=axes)


def flatten(x, start_dim=1):
    """Collapse every axis from `start_dim` on into one.  The size is spelt out rather than left to reshape's -1,
    which cannot be inferred when the leading axes hold no element (an empty batch)."""
    shape = x.shape[:start_dim] + (int(np.prod(x.shape[start_dim:])),)
    return reshape(x, shape)


def getitem(x, index):
    return GetItem.apply(x, index=index)


def pad2d(x, padding, value=0.0):
    if isinstance(padding, int):
        padding = (padding, padding)
    if padding == (0, 0):
        return x
    return Pad2d.apply(x, padding=tuple(padding), value=value)


def concat(tensors, axis=1):
    return Concat.apply(*tensors, axis=axis)
