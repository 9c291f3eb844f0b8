"""Task 1: sign (sign(0) = +1) and its straight-through gradient with the clipping window |x| ≤ clip."""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilab.testing import arrays, assert_gradcheck, tensor_of

from .common import check, expect_close, expect_shape, run_op, with_surrogate

values = st.sampled_from([-2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5])
clips = st.sampled_from([0.5, 1.0, 2.0])


@check("sign(x) is ±1 with sign(0) = +1, in x's shape and dtype",
       "sign(0) must be +1 (a binary value is never 0): np.sign(0) is 0, use np.where(x >= 0, 1, −1); keep "
       "x's dtype (float32 in, float32 out)")
@given(x=hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=4), elements=values))
def forward(ws, x):
    y = ws.task1.sign(x)
    expect_shape("sign(x)", y, x.shape)
    expect_close("sign(x)", y, np.where(x >= 0, 1.0, -1.0), x=x)
    if np.asarray(y).dtype != x.dtype:
        raise AssertionError(f"sign(x) of a {x.dtype} array returned {np.asarray(y).dtype}")
    out = ws.task1.sign_ste(tensor_of(x)).data
    expect_close("sign_ste(x) forward", out, np.where(x >= 0, 1.0, -1.0), x=x)


@check("the STE gradient is zero where |x| > clip",
       "your gradient is non-zero where |x| > clip: the STE window clips it (∂q/∂x = 1[|x| ≤ clip], using the "
       "`clip` argument, not a hard-coded 1)")
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=values), clip=clips)
def outside(ws, x, clip):
    _, g, (dx,) = run_op(lambda t: ws.task1.sign_ste(t, clip=clip), x)
    out = np.abs(x) > clip
    expect_shape("∂L/∂x", dx, x.shape)
    expect_close("∂L/∂x where |x| > clip", np.where(out, dx, 0), np.zeros_like(x), x=x, clip=clip, grad=g)


@check("the STE gradient passes unchanged where |x| ≤ clip, the edges x = ±clip included",
       "inside the window the gradient passes as it came (∂L/∂x = ∂L/∂q, times 1 — not 0, not sign(x)); the "
       "window is closed: |x| ≤ clip, so x = ±clip passes too")
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=values), clip=clips)
def inside(ws, x, clip):
    _, g, (dx,) = run_op(lambda t: ws.task1.sign_ste(t, clip=clip), x)
    expect_shape("∂L/∂x", dx, x.shape)
    inside = np.abs(x) <= clip
    expect_close("∂L/∂x where |x| ≤ clip", np.where(inside, dx, 0), np.where(inside, g, 0.0), x=x, clip=clip,
                 grad=g)


@check("SignSTE's backward agrees with central differences of clip(x, −clip, clip)",
       "the backward must be the derivative of the clipped identity: 1 inside the window, 0 outside, times the "
       "incoming gradient")
@given(x=arrays(max_dims=3), clip=clips)
def gradcheck(ws, x, clip):
    assume(np.all(np.abs(np.abs(x) - clip) > 1e-3))     # away from the kinks at ±clip
    op = with_surrogate(ws.task1.SignSTE, lambda x, clip=1.0: np.clip(x, -clip, clip))
    assert_gradcheck(lambda t: op.apply(t, clip=clip), tensor_of(x), surrogate=True)


CHECKS = [forward, inside, outside, gradcheck]
