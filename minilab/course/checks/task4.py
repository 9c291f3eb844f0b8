"""Task 4: LAB — ArgMax forward (ties give −1), Soft-ArgMax backward to the maps r and to β."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilab.testing import arrays, assert_matches_reference, tensor_of

from .. import refs
from .common import (backward_and_central_differences, central_difference_bound, check, expect_close, expect_shape,
                     run_op, with_surrogate)

levels = st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0])
betas = st.sampled_from([1.0, 0.5, 2.0, -1.0])


def map_shapes():
    return st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).map(
        lambda s: (s[0], 2 * s[1], s[2], s[3]))


def pairs(r):
    return r[:, 0::2], r[:, 1::2]


def soft_argmax(r, beta):
    r0, r1 = pairs(r)
    return np.tanh(beta * (r1 - r0) / 2)


@check("LAB forward: y = +1 where β·(r1 − r0) > 0, −1 elsewhere (a tie gives −1), r0 = r[:, 0::2], r1 = r[:, 1::2]",
       "ArgMax of (β·r0, β·r1) picks index 0 on a tie, so r1 = r0 gives −1 (compare with >, not ≥); the pair of "
       "channel c is maps 2c and 2c + 1; compare β·(r1 − r0), not r1 − r0 (β may be negative)")
@given(r=hnp.arrays(np.float64, map_shapes(), elements=levels), beta=betas)
def forward(ws, r, beta):
    beta = np.array(beta)
    out, _, _ = run_op(ws.task4.LabArgMax.apply, r, beta, backward=False)
    r0, r1 = pairs(r)
    expect_shape("LabArgMax forward", out, r0.shape)
    expect_close("LabArgMax forward", out, np.where(beta * (r1 - r0) > 0, 1.0, -1.0), r0=r0, r1=r1, beta=beta)


@check("LAB backward to r agrees with central differences of s = tanh(β·(r1 − r0)/2)",
       "∂s/∂r1 = β(1 − s²)/2 and ∂s/∂r0 = −β(1 − s²)/2 with s = tanh(β·(r1 − r0)/2): the /2 inside tanh and the "
       "/2 in front are both needed, the r0 half gets the minus sign, and the gradient goes back to the maps "
       "2c (r0) and 2c + 1 (r1) of channel c")
@given(r=arrays(shape=(1, 4, 2, 3)) | arrays(shape=(2, 2, 3, 1)), beta=betas)
def grad_r(ws, r, beta):
    op = with_surrogate(ws.task4.LabArgMax, soft_argmax)
    yours, numeric = backward_and_central_differences(op.apply, [r, np.array(beta)], wrt=0)
    r0, r1 = (np.repeat(half, 2, axis=1) for half in pairs(r))
    half = np.broadcast_to(np.array(["r0", "r1"] * (r.shape[1] // 2))[None, :, None, None], r.shape)
    expect_close("∂L/∂r", yours, numeric, bound=central_difference_bound(numeric),
                 expected="central differences of tanh(β·(r1 − r0)/2) give", map=half, r0=r0, r1=r1, beta=beta)


@check("LAB backward to β agrees with central differences of s = tanh(β·(r1 − r0)/2)",
       "LAB learns β too: return ∂L/∂β = Σ over every pixel of ∂L/∂y·(r1 − r0)(1 − s²)/2, one number in β's "
       "shape (a 0-d array), not None and not per pixel")
@given(r=arrays(shape=(1, 4, 2, 3)) | arrays(shape=(2, 2, 3, 1)), beta=betas)
def grad_beta(ws, r, beta):
    op = with_surrogate(ws.task4.LabArgMax, soft_argmax)
    yours, numeric = backward_and_central_differences(op.apply, [r, np.array(beta)], wrt=1)
    expect_close("∂L/∂β", yours, numeric, bound=central_difference_bound(numeric),
                 expected="central differences of tanh(β·(r1 − r0)/2) give", beta=beta)


@check("lab(x, weight, bias, β) matches minilab's LAB: the forward and the gradients of x, the kernels, the bias "
       "and β",
       "with r from the given depthwise conv, your LabArgMax must give minilab's ±1 map and Soft-ArgMax gradients")
@given(x=arrays(shape=(2, 2, 4, 3)), seed=st.integers(0, 2**16), beta=betas)
def end_to_end(ws, x, seed, beta):
    rng = np.random.default_rng(seed)
    inputs = [tensor_of(x), tensor_of(rng.standard_normal((4, 1, 3, 3))), tensor_of(rng.standard_normal(4)),
              tensor_of(np.array(beta))]
    assert_matches_reference(ws.task4.lab, refs.F.lab, *inputs)


CHECKS = [forward, grad_r, grad_beta, end_to_end]
