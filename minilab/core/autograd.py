"""The autograd core: a `Tensor` that records the `Function`s applied to it, and reverse-mode backward.

Every op is a `Function` subclass with two static methods written by hand in NumPy:

    forward(ctx, *inputs, **options) -> np.ndarray
    backward(ctx, grad_output)       -> one gradient (or None) per Tensor input

`ctx` is a small context object: `ctx.save(...)` keeps what backward needs, `ctx.saved` returns it, and any
other attribute set on it (ctx.stride = 2) is free-form.  This is minitorch's design.

Straight-through (STE) ops also declare a `surrogate(ctx, *inputs, **options)`: the smooth function whose true
derivative their backward implements.  Under `surrogate_mode()` the forward returns that smooth value instead, so
`gradcheck` can verify an STE backward against central differences of its declared surrogate.

Every Function in `minilab.ops` is a NumPy reference.  Some have compiled twins (`minilab.fast`) that give the same
answer faster; `apply` asks `minilab.core.dispatch` whether one accepts the inputs, and the reference runs otherwise.

What a second backward does (micrograd gets this wrong): gradients of leaves *accumulate* across calls, as in
PyTorch (call `zero_grad()` between steps).  By default `backward()` frees the graph's saved arrays; a second
backward over the same graph then raises a clear error unless the first one was called with `retain_graph=True`.
The topological order is computed iteratively, so graphs thousands of ops deep do not hit the recursion limit.
"""
from __future__ import annotations

import contextlib
import numbers

import numpy as np

from . import dispatch

_grad_enabled = True
_surrogate = False


@contextlib.contextmanager
def no_grad():
    """Run ops without recording the graph (evaluation, optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def surrogate_mode():
    """STE ops return their smooth surrogate instead of the hard value (used by `gradcheck`)."""
    global _surrogate
    previous, _surrogate = _surrogate, True
    try:
        yield
    finally:
        _surrogate = previous


def in_surrogate_mode() -> bool:
    return _surrogate


class Context:
    """What a Function's forward leaves for its backward."""

    def __init__(self):
        self.saved_arrays: tuple = ()
        self.needs_input_grad: tuple = ()
        self.freed = False

    def save(self, *arrays):
        self.saved_arrays = arrays

    @property
    def saved(self):
        return self.saved_arrays


class Function:
    """Base class of every differentiable op."""

    @staticmethod
    def forward(ctx, *inputs, **options):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError

    surrogate = None

    @classmethod
    def apply(cls, *inputs, **options) -> "Tensor":
        if not _grad_enabled and not _surrogate and all(isinstance(x, Tensor) for x in inputs):
            # inference: nothing will run backward, so there is no graph, dtype promotion or gradient flag to
            # record (a batch-1 forward is many small ops, and that bookkeeping costs as much as some of them)
            ctx, arrays = Context(), [x.data for x in inputs]
            ctx.needs_input_grad = (False,) * len(arrays)
            op = dispatch.choose(cls, arrays, options) or cls
            return Tensor(op.forward(ctx, *arrays, **options), _keep_dtype=True)
        # Python numbers take the dtype of the tensors they meet (like NumPy's weak scalars): x32 + 1e-9 stays float32
        dtype = next((x.dtype for x in inputs if isinstance(x, (Tensor, np.ndarray)) and x.dtype.kind == "f"),
                     np.float32)
        tensors = [x if isinstance(x, Tensor) else
                   Tensor(_as_float_array(x, dtype) if isinstance(x, numbers.Number) else x, _keep_dtype=True)
                   for x in inputs]
        ctx = Context()
        ctx.needs_input_grad = tuple(t.requires_grad for t in tensors)
        arrays = [t.data for t in tensors]
        if _surrogate:   # gradcheck's mode: the reference, with the smooth surrogate where the op declares one
            op, out = cls, (cls.surrogate or cls.forward)(ctx, *arrays, **options)
        else:
            op = dispatch.choose(cls, arrays, options) or cls   # a compiled twin, when one accepts these inputs
            out = op.forward(ctx, *arrays, **options)
        requires_grad = _grad_enabled and any(ctx.needs_input_grad)
        result = Tensor(out, requires_grad=requires_grad, _keep_dtype=True)
        if requires_grad:
            result._op = op   # the backward must be the one of the implementation that ran
            result._ctx = ctx
            result._parents = tensors
        return result


def as_tensor(x) -> "Tensor":
    return x if isinstance(x, Tensor) else Tensor(x, _keep_dtype=isinstance(x, np.ndarray))


