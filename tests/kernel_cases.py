"""What the kernel test files (tests/test_kernels_*.py, one per kernel family) share: the compiled module, the
reference switch, seeded float32 data, and the rounding bounds of a convolution.

Float32 comparisons use minilab.testing.assert_close_in_rounding: two correct evaluations of a sum of n terms
differ by at most 2·γₙ·Σ|tᵢ|.  For a convolution Σ|tᵢ| is the same convolution run on absolute values
(`conv_magnitudes`), which the NumPy reference computes exactly enough for a bound."""
import numpy as np
import pytest

import minilab as ml
from minilab import F, config

EXT = config.kernels()
needs_ext = pytest.mark.skipif(EXT is None, reason=f"extension not built: {config.reason()}")


def rand(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference(run):
    """run() with the NumPy reference ops."""
    with config.use(kernels=False):
        return run()


def conv_magnitudes(x, w, g, bias=None, stride=1, padding=0, pad_value=0.0, groups=1):
    """Σ|tᵢ| of every output of conv2d's forward (y) and backward (∂x, ∂w, ∂b): the same convolution on
    absolute values, in float64 with the reference ops."""
    def absolute(a):
        return None if a is None else ml.Tensor(np.abs(a).astype(np.float64), requires_grad=True)

    X, W, B = absolute(x), absolute(w), absolute(bias)
    with config.use(kernels=False):
        y = F.conv2d(X, W, B, stride, padding, pad_value=abs(pad_value), groups=groups)
        y.backward(np.abs(g).astype(np.float64))
    return [y.data, X.grad, W.grad] + ([B.grad] if B is not None else [])


# Winograd F(2x2, 3x3) (the compiled 3x3 stride-1 backward) sums transformed values: Σ|tᵢ| grows by the
# transforms' largest absolute row sums (Bᵀ 2, G 1.5, Aᵀ 3) on both sides of a tile, and each transform adds a
# few roundings to the reduction
WINOGRAD_GROWTH, WINOGRAD_STEPS = (2 * 1.5 * 3) ** 2, 16


def winograd_magnitudes(x, w, g, padding, pad_value):
    """Bounds of Σ|tᵢ| for the Winograd backward's ∂x (N, C, 1, 1) and ∂w (O, C, 1, 1).  A tile's transforms mix
    every value of its window, including those a direct convolution multiplies by zero (the padding, and the
    row and column past an odd output), so each product is bounded by the largest value of its map."""
    x_max = np.abs(x).max(axis=(2, 3))
    if padding:
        x_max = np.maximum(x_max, abs(pad_value))
    g_abs = np.abs(g.astype(np.float64))
    size_x = np.einsum("no,oc->nc", g_abs.max(axis=(2, 3)), np.abs(w).sum(axis=(2, 3)))
    size_w = np.einsum("no,nc->oc", g_abs.sum(axis=(2, 3)), x_max)
    return WINOGRAD_GROWTH * size_x[:, :, None, None], WINOGRAD_GROWTH * size_w[:, :, None, None]


def conv_bounds(x, w, g, y, bias=None, stride=1, padding=0, pad_value=0.0, groups=1):
    """[(Σ|tᵢ|, reduction length)] of conv2d's y, ∂x, ∂w (and ∂b), the gradients allowing for Winograd where
    the compiled path may take it."""
    o, cg, kh, kw = w.shape
    n, _, oh, ow = y.shape
    terms = [cg * kh * kw + 1, o * kh * kw, n * oh * ow, n * oh * ow]
    sizes = conv_magnitudes(x, w, g, bias, stride, padding, pad_value, groups)
    if groups == 1 and (kh, kw) == (3, 3) and stride == 1 and config.winograd:
        terms[1:3] = [t + WINOGRAD_STEPS for t in terms[1:3]]
        sizes[1:3] = winograd_magnitudes(x, w, g, padding, pad_value)
    return list(zip(sizes, terms))
