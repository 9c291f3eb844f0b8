"""Max and average pooling's kernels against the reference: forward bit for bit, the max-pool backward's sums of
overlapping windows within float32 rounding."""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import minilab as ml
from minilab import F
from minilab.testing import arrays, assert_close_in_rounding
from minilab.ops.conv import output_size
from kernel_cases import needs_ext, reference

pytestmark = needs_ext


@given(arrays(shape=None, min_dims=4, max_dims=4, min_side=1, max_side=9, dtype=np.float32),
       st.sampled_from([(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1)]))
def test_max_pool_kernel_matches_the_reference(x, config):
    k, s, p = config
    assume(all(output_size(d, k, s, p) >= 1 for d in x.shape[2:]))
    x = x.copy()
    x.reshape(-1)[::3] = 0.5  # ties: the first maximum of a window takes the gradient
    g = np.cos(np.arange(np.prod([x.shape[0], x.shape[1], output_size(x.shape[2], k, s, p),
                                  output_size(x.shape[3], k, s, p)]), dtype=np.float32))

    def run():
        X = ml.Tensor(x, requires_grad=True)
        y = F.max_pool2d(X, k, s, p)
        y.backward(g.reshape(y.shape))
        return y.data, X.grad

    fast, slow = run(), reference(run)
    np.testing.assert_array_equal(fast[0], slow[0])
    # overlapping windows add their gradients in another order: a sum of at most ⌈k/s⌉² terms of the |g| they carry
    def absolute():
        X = ml.Tensor(x, requires_grad=True)
        F.max_pool2d(X, k, s, p).backward(np.abs(g).reshape(slow[0].shape))
        return X.grad

    assert_close_in_rounding(fast[1], slow[1], terms=(-(-k // s)) ** 2, magnitude=reference(absolute))


@given(arrays(shape=None, min_dims=4, max_dims=4, min_side=1, max_side=9, dtype=np.float32, low=-3, high=3),
       st.sampled_from([(2, 2, 0), (3, 2, 0), (3, 1, 0), (2, 1, 0), (1, 1, 0), (3, 2, 1)]))
def test_avg_pool_kernel_matches_the_reference_bit_for_bit(x, config):
    """The kernel adds the taps in the reference's order and divides once, forward and backward (also for
    overlapping windows); padded pooling stays on the reference path."""
    k, s, p = config
    assume(all(output_size(d, k, s, p) >= 1 for d in x.shape[2:]))
    g = np.cos(np.arange(np.prod([x.shape[0], x.shape[1], output_size(x.shape[2], k, s, p),
                                  output_size(x.shape[3], k, s, p)]), dtype=np.float32))

    def run():
        X = ml.Tensor(x, requires_grad=True)
        y = F.avg_pool2d(X, k, s, p)
        y.backward(g.reshape(y.shape))
        return y.data, X.grad

    for a, b in zip(run(), reference(run)):
        np.testing.assert_array_equal(a, b)
