"""Task 2: ApproxSign, forward sign(x) and backward 2 − 2|x| on |x| ≤ 1."""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilab.testing import arrays, assert_gradcheck, tensor_of

from .common import check, expect_close, expect_shape, run_op, with_surrogate

values = st.sampled_from([-2.0, -1.0, -0.75, -0.25, 0.0, 0.25, 0.75, 1.0, 2.0])


@check("approx_sign(x) is sign(x), sign(0) = +1",
       "the forward is task 1's sign (sign(0) = +1); only the backward differs")
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4), elements=values))
def forward(ws, x):
    y = ws.task2.approx_sign(tensor_of(x)).data
    expect_close("approx_sign(x)", y, np.where(x >= 0, 1.0, -1.0), x=x)


@check("the gradient is (2 − 2|x|)·∂L/∂q where |x| ≤ 1",
       "the derivative of 2x − x·|x| is 2 − 2|x|: use |x| (the surrogate is odd, its derivative even: 2 − 2x is "
       "wrong for x < 0), and 2, not 1, at x = 0")
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=values))
def inside(ws, x):
    _, g, (dx,) = run_op(ws.task2.approx_sign, x)
    expect_shape("∂L/∂x", dx, x.shape)
    inside = np.abs(x) <= 1
    expect_close("∂L/∂x where |x| ≤ 1", np.where(inside, dx, 0), np.where(inside, g * (2 - 2 * np.abs(x)), 0),
                 magnitude=2 * np.abs(g), x=x, grad=g)


@check("the gradient is zero where |x| > 1",
       "ApproxSign's gradient is 0 where |x| > 1: 2 − 2|x| turns negative there, so the window must clip it")
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=values))
def outside(ws, x):
    _, g, (dx,) = run_op(ws.task2.approx_sign, x)
    outside = np.abs(x) > 1
    expect_close("∂L/∂x where |x| > 1", np.where(outside, dx, 0), np.zeros_like(x), x=x, grad=g)


def _surrogate(x):
    return np.where(np.abs(x) <= 1, 2 * x - x * np.abs(x), np.where(x >= 0, 1.0, -1.0))


@check("ApproxSign's backward agrees with central differences of its piecewise quadratic",
       "the backward is the derivative of F(x) = 2x − x|x| on [−1, 1] (±1 outside), times the incoming gradient")
@given(x=arrays(max_dims=3))
def gradcheck(ws, x):
    assume(np.all(np.abs(np.abs(x) - 1) > 1e-3))
    op = with_surrogate(ws.task2.ApproxSign, _surrogate)
    assert_gradcheck(op.apply, tensor_of(x), surrogate=True)


CHECKS = [forward, inside, outside, gradcheck]