def _as_float_array(data, dtype):
    """float32 unless asked otherwise; NumPy float64 arrays stay float64 (that is how float64 is requested)."""
    arr = np.asarray(data)
    if arr.dtype.kind == "c":   # casting would silently drop the imaginary part
        raise TypeError(f"minilab tensors are real (float32 or float64), got {arr.dtype} data; pass .real or abs() "
                        "explicitly")
    if dtype is not None:
        return np.asarray(arr, dtype=dtype)
    if isinstance(data, (np.ndarray, np.generic)) and arr.dtype in (np.float32, np.float64):
        return arr
    return arr.astype(np.float32)


class Tensor:
    """A NumPy array plus the graph that produced it.  float32 unless you ask for float64.

    Its operators — `a + b`, `a * b`, `a @ b`, `x[i]`, `x.sum()`, `x.reshape(...)` … — are ops, and ops stand on
    this file, so `minilab/ops/operators.py` attaches them to the class (importing minilab imports minilab.ops)."""

    __array_priority__ = 1000  # so that `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False, dtype=None, _keep_dtype: bool = False):
        if _keep_dtype and type(data) is np.ndarray and data.dtype.char in "fd" and dtype is None:
            self.data = data  # an op's float32 / float64 result, the most common case by far: no checks needed
        else:
            if isinstance(data, Tensor):
                data = data.data
            if _keep_dtype and dtype is None and isinstance(data, (np.ndarray, np.generic)) and \
                    data.dtype in (np.float32, np.float64):
                self.data = np.asarray(data)  # op results (0-d results come back as NumPy scalars) keep their dtype
            elif _keep_dtype and dtype is None and isinstance(data, numbers.Number):
                self.data = np.asarray(data, dtype=np.float32)
            else:
                self.data = _as_float_array(data, dtype)
            if self.data.dtype not in (np.float32, np.float64):
                raise TypeError(f"minilab tensors are float32 or float64, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._op = None
        self._ctx: Context | None = None
        self._parents: list[Tensor] = []

    # ---- basic properties -------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._op is None)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return float(self.data)

    def detach(self) -> "Tensor":
        return Tensor(self.data, _keep_dtype=True)

    def astype(self, dtype) -> "Tensor":
        return Tensor(self.data.astype(dtype), requires_grad=self.requires_grad)

    def zero_grad(self):
        self.grad = None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    # ---- backward ---------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False, on_leaf=None):
        """Reverse-mode differentiation from this tensor.

        `grad` defaults to 1 for a scalar; a non-scalar needs an explicit gradient of its own shape.
        `on_leaf(tensor)`, if given, is called as soon as a leaf's `.grad` is final for this backward — while
        the rest of the backward still runs (data-parallel training starts averaging those gradients then)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no parameter or input "
                               "with requires_grad=True went into it, or it was computed under no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() on a non-scalar tensor of shape {self.shape} needs an explicit "
                                   "`grad` of the same shape")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward(): grad has shape {grad.shape}, tensor has shape {self.shape}")
        if not np.all(np.isfinite(self.data)) and self.data.size == 1:
            raise FloatingPointError(f"backward() from a non-finite value ({self.item()}): the loss is NaN or inf")

        order = topological_order(self)
        grads: dict[int, np.ndarray] = {id(self): grad}
        for node in order:  # outputs first
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._op is None:
                if node.requires_grad:
                    node.grad = g.copy() if node.grad is None else node.grad + g
                    if on_leaf is not None:
                        on_leaf(node)
                continue
            ctx = node._ctx
            if ctx.freed:
                raise RuntimeError("backward() through a graph that was already freed: a second backward over "
                                   "the same graph needs retain_graph=True in the first call")
            parent_grads = node._op.backward(ctx, g)
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
            for parent, pg in zip(node._parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.shape:
                    raise RuntimeError(f"{node._op.__name__}.backward returned a gradient of shape {pg.shape} "
                                       f"for an input of shape {parent.shape}")
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                ctx.saved_arrays = ()
                ctx.freed = True


def topological_order(root: Tensor) -> list[Tensor]:
    """Nodes reachable from `root`, every node before its parents (iterative DFS, no recursion).

    Parents are visited first to last, so an op's later inputs (a layer's weights, after its activation input)
    come right after the op in the order: a weight's gradient is final as soon as its layer's backward ran."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in reversed(node._parents):
            if id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
