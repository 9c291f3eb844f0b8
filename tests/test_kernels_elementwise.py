"""The training loop's elementwise kernels against the reference ops: sign with the straight-through mask and the
magnitude-aware weight quantizer (whose α is a mean: within float32 rounding of its length), ReLU and PReLU."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minilab as ml
from minilab import F
from minilab.testing import arrays, assert_close_in_rounding
from kernel_cases import EXT, needs_ext, rand, reference

pytestmark = needs_ext


@given(arrays(shape=None, min_dims=2, max_dims=4, min_side=1, max_side=7, dtype=np.float32, low=-2, high=2))
def test_sign_and_magnitude_aware_kernels_match_the_reference(w):
    """sign_ste is bit-identical; the magnitude-aware α is a mean summed in a different order (float32-close),
    and given α its q = ±α and masked gradient are exact."""
    g = np.sin(np.arange(w.size, dtype=np.float32)).reshape(w.shape)

    def run(quantizer):
        W = ml.Tensor(w, requires_grad=True)
        y = quantizer(W)
        y.backward(g)
        return y.data, W.grad

    for a, b in zip(run(F.sign_ste), reference(lambda: run(F.sign_ste))):
        np.testing.assert_array_equal(a, b)
    (q, dw), (q_ref, dw_ref) = run(F.magnitude_aware_sign), reference(lambda: run(F.magnitude_aware_sign))
    terms = w[0].size + 1                                        # α = mean |w| of an output channel
    assert_close_in_rounding(q, q_ref, terms=terms)              # q = ±α: |q| is the sum's own size
    assert_close_in_rounding(dw, dw_ref, terms=terms + 1)
    rows = q.reshape(q.shape[0], -1)
    assert np.all(np.abs(rows) == np.abs(rows[:, :1]))          # each output channel is exactly ±α_o
    np.testing.assert_array_equal(np.sign(q), np.where(w >= 0, 1.0, -1.0))


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 7), st.integers(0, 2**31))
def test_prelu_kernel_is_exact(n, c, h, seed):
    x = rand(seed, (n, c, h, h))
    a = rand(seed + 1, (c,))
    want = np.where(x > 0, x, a.reshape(1, -1, 1, 1) * x)
    np.testing.assert_array_equal(EXT.prelu_forward(x, a), want)
