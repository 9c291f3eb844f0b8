"""Local tests for task 2 (ApproxSign).  Run: python -m pytest tests/test_task2.py"""
import numpy as np
from hypothesis import given

from minilab.testing import arrays, tensor_of

from exercises import task2_approxsign


@given(arrays())
def test_forward_is_sign(x):
    np.testing.assert_array_equal(task2_approxsign.approx_sign(tensor_of(x)).data, np.where(x >= 0, 1, -1))


@given(arrays())
def test_gradient_is_a_triangle(x):
    t = tensor_of(x)
    task2_approxsign.approx_sign(t).backward(np.ones(x.shape))
    np.testing.assert_allclose(t.grad, np.maximum(0, 2 - 2 * np.abs(x)), rtol=1e-12)
