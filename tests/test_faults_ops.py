"""Degenerate arguments to the ops: zero strides, groups and kernels are refused with a message, complex data is
refused instead of silently losing its imaginary part, an empty batch goes through the convs and pools (both the
NumPy reference and the compiled twins) and has zero gradients."""
import numpy as np
import pytest

from minilab import config, nn
from minilab import ops as F
from minilab.core.autograd import Tensor

PATHS = [pytest.param(False, id="numpy"), pytest.param(True, id="kernels")]


def _kernels(on):
    if on and not config.available():
        pytest.skip("the compiled kernels are not built")
    return config.use(kernels=on)


def x4(n=2, c=4, s=8, grad=False):
    return Tensor(np.random.default_rng(0).normal(size=(n, c, s, s)).astype(np.float32), requires_grad=grad)


@pytest.mark.parametrize("kernels", PATHS)
@pytest.mark.parametrize("call, message", [
    (lambda x: F.conv2d(x, Tensor(np.ones((4, 4, 3, 3), np.float32)), stride=0), "stride must be positive"),
    (lambda x: F.conv2d(x, Tensor(np.ones((4, 4, 3, 3), np.float32)), stride=(1, 0)), "stride must be positive"),
    (lambda x: F.conv2d(x, Tensor(np.ones((4, 4, 3, 3), np.float32)), padding=-1), "padding must be non-negative"),
    (lambda x: F.conv2d(x, Tensor(np.ones((4, 4, 3, 3), np.float32)), groups=0), "groups must be a positive"),
    (lambda x: F.conv2d(x, Tensor(np.ones((4, 4, 0, 0), np.float32))), "must be at least 1"),
    (lambda x: F.binary_conv2d(x, Tensor(np.ones((4, 4, 3, 3), np.float32)), stride=0), "stride must be positive"),
    (lambda x: F.max_pool2d(x, 0), "kernel_size must be positive"),
    (lambda x: F.avg_pool2d(x, 2, stride=0), "stride must be positive"),
    (lambda x: F.max_pool2d(x, 2, stride=(2, 0)), "stride must be positive"),
])
def test_degenerate_arguments_are_refused(kernels, call, message):
    with _kernels(kernels), pytest.raises(ValueError, match=message):
        call(x4())


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Conv2d(3, 4, 0), "kernel_size must be a positive"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), "stride must be positive"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), "groups must be a positive"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), "must divide"),
])
def test_degenerate_layers_are_refused_when_built(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("data", [np.ones(3, np.complex64), np.array([1 + 2j, 3 - 1j]), [1j, 2.0]])
def test_complex_data_is_refused(data):
    with pytest.raises(TypeError, match="real"):
        Tensor(data)


def test_complex_scalar_in_arithmetic_is_refused():
    with pytest.raises(TypeError, match="real"):
        Tensor(np.ones(3, np.float32)) * (1 + 2j)


@pytest.mark.parametrize("kernels", PATHS)
@pytest.mark.parametrize("groups, kernel", [(1, 3), (4, 3), (2, 1)])
def test_empty_batch_through_conv_forward_and_backward(kernels, groups, kernel):
    with _kernels(kernels):
        w = Tensor(np.ones((4, 4 // groups, kernel, kernel), np.float32), requires_grad=True)
        x = x4(n=0, grad=True)
        y = F.conv2d(x, w, stride=1, padding=kernel // 2, groups=groups)
        assert y.shape == (0, 4, 8, 8)
        y.sum().backward()
        assert x.grad.shape == (0, 4, 8, 8) and not w.grad.any()


@pytest.mark.parametrize("kernels", PATHS)
def test_empty_batch_through_binary_conv_and_pools(kernels):
    with _kernels(kernels):
        x = x4(n=0)
        w = Tensor(np.ones((4, 4, 3, 3), np.float32))
        assert F.binary_conv2d(x, w, padding=1).shape == (0, 4, 8, 8)
        assert F.max_pool2d(x, 2).shape == (0, 4, 4, 4)
        assert F.avg_pool2d(x, 2).shape == (0, 4, 4, 4)


def test_empty_batch_loss_is_a_clear_error():
    with pytest.raises(ValueError, match="batch is empty"):
        F.cross_entropy(Tensor(np.zeros((0, 10), np.float32)), np.zeros(0, np.int64))
