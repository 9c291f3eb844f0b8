"""The training loop's compiled kernels against the NumPy reference ops: im2col/col2im and the chunked conv,
BatchNorm, max pooling, the sign and magnitude-aware quantizers, Adam.  Where the reference is a fixed sequence of
float32 operations the kernel must be bit-identical; sums in a different order must agree to float32 tolerance."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minilab as ml
from minilab import F, _backend
from minilab.ops import conv_chunked
from minilab.ops.conv import col2im, im2col, output_size, pad_input, unpad
from minilab.nn import Parameter
from minilab.optim import Adam, AdamW
from minilab.testing import arrays

needs_ext = pytest.mark.skipif(not _backend.available(), reason=f"extension not built: {_backend.reason}")
pytestmark = needs_ext


def reference(run):
    """run() with the NumPy reference ops."""
    saved, _backend.ext = _backend.ext, None
    try:
        return run()
    finally:
        _backend.ext = saved


def rand(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@st.composite
def conv_geometry(draw):
    """Kernel 1/3/7, stride 1/2, padding up to k//2, maps narrower and wider than the kernels' 8-column switch."""
    k = draw(st.sampled_from([1, 3, 7]))
    p = draw(st.integers(0, k // 2))
    s = draw(st.integers(1, 2))
    h = draw(st.integers(max(1, k - 2 * p), 13))
    w = draw(st.integers(max(1, k - 2 * p), 20))
    return dict(n=draw(st.integers(1, 4)), c=draw(st.sampled_from([1, 3, 5])), h=h, w=w, k=k, s=s, p=p,
                pad_value=draw(st.sampled_from([0.0, 1.0])), seed=draw(st.integers(0, 2**31)))


@given(conv_geometry())
def test_im2col_is_the_transposed_reference_and_col2im_its_adjoint(g):
    x = rand(g["seed"], (g["n"], g["c"], g["h"], g["w"]))
    k, s, p = g["k"], g["s"], g["p"]
    cols_t = _backend.ext.im2col(x, k, k, s, s, p, p, g["pad_value"])
    want = im2col(pad_input(x, (p, p), g["pad_value"]), k, k, (s, s), 1)[0]
    np.testing.assert_array_equal(cols_t, want.T)          # a copy: identical

    d = rand(g["seed"] + 1, cols_t.shape)
    got = _backend.ext.col2im(d, np.zeros_like(x), k, k, s, s, p, p)
    oh, ow = output_size(g["h"], k, s, p), output_size(g["w"], k, s, p)
    xp_shape = (g["n"], g["c"], g["h"] + 2 * p, g["w"] + 2 * p)
    ref = unpad(col2im(d.T[None], xp_shape, k, k, (s, s), 1, (oh, ow)), (p, p))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_im2col_checks_its_arguments():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        _backend.ext.im2col(x, 7, 7)
    with pytest.raises(ValueError, match="out must be"):
        _backend.ext.im2col(x, 3, 3, out=np.empty((5, 5), np.float32))
    with pytest.raises(ValueError, match="do not match"):
        _backend.ext.col2im(np.zeros((3, 4), np.float32), x.copy(), 3, 3)


@given(conv_geometry(), st.sampled_from([1, 4, 17]), st.sampled_from([64, 1 << 20]))
def test_chunked_conv_matches_the_reference_conv(g, out_channels, chunk_bytes):
    """Small chunk budgets force one image per chunk; the large one takes the whole batch at once."""
    x = rand(g["seed"], (g["n"], g["c"], g["h"], g["w"]))
    w = rand(g["seed"] + 1, (out_channels, g["c"], g["k"], g["k"]))
    k, s, p = g["k"], g["s"], g["p"]
    grad = None

    def run():
        nonlocal grad
        X, W = ml.Tensor(x, requires_grad=True), ml.Tensor(w, requires_grad=True)
        y = F.conv2d(X, W, None, s, p, pad_value=g["pad_value"])
        grad = rand(g["seed"] + 2, y.shape) if grad is None else grad
        y.backward(grad)
        return y.data, X.grad, W.grad

    saved = conv_chunked.CHUNK_BYTES
    conv_chunked.CHUNK_BYTES = chunk_bytes
    try:
        fast = run()
    finally:
        conv_chunked.CHUNK_BYTES = saved
    for a, b in zip(fast, reference(run)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_chunks_cover_the_batch_in_order():
    assert conv_chunked.image_chunks(10, 100, budget=350) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert conv_chunked.image_chunks(3, 10**9, budget=1) == [(0, 1), (1, 2), (2, 3)]
    assert conv_chunked.image_chunks(5, 1, budget=10**6) == [(0, 5)]


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
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


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
        for a, b in zip(fast, slow):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


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
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-6, atol=1e-6)  # overlapping windows: sum order


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
    np.testing.assert_allclose(q, q_ref, rtol=1e-6)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-6)
    rows = q.reshape(q.shape[0], -1)
    assert np.all(np.abs(rows) == np.abs(rows[:, :1]))          # each output channel is exactly ±α_o
    np.testing.assert_array_equal(np.sign(q), np.where(w >= 0, 1.0, -1.0))


@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 5), st.booleans(), st.booleans(),
       st.integers(0, 2**31))
def test_binary_pair_check_matches_numpy(n, c, o, spoil_x, spoil_w, seed):
    from minilab.ops.conv import is_binary_pair
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((n, c, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    w = (np.where(rng.random((o, c, 3, 3)) < 0.5, -1.0, 1.0) * rng.uniform(0.1, 2, (o, 1, 1, 1))).astype(np.float32)
    if spoil_x:
        x.reshape(-1)[rng.integers(x.size)] = 0.5
    if spoil_w:
        w.reshape(-1)[rng.integers(w.size)] *= 1.5
    assert is_binary_pair(x, w) == (not spoil_x and not spoil_w)
    assert reference(lambda: is_binary_pair(x, w)) == is_binary_pair(x, w)


@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=0.01), lambda p: Adam(p, lr=0.01, weight_decay=1e-3),
                                  lambda p: AdamW(p, lr=0.01, weight_decay=1e-2)])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_adam_kernel_is_bit_identical(make, clip):
    """Including the latent-weight clip the kernel applies in the same pass (np.clip in the reference)."""
    def run():
        p = Parameter(rand(0, (7, 5, 3)), clip=clip)
        opt = make([p])
        for step in range(5):
            p.grad = rand(step + 1, p.shape)
            opt.step()
        return p.data, opt.state[0]["m"], opt.state[0]["v"]

    for a, b in zip(run(), reference(run)):
        np.testing.assert_array_equal(a, b)
