"""The training loop's compiled kernels against the NumPy reference ops: im2col/col2im and the chunked conv,
BatchNorm, max pooling, the sign and magnitude-aware quantizers, Adam.  Where the reference is a fixed sequence of
float32 operations the kernel must be bit-identical; sums in a different order must agree to float32 tolerance.
tests/test_twins.py checks every registered twin on fixed cases; these are property tests over many shapes, through
the autograd graph (the dispatcher's choice included) with and without `config.use(kernels=False)`."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minilab as ml
from minilab import F, config
from minilab.ops.conv import col2im, im2col, output_size, pad_input, unpad
from minilab.nn import Parameter
from minilab.optim import Adam, AdamW
from minilab.testing import arrays

EXT = config.kernels()
pytestmark = pytest.mark.skipif(EXT is None, reason=f"extension not built: {config.reason()}")
if EXT is not None:
    from minilab.fast import conv_chunked, conv_winograd


def reference(run):
    """run() with the NumPy reference ops."""
    with config.use(kernels=False):
        return run()


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
    cols_t = EXT.im2col(x, k, k, s, s, p, p, g["pad_value"])
    want = im2col(pad_input(x, (p, p), g["pad_value"]), k, k, (s, s), 1)[0]
    np.testing.assert_array_equal(cols_t, want.T)          # a copy: identical

    d = rand(g["seed"] + 1, cols_t.shape)
    got = EXT.col2im(d, np.zeros_like(x), k, k, s, s, p, p)
    oh, ow = output_size(g["h"], k, s, p), output_size(g["w"], k, s, p)
    xp_shape = (g["n"], g["c"], g["h"] + 2 * p, g["w"] + 2 * p)
    ref = unpad(col2im(d.T[None], xp_shape, k, k, (s, s), 1, (oh, ow)), (p, p))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_im2col_checks_its_arguments():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        EXT.im2col(x, 7, 7)
    with pytest.raises(ValueError, match="out must be"):
        EXT.im2col(x, 3, 3, out=np.empty((5, 5), np.float32))
    with pytest.raises(ValueError, match="do not match"):
        EXT.col2im(np.zeros((3, 4), np.float32), x.copy(), 3, 3)


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
    from minilab.fast.conv import is_binary_pair
    from minilab.ops.packed import is_binary_pair as reference_check
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((n, c, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    w = (np.where(rng.random((o, c, 3, 3)) < 0.5, -1.0, 1.0) * rng.uniform(0.1, 2, (o, 1, 1, 1))).astype(np.float32)
    if spoil_x:
        x.reshape(-1)[rng.integers(x.size)] = 0.5
    if spoil_w:
        w.reshape(-1)[rng.integers(w.size)] *= 1.5
    assert is_binary_pair(x, w) == (not spoil_x and not spoil_w)
    assert reference_check(x, w) == is_binary_pair(x, w)


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


# ------------------------------------------------------------------ the kernels' GEMM and the Winograd backward
needs_gemm = pytest.mark.skipif(not config.gemm_in_kernels(), reason="the kernels found no BLAS GEMM to call")


def layouts(a):
    """The same matrix C-ordered, F-ordered (a transposed view for the BLAS) and as a column slice."""
    wide = np.zeros((a.shape[0], a.shape[1] + 3), np.float32)
    wide[:, 1:1 + a.shape[1]] = a
    return [a, np.asfortranarray(a), wide[:, 1:1 + a.shape[1]]]


@needs_gemm
@given(st.integers(1, 70), st.integers(0, 40), st.integers(1, 300), st.sampled_from([1, 2, 3]),
       st.integers(0, 2**31))
def test_sgemm_matches_numpy_in_every_layout_and_thread_count(m, k, n, threads, seed):
    a, b = rand(seed, (m, k)), rand(seed + 1, (k, n))
    want = a @ b
    # Only the rounding level is promised across thread counts, not the bits: a thread's block of columns can
    # end inside one of the BLAS' register tiles, whose edge it computes with other micro-kernels (OpenBLAS'
    # Haswell kernels round columns 72..87 of a 129-wide C differently when a block ends at column 80).
    for la in layouts(a):
        for lb in layouts(b)[:2] + [b[:, ::-1][:, ::-1]]:
            got = EXT.sgemm(la, lb, threads=threads)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    out = rand(seed + 2, (m, n))
    expect = want + out
    EXT.sgemm(a.T.copy().T, b, out=out, beta=1.0, threads=threads)   # accumulate
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)


@needs_gemm
def test_sgemm_batch_and_argument_checks():
    a, b = rand(0, (16, 5, 7)), rand(1, (16, 7, 9))
    np.testing.assert_allclose(EXT.sgemm_batch(a, b, threads=2), a @ b, rtol=1e-5, atol=1e-5)
    bt = rand(2, (16, 9, 7)).transpose(0, 2, 1)                        # transposed matrices, strided stack
    np.testing.assert_allclose(EXT.sgemm_batch(a, bt, threads=2), a @ bt, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="a is"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (5, 2)))
    with pytest.raises(ValueError, match="beta"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (4, 2)), beta=1.0)
    with pytest.raises(ValueError, match="out must be"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (4, 2)), out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="float32"):
        EXT.sgemm(np.ones((3, 4)), rand(0, (4, 2)))
    np.testing.assert_array_equal(EXT.sgemm(rand(0, (3, 0)), rand(0, (0, 2))), np.zeros((3, 2)))


BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def test_winograd_transforms_are_the_textbook_matrices():
    """U = G w Gᵀ, V = Bᵀ d B, Z = A ∂y Aᵀ, and back: ∂w = Gᵀ M G, ∂d = B N Bᵀ, computed here with the matrices."""
    ext = EXT
    w = rand(0, (2, 3, 3, 3))
    u = ext.winograd_filters(w)
    want = np.einsum("ik,ockl,jl->ijoc", G, w, G).reshape(16, 2, 3)
    np.testing.assert_allclose(u, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ext.winograd_filter_grads(u), np.einsum("ik,ijoc,jl->ockl", G, want.reshape(4, 4, 2, 3), G),
                               rtol=1e-6, atol=1e-5)
    x = rand(1, (1, 1, 4, 4))                                  # padding 0: one tile, the whole map
    np.testing.assert_allclose(ext.winograd_input_tiles(x, 0)[:, 0, 0], (BT @ x[0, 0] @ BT.T).ravel(), rtol=1e-6,
                               atol=1e-6)
    g = rand(2, (1, 1, 2, 2))
    np.testing.assert_allclose(ext.winograd_grad_tiles(g)[:, 0, 0], (AT.T @ g[0, 0] @ AT).ravel(), rtol=1e-6,
                               atol=1e-6)
    n = ext.winograd_slabs(1, 1)
    n[:, 0, 0] = rand(3, 16)
    dx = ext.winograd_input_grads(n, np.zeros((1, 1, 4, 4), np.float32), 0)
    np.testing.assert_allclose(dx[0, 0], BT.T @ n[:, 0, 0].reshape(4, 4) @ BT, rtol=1e-6, atol=1e-6)


@given(n=st.integers(1, 3), c=st.sampled_from([1, 3, 17, 64, 65]), o=st.sampled_from([1, 5, 64]),
       h=st.integers(1, 11), w=st.integers(1, 11), p=st.integers(0, 2), pad_value=st.sampled_from([0.0, 1.0]),
       threads=st.sampled_from([1, 2]), budget=st.sampled_from([1, 1 << 30]), seed=st.integers(0, 2**31))
def test_winograd_backward_matches_the_direct_backward(n, c, o, h, w, p, pad_value, threads, budget, seed):
    """Odd and even maps, padding 0-2 (odd outputs leave half-empty tiles), channels across the GEMM blocks,
    one image per chunk or all at once; float32 rounding is the only difference allowed."""
    assume(h + 2 * p >= 3 and w + 2 * p >= 3)
    x, wt = rand(seed, (n, c, h, w)), rand(seed + 1, (o, c, 3, 3))
    g = rand(seed + 2, (n, o, h + 2 * p - 2, w + 2 * p - 2))
    saved = conv_winograd.CHUNK_BYTES
    conv_winograd.CHUNK_BYTES = budget
    try:
        with config.use(threads=threads):
            dx, dw = conv_winograd.conv3x3_backward(x, wt, g, (p, p), pad_value, True)
    finally:
        conv_winograd.CHUNK_BYTES = saved
    rx, rw = conv_chunked.conv_backward(x, wt, g, (1, 1), (p, p), pad_value, True)
    np.testing.assert_allclose(dx, rx, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(rx).max()))
    np.testing.assert_allclose(dw, rw, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(rw).max()))
    assert conv_winograd.conv3x3_backward(x, wt, g, (p, p), pad_value, False)[0] is None


def test_winograd_is_used_where_it_pays():
    applicable = conv_winograd.applicable
    x16, w64 = np.zeros((64, 64, 16, 16)), np.zeros((64, 64, 3, 3))
    assert applicable(x16, w64, (1, 1), (1, 1))
    assert not applicable(x16, w64, (2, 2), (1, 1))                        # stride 2: im2col
    assert not applicable(x16, np.zeros((64, 64, 1, 1)), (1, 1), (0, 0))   # 1x1
    assert not applicable(x16, w64, (1, 1), (1, 0))                        # uneven padding
    # Bi-Real's last stage at 64 px: 64 tiles for 512 channels, the filter transforms would cost more
    assert not applicable(np.zeros((64, 512, 2, 2)), np.zeros((512, 512, 3, 3)), (1, 1), (1, 1))
