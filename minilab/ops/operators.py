"""A Tensor's operators are ops: `a + b` is `add(a, b)`, `x.sum()` is `sum(x)`, `x[i]` is `getitem(x, i)`.

The autograd core (minilab/core/autograd.py) defines no op, so that it imports nothing above it; the operators are
attached to its Tensor here, next to the ops they run.  minilab/ops/__init__.py imports this module, so every
Tensor has them once minilab is imported."""
from ..core.autograd import Tensor
from . import arith, shape


def _reshape(self, *new_shape):
    """x.reshape(2, 3) or x.reshape((2, 3))."""
    if len(new_shape) == 1 and isinstance(new_shape[0], (tuple, list)):
        new_shape = tuple(new_shape[0])
    return shape.reshape(self, new_shape)


def _transpose(self, *axes):
    """x.transpose(1, 0), x.transpose((1, 0)), or x.transpose() (all axes reversed)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return shape.transpose(self, axes or None)


Tensor.__add__ = Tensor.__radd__ = arith.add
Tensor.__sub__ = arith.sub
Tensor.__rsub__ = lambda self, other: arith.sub(other, self)
Tensor.__mul__ = Tensor.__rmul__ = arith.mul
Tensor.__truediv__ = arith.div
Tensor.__rtruediv__ = lambda self, other: arith.div(other, self)
Tensor.__neg__ = arith.neg
Tensor.__pow__ = arith.pow
Tensor.__matmul__ = arith.matmul
Tensor.__getitem__ = shape.getitem
Tensor.sum = arith.sum
Tensor.mean = arith.mean
Tensor.reshape = _reshape
Tensor.transpose = _transpose
Tensor.flatten = shape.flatten
