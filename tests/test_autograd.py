import numpy as np
import pytest

import minilab as ml
from minilab import F


def t(x, grad=True, dtype=np.float64):
    return ml.Tensor(np.asarray(x, dtype=dtype), requires_grad=grad)


def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = t([1.0, 2.0, 3.0])
    y = (x * x + x).sum()          # dy/dx = 2x + 1
    y.backward()
    np.testing.assert_allclose(x.grad, [3.0, 5.0, 7.0])


def test_diamond_graph():
    x = t(2.0)
    a = x * 3.0
    b = x * x
    (a * b).backward()             # d(3x·x²)/dx = 9x² = 36
    assert x.grad == pytest.approx(36.0)


def test_deep_graph_has_no_recursion_limit():
    x = t(1.0)
    y = x
    for _ in range(20000):
        y = y + 1.0
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_second_backward_raises_unless_graph_retained():
    x = t([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_second_backward_with_retain_graph_accumulates():
    x = t([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [4.0, 8.0])   # 2 · 2x


def test_no_grad_records_nothing():
    x = t([1.0])
    with ml.no_grad():
        y = x * 2
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_grad_gives_the_values_of_the_recorded_graph(dtype):
    """Under no_grad, Function.apply skips the graph bookkeeping; the values and dtypes must not change."""
    rng = np.random.default_rng(0)
    x, w = t(rng.standard_normal((2, 3, 6, 6)), dtype=dtype), t(rng.standard_normal((4, 3, 3, 3)), dtype=dtype)
    scale = t(rng.standard_normal((1, 4, 1, 1)), dtype=dtype)

    def forward():
        y = F.max_pool2d(F.relu(F.conv2d(x, w, padding=1) * scale), 2)
        return y * 0.5 + y                  # a Python number: the general path, with dtype promotion

    recorded = forward()
    with ml.no_grad():
        plain = forward()
    assert recorded.requires_grad and not plain.requires_grad and plain._parents == []
    assert plain.dtype == recorded.dtype == dtype
    np.testing.assert_array_equal(plain.data, recorded.data)


def test_non_scalar_backward_needs_grad():
    x = t([1.0, 2.0])
    with pytest.raises(RuntimeError, match="non-scalar"):
        (x * 2).backward()
    (x * 2).backward(np.ones(2))
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_backward_grad_shape_checked():
    x = t([1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(3))


def test_nan_loss_is_reported():
    x = t([np.nan, 1.0])
    with pytest.raises(FloatingPointError, match="NaN"):
        x.sum().backward()


def test_dtypes():
    assert ml.tensor([1, 2]).dtype == np.float32
    assert ml.tensor(np.zeros(2, np.float64)).dtype == np.float64
    assert ml.tensor([1.0], dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError):
        ml.Tensor(np.zeros(2), dtype=np.int32)
    x32 = ml.tensor(np.ones((2, 3, 4, 4), np.float32), requires_grad=True)
    w32 = ml.tensor(np.ones((2, 3, 3, 3), np.float32), requires_grad=True)
    y = F.conv2d(x32, w32, padding=1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x32.grad.dtype == np.float32 and w32.grad.dtype == np.float32


def test_matmul_shape_error_is_clear():
    with pytest.raises(ValueError, match="do not line up"):
        F.matmul(t(np.ones((2, 3))), t(np.ones((4, 2))))


def test_conv_shape_errors_are_clear():
    x = t(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x, t(np.ones((2, 4, 3, 3))))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(t(np.ones((3, 5, 5))), t(np.ones((2, 3, 3, 3))))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(t(np.ones((1, 3, 2, 2))), t(np.ones((2, 3, 3, 3))))


def test_cross_entropy_target_errors():
    logits = t(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="lie in"):
        F.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="integer"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))


def test_gradcheck_catches_a_wrong_backward():
    class WrongSquare(ml.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved
            return g * x          # should be 2x

    with pytest.raises(ml.gradcheck.__globals__["GradcheckError"]):
        ml.gradcheck(lambda x: WrongSquare.apply(x), t(np.array([0.5, 1.5])))
