"""BatchNorm's kernels against the reference: the eval-mode affine map bit for bit (the engine relies on it),
the statistics and the training backward within float32 rounding of their reductions (the kernels accumulate in
double, the reference in float32 pairwise sums)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minilab as ml
from minilab import F
from minilab.testing import arrays, assert_close_in_rounding
from kernel_cases import needs_ext, reference

pytestmark = needs_ext


def bn_bounds(x, g, gamma, beta, running, training):
    """(Σ|tᵢ|, reduction length) of each output of batch_norm's forward and backward, in run()'s order:
    y, ∂x, ∂γ, ∂β, running mean, running variance.  The statistics are means over m = N·H·W values; y and ∂x
    then combine them in a few more roundings:
        x̂ = (x − μ)·invstd,   ∂x = γ·invstd·(g − mean g − x̂·mean(g·x̂))."""
    c = x.shape[1]
    axes = tuple(i for i in range(x.ndim) if i != 1)
    shape = [1] * x.ndim
    shape[1] = c
    m = x.size // c
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)
    if not training:
        mean, var = running[0].astype(np.float64), running[1].astype(np.float64)
    invstd = 1 / np.sqrt(var + 1e-5)
    ax = np.abs(x64) + np.abs(mean).reshape(shape)
    xhat = ax * invstd.reshape(shape)
    a_gamma, a_beta = np.abs(gamma).reshape(shape).astype(np.float64), np.abs(beta).reshape(shape)
    mean_g, mean_gx = np.abs(g64).mean(axis=axes), (np.abs(g64) * xhat).mean(axis=axes)
    # the variance's own error reaches invstd and through it every normalised value: the relative size of
    # Σ(x − μ)² against the variance bounds how far invstd may move
    spread = ((np.abs(x64) + np.abs(mean).reshape(shape)) ** 2).mean(axis=axes) / (var + 1e-5)
    scale = (1 + spread).reshape(shape)
    y = a_gamma * xhat * scale + a_beta
    dx = a_gamma * invstd.reshape(shape) * (np.abs(g64) + mean_g.reshape(shape) + xhat * mean_gx.reshape(shape)) * scale
    dgamma = (np.abs(g64) * xhat * scale).sum(axis=axes)
    dbeta = np.abs(g64).sum(axis=axes)
    run_mean = np.abs(running[0]) + np.abs(x64).mean(axis=axes)
    run_var = np.abs(running[1]) + (ax ** 2).mean(axis=axes) * m / max(m - 1, 1)
    steps = 8   # the roundings after the reduction (subtract, multiply, add, the square root, …)
    return [(y, m + steps), (dx, 2 * m + steps), (dgamma, m + steps), (dbeta, m), (run_mean, m + steps),
            (run_var, m + steps)]


@given(arrays(shape=None, min_dims=2, max_dims=4, min_side=2, max_side=6, dtype=np.float32),
       st.booleans())
def test_batchnorm_kernels_match_the_reference(x, training):
    c = x.shape[1]
    rng = np.random.default_rng(x.size)
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    running = rng.uniform(0.5, 1.5, (2, c)).astype(np.float32)

    def run():
        X, G, B = ml.Tensor(x, requires_grad=True), ml.Tensor(gamma, requires_grad=True), \
            ml.Tensor(beta, requires_grad=True)
        mean, var = running[0].copy(), running[1].copy()
        y = F.batch_norm(X, mean, var, G, B, training=training, momentum=0.9)
        y.backward(g)
        return y.data, X.grad, G.grad, B.grad, mean, var

    fast, slow = run(), reference(run)
    if not training:  # the affine map is the same float32 steps: bit for bit (the engine relies on it)
        np.testing.assert_array_equal(fast[0], slow[0])
    for a, b, (size, terms) in zip(fast, slow, bn_bounds(x, g, gamma, beta, running, training)):
        assert_close_in_rounding(a, b, terms=terms, magnitude=size)


@pytest.mark.parametrize("shape", [(3, 300, 2, 2), (2, 30, 7, 11), (2, 3, 40, 40), (2, 1, 1, 1)])
def test_batchnorm_kernels_across_channel_blocks(shape):
    """The kernels cut channels into blocks of ~1024 values per image (one channel when a map is larger): many
    small-map channels per block with a partial last block, several blocks of mid-sized maps, one channel per
    block for a map over 1024 values, and a single value."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)

    def run(training):
        X, G, B = ml.Tensor(x, requires_grad=True), ml.Tensor(gamma, requires_grad=True), \
            ml.Tensor(beta, requires_grad=True)
        mean, var = np.zeros(c, np.float32), np.ones(c, np.float32)
        y = F.batch_norm(X, mean, var, G, B, training=training, momentum=0.9)
        y.backward(g)
        return y.data, X.grad, G.grad, B.grad, mean, var

    for training in (True, False):
        fast, slow = run(training), reference(lambda: run(training))
        if not training:
            np.testing.assert_array_equal(fast[0], slow[0])
        start = np.stack([np.zeros(c, np.float32), np.ones(c, np.float32)])
        for a, b, (size, terms) in zip(fast, slow, bn_bounds(x, g, gamma, beta, start, training)):
            assert_close_in_rounding(a, b, terms=terms, magnitude=size)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_kernels_without_gamma_and_beta(training):
    """A BatchNorm without γ and β (QuickNet's stem) runs the same kernels with γ = 1, β = 0: in eval mode the
    normalised values bit for bit (x̂·1 + 0 is x̂), in training the input gradient within rounding, and no
    parameter gradients."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, 5, 9, 9)) * 2 - 1).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    running = rng.uniform(0.5, 1.5, (2, 5)).astype(np.float32)

    def run():
        X = ml.Tensor(x, requires_grad=True)
        mean, var = running[0].copy(), running[1].copy()
        y = F.batch_norm(X, mean, var, training=training, momentum=0.9)
        y.backward(g)
        return y.data, X.grad, mean, var

    fast, slow = run(), reference(run)
    if not training:
        np.testing.assert_array_equal(fast[0], slow[0])
    ones, zeros = np.ones(5, np.float32), np.zeros(5, np.float32)
    bounds = bn_bounds(x, g, ones, zeros, running, training)
    for a, b, (size, terms) in zip(fast, slow, [bounds[0], bounds[1], bounds[4], bounds[5]]):
        assert_close_in_rounding(a, b, terms=terms, magnitude=size)
    from minilab.core import dispatch
    from minilab.ops.norm import BatchNorm
    options = {"running_mean": running[0], "running_var": running[1], "training": training, "affine": False}
    assert dispatch.choose(BatchNorm, (x,), options).__name__ == "BatchNormKernel"
