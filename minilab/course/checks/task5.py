"""Task 5: PReLU forward and backward, with the gradient of its per-channel slope."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minilab.testing import arrays, assert_gradcheck, tensor_of

from .common import check, expect_close, run_op

shapes = st.sampled_from([(2, 3), (2, 3, 4), (1, 2, 3, 3), (3, 1, 2, 2)])


def slopes(channels, seed):
    return np.random.default_rng(seed).uniform(-0.5, 1.5, channels)


def expected(x, a):
    slope = a.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, slope * x), slope


@check("PReLU forward: y = x where x > 0, a_c·x elsewhere, one slope per channel (axis 1)",
       "the slope a has one entry per channel c = axis 1: reshape it to (1, C, 1, …) so it broadcasts over N, H, W "
       "(not over the last axis)")
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def forward(ws, shape, seed, data):
    x = data.draw(arrays(shape=shape), label="x")
    a = slopes(shape[1], seed)
    y, _, _ = run_op(ws.task5.prelu, x, a, backward=False)
    want, slope = expected(x, a)
    expect_close("prelu(x, a)", y, want, x=x, a_c=slope)


@check("PReLU backward to x: ∂L/∂y where x > 0, a_c·∂L/∂y elsewhere",
       "where x ≤ 0 PReLU has slope a_c, so ∂L/∂x = a_c·∂L/∂y there (0 would be ReLU's gradient; x would be the "
       "slope's)")
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def grad_x(ws, shape, seed, data):
    x = data.draw(arrays(shape=shape), label="x")
    a = slopes(shape[1], seed)
    _, g, (dx, _) = run_op(ws.task5.prelu, x, a, requires=[True, False])
    _, slope = expected(x, a)
    expect_close("∂L/∂x", dx, np.where(x > 0, g, slope * g), magnitude=np.abs(g) * np.maximum(1, np.abs(slope)),
                 x=x, a_c=slope, grad=g)


@check("PReLU backward to the slope: ∂L/∂a_c = Σ over N, H, W of ∂L/∂y·x where x ≤ 0",
       "the slope's gradient is ∂L/∂y·x (not ·a_c) on the entries with x ≤ 0, summed over every axis but the "
       "channel axis 1, into shape (C,)")
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def grad_a(ws, shape, seed, data):
    x = data.draw(arrays(shape=shape), label="x")
    a = slopes(shape[1], seed)
    _, g, (_, da) = run_op(ws.task5.prelu, x, a)
    axes = tuple(i for i in range(x.ndim) if i != 1)
    want = np.where(x > 0, 0, g * x).sum(axis=axes)
    expect_close("∂L/∂a", da, want, magnitude=np.abs(g * x).sum(axis=axes), terms=x.size + 8,
                 channel=np.arange(shape[1]))


@check("PReLU's backward agrees with central differences (x and a)",
       "both gradients must be the true derivatives of y = max(x, 0) + a_c·min(x, 0)")
@given(x=arrays(shape=(2, 3, 2, 2)), seed=st.integers(0, 2**16))
def gradcheck(ws, x, seed):
    assert_gradcheck(ws.task5.prelu, tensor_of(x), tensor_of(slopes(3, seed)))


CHECKS = [forward, grad_x, grad_a, gradcheck]
