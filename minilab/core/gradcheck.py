"""`gradcheck`: compare an op's hand-written backward with central differences, in float64.

    ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h

A non-scalar output is reduced to the scalar L = Σ f(x)·R with a fixed random R, so every entry of the
Jacobian is exercised.  For straight-through ops pass `surrogate=True`: forward *and* backward then run in
`surrogate_mode()`, where every STE op outputs the smooth surrogate its pseudo-gradient is the derivative of, so
the check verifies the surrogates themselves (LAB's backward against tanh(β(r1 − r0)/2), sign_ste's against the
clipped identity, …).  Keep inputs away from kinks (|x| = 1 for the clipped STE, ties in max pooling).
"""
import contextlib

import numpy as np

from .autograd import Tensor, surrogate_mode


class GradcheckError(AssertionError):
    pass


def _as_float64_inputs(inputs):
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad))
        else:
            out.append(x)
    return out


def numerical_grad(fn, inputs, index, projection, eps=1e-6):
    """Central-difference gradient of Σ fn(*inputs)·projection with respect to inputs[index]."""
    x = inputs[index].data  # perturbed in place, whatever its memory layout (non-contiguous inputs included)
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + eps
        plus = float((fn(*inputs).data * projection).sum())
        x[i] = old - eps
        minus = float((fn(*inputs).data * projection).sum())
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, *inputs, surrogate=False, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, raise_exception=True):
    """Check d fn / d input for every Tensor input with requires_grad=True.  Returns True, or raises
    GradcheckError naming the input and the worst entry (or returns False with raise_exception=False)."""
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    mode = surrogate_mode() if surrogate else contextlib.nullcontext()
    with mode:
        out = fn(*inputs)
        if not isinstance(out, Tensor):
            raise TypeError("gradcheck: fn must return a Tensor")
        projection = np.random.default_rng(seed).standard_normal(out.shape)
        out.backward(projection.astype(out.dtype))
        for i in checked:
            analytic = inputs[i].grad
            if analytic is None:
                analytic = np.zeros_like(inputs[i].data)
            numeric = numerical_grad(fn, inputs, i, projection, eps)
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                err = np.abs(analytic - numeric)
                worst = tuple(int(k) for k in np.unravel_index(np.argmax(err), err.shape))   # plain ints print as (0, 2)
                message = (f"gradcheck failed for input {i} (shape {inputs[i].shape}): at index {worst} the backward "
                           f"gives {analytic[worst]:.6g}, central differences give {numeric[worst]:.6g} "
                           f"(max abs error {err.max():.3g})")
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True
