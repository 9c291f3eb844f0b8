"""Local tests for task 1 (sign and its STE).  Run: python -m pytest tests/test_task1.py"""
import numpy as np
from hypothesis import assume, given

from minilab.testing import arrays, assert_gradcheck, tensor_of

from exercises import task1_sign


def test_sign_of_zero_is_plus_one():
    x = np.array([-2.0, -0.0, 0.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(task1_sign.sign(x), [-1, 1, 1, 1])


@given(arrays())
def test_ste_gradient_is_the_window(x):
    t = tensor_of(x)
    task1_sign.sign_ste(t).backward(np.ones(x.shape))
    np.testing.assert_array_equal(t.grad, (np.abs(x) <= 1).astype(float))


@given(arrays(max_dims=2))
def test_ste_against_central_differences_of_the_clipped_identity(x):
    assume(np.all(np.abs(np.abs(x) - 1) > 1e-3))

    class Checked(task1_sign.SignSTE):       # gradcheck differentiates the surrogate clip(x, −1, 1)
        @staticmethod
        def surrogate(ctx, x, clip=1.0):
            task1_sign.SignSTE.forward(ctx, x, clip)
            return np.clip(x, -clip, clip)

    assert_gradcheck(Checked.apply, tensor_of(x), surrogate=True)
