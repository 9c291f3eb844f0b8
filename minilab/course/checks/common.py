"""What every task's checks share: the `check` decorator, comparisons that name the entry they fail on, and
a forward/backward runner for the student's ops."""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from minilab.testing import rounding_tolerance, tensor_of

from .. import refs


@dataclass
class Check:
    name: str             # what is checked, as the student reads it
    hint: str             # the usual mistake behind a failure of this check
    test: Callable        # test(ws), hypothesis-given over its other arguments
    most: int = 0         # at most this many examples (0: as many as `check --examples` asks), for slow checks


def check(name, hint, most=0):
    """Decorator: turn a hypothesis test `test(ws, **drawn)` into a Check."""
    def make(test):
        return Check(name, hint, test, most)
    return make


def describe(value):
    """A number as the student wrote it, without NumPy's type noise."""
    value = np.asarray(value)
    if value.dtype.kind == "f":
        return f"{float(value):.6g}"
    return str(value.item()) if value.size == 1 else str(value)


def expect_shape(what, got, shape):
    got = np.asarray(got)
    if got.shape != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {got.shape}")


def expect_close(what, got, want, magnitude=None, terms=8, bound=None, expected="expected", **context):
    """got ≈ want entry by entry within float64 rounding of `terms` operations on values of size `magnitude`
    (|want| by default), or within `bound`; on failure name the worst entry, with the `context` arrays' values
    there.  `expected` names where `want` comes from."""
    if got is None:
        raise AssertionError(f"{what}: expected an array of shape {np.shape(want)}, got None")
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    expect_shape(what, got, want.shape)
    magnitude = np.abs(want) if magnitude is None else magnitude
    if bound is None:
        bound = rounding_tolerance(magnitude, terms, np.float64)
    bound = np.broadcast_to(bound, want.shape)
    diff = np.abs(got - want)
    bad = ~(diff <= bound)
    if np.any(bad):
        i = np.unravel_index(np.argmax(np.where(bad, diff - bound + 1, -1)), want.shape) if want.ndim else ()
        at = ", ".join(f"{name} = {describe(np.broadcast_to(value, want.shape)[i])}" for name, value in context.items())
        where = f"at index {tuple(int(k) for k in i)}" + (f" ({at})" if at else "")
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} entries wrong; {where}: {expected} "
                             f"{describe(want[i])}, yours gives {describe(got[i])}")


def run_op(fn, *arrays, grad_seed=0, requires=None, backward=True):
    """fn(*Tensors) forward and backward in float64 with a fixed random ∂L/∂y.  Returns (y, ∂L/∂y, [∂L/∂input]);
    `requires` (booleans) picks which inputs get a gradient (all by default); backward=False runs the forward
    only (a forward check must not fail on a backward bug)."""
    requires = requires or [True] * len(arrays)
    tensors = [tensor_of(np.asarray(a, dtype=np.float64), requires_grad=r) for a, r in zip(arrays, requires)]
    out = fn(*tensors)
    if not backward:
        return out.data, None, None
    g = np.random.default_rng(grad_seed).uniform(0.5, 2.0, out.shape) * \
        np.where(np.random.default_rng(grad_seed + 1).random(out.shape) < 0.5, -1, 1)
    out.backward(g)
    return out.data, g, [t.grad if r else None for t, r in zip(tensors, requires)]


def backward_and_central_differences(fn, arrays, wrt, seed=0):
    """For input `wrt` of fn: the gradient the student's backward gives, and central differences of the smooth
    surrogate, both in surrogate mode, for L = Σ fn(…)·R with a fixed random R (float64)."""
    with refs.surrogate_mode():
        tensors = [tensor_of(np.asarray(a, dtype=np.float64), requires_grad=(i == wrt)) for i, a in enumerate(arrays)]
        out = fn(*tensors)
        projection = np.random.default_rng(seed).standard_normal(out.shape)
        out.backward(projection)
        analytic = tensors[wrt].grad
        numeric = refs.numerical_grad(fn, tensors, wrt, projection)
    return analytic, numeric


def central_difference_bound(numeric):
    """How far central differences (step 1e-6, float64) may lie from the true derivative: the truncation and
    cancellation error of the difference quotient, the bound minilab's gradcheck uses (atol 1e-5, rtol 1e-4)."""
    return 1e-5 + 1e-4 * np.abs(numeric)


def with_surrogate(student_class, smooth):
    """The student's Function with a `surrogate` for gradcheck: the student's own forward runs (so ctx holds
    what their backward expects), and the value returned is the smooth function `smooth(*arrays, **options)` whose
    derivative the backward must be."""
    class Checked(student_class):
        @staticmethod
        def surrogate(ctx, *arrays, **options):
            student_class.forward(ctx, *arrays, **options)
            return smooth(*arrays, **options)
    Checked.__name__ = student_class.__name__
    return Checked


def seeds():
    return st.integers(0, 2**16)
