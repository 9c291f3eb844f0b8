"""The float convolution's kernels against the reference ops: im2col / col2im, the chunked im2col + GEMM conv,
the float32 GEMM on the kernels' threads, and the Winograd F(2x2, 3x3) backward.  Copies are compared bit for
bit, sums within float32 rounding of their length and magnitude (minilab.testing.assert_close_in_rounding)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minilab as ml
from minilab import F, config
from minilab.testing import assert_close_in_rounding
from minilab.ops.conv import col2im, im2col, output_size, pad_input, unpad
from kernel_cases import EXT, WINOGRAD_STEPS, conv_bounds, needs_ext, rand, reference, winograd_magnitudes

if EXT is not None:
    from minilab.fast import conv_chunked, conv_winograd

pytestmark = needs_ext


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


@given(st.integers(1, 3), st.integers(1, 6), st.integers(3, 9), st.sampled_from([1, 3]), st.integers(1, 2),
       st.integers(0, 2**31))
def test_float_conv_kernels_match_numpy(n, c, h, k, stride, seed):
    x = rand(seed, (n, c, h, h + 1))
    w = rand(seed + 1, (4, c, k, k))
    g = None

    def run():
        X, W = ml.Tensor(x, requires_grad=True), ml.Tensor(w, requires_grad=True)
        y = F.conv2d(X, W, None, stride, k // 2)
        nonlocal g
        g = rand(seed + 2, y.shape) if g is None else g
        y.backward(g)
        return y.data, X.grad, W.grad

    fast, slow = run(), reference(run)
    for got, want, (size, length) in zip(fast, slow, conv_bounds(x, w, g, fast[0], None, stride, k // 2)):
        assert_close_in_rounding(got, want, terms=length, magnitude=size)


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
    size = unpad(col2im(np.abs(d).T[None], xp_shape, k, k, (s, s), 1, (oh, ow)), (p, p))   # Σ|tᵢ|
    assert_close_in_rounding(got, ref, terms=k * k, magnitude=size)


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
    s, p = g["s"], g["p"]
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
    for a, b, (size, length) in zip(fast, reference(run), conv_bounds(x, w, grad, fast[0], None, s, p, g["pad_value"])):
        assert_close_in_rounding(a, b, terms=length, magnitude=size)


def test_chunks_cover_the_batch_in_order():
    assert conv_chunked.image_chunks(10, 100, budget=350) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert conv_chunked.image_chunks(3, 10**9, budget=1) == [(0, 1), (1, 2), (2, 3)]
    assert conv_chunked.image_chunks(5, 1, budget=10**6) == [(0, 5)]


@given(st.integers(1, 5), st.integers(1, 4), st.integers(3, 11), st.integers(1, 2), st.integers(0, 2**31))
def test_threaded_im2col_col2im_and_sign_are_identical(n, c, h, stride, seed):
    x = rand(seed, (n, c, h, h))
    one = EXT.im2col(x, 3, 3, stride, stride, 1, 1, 0.0, threads=1)
    np.testing.assert_array_equal(one, EXT.im2col(x, 3, 3, stride, stride, 1, 1, 0.0, threads=2))
    back = [EXT.col2im(one, np.zeros_like(x), 3, 3, stride, stride, 1, 1, threads=t) for t in (1, 2)]
    np.testing.assert_array_equal(back[0], back[1])
    y, inside = EXT.sign_ste_forward(x.reshape(-1), 1.0)
    np.testing.assert_array_equal(y, np.where(x.reshape(-1) >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(inside, np.abs(x.reshape(-1)) <= 1.0)


# ------------------------------------------------------------------ the kernels' GEMM and the Winograd backward
needs_gemm = pytest.mark.skipif(not config.gemm_in_kernels(), reason="the kernels have no float GEMM to call")


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
    want, size = a @ b, np.abs(a) @ np.abs(b)   # Σ|tᵢ| of each dot product
    # Only the rounding level is promised across thread counts, not the bits: a thread's block of columns can
    # end inside one of the BLAS' register tiles, whose edge it computes with other micro-kernels (OpenBLAS'
    # Haswell kernels round columns 72..87 of a 129-wide C differently when a block ends at column 80).
    for la in layouts(a):
        for lb in layouts(b)[:2] + [b[:, ::-1][:, ::-1]]:
            got = EXT.sgemm(la, lb, threads=threads)
            assert_close_in_rounding(got, want, terms=k, magnitude=size)
    out = rand(seed + 2, (m, n))
    expect = want + out
    EXT.sgemm(a.T.copy().T, b, out=out, beta=1.0, threads=threads)   # accumulate
    assert_close_in_rounding(out, expect, terms=k + 1, magnitude=size + np.abs(expect - want))


@needs_gemm
@given(st.integers(1, 300), st.integers(1, 200), st.integers(1, 300), st.sampled_from([1, 2, 3, 4, 8]),
       st.integers(0, 2**31))
@settings(max_examples=40)
def test_sgemm_gives_the_same_bits_on_any_thread_count_for_a_given_split(m, k, n, parts, seed):
    # With the blocks fixed (`parts`), each block is the same BLAS call whichever thread makes it, or one thread
    # making them all: the split, not the thread count, decides the bits (minilab fixes it per machine).
    a, b = rand(seed, (m, k)), rand(seed + 1, (k, n))
    one = EXT.sgemm(a, b, threads=1, parts=parts)
    for threads in (2, 3):
        np.testing.assert_array_equal(EXT.sgemm(a, b, threads=threads, parts=parts), one)


needs_own_gemm = pytest.mark.skipif(EXT is None or EXT.own_sgemm() is None,
                                    reason="this kernel module has no float GEMM of its own (AVX-512 only)")


@needs_own_gemm
@pytest.mark.parametrize("m, k, n", [(12, 384, 32), (13, 385, 33), (3100, 20, 40), (70, 1000, 481), (5, 2, 1000),
                                     (64, 2688, 64), (1, 1, 1)])
def test_own_sgemm_across_its_blocks_matches_numpy_and_keeps_its_bits_however_c_is_cut(m, k, n):
    # The shapes cross the own GEMM's block edges: 12-row and 32-column tiles, k slices of at most 384 (two or
    # three slices, summed into C), 3072-row and 480-column blocks.  Every value of C sums its products in the
    # same order wherever it lies, so any split of C gives the same bits, and so does the BLAS' layout of A or B.
    a, b = rand(m, (m, k)), rand(k, (k, n))
    want, size = a @ b, np.abs(a) @ np.abs(b)
    assert EXT.use_own_sgemm(True) and EXT.sgemm_kind() == "own-avx512"
    whole = EXT.sgemm(a, b, threads=1, parts=1)
    assert_close_in_rounding(whole, want, terms=k, magnitude=size)
    for la in layouts(a):
        for lb in layouts(b)[:2]:
            for parts, threads in ((1, 1), (3, 1), (4, 2), (7, 3)):
                np.testing.assert_array_equal(EXT.sgemm(la, lb, threads=threads, parts=parts), whole)
    out = rand(1, (m, n))
    expect = 0.5 * out + want
    EXT.sgemm(a, b, out=out, beta=0.5, threads=2)          # beta·C added in the first k slice only
    assert_close_in_rounding(out, expect, terms=k + 1, magnitude=size + np.abs(expect - want))


@needs_own_gemm
def test_own_sgemm_can_be_switched_off_for_the_blas():
    a, b = rand(0, (40, 30)), rand(1, (30, 50))
    try:
        assert not EXT.use_own_sgemm(False)
        assert EXT.sgemm_kind() in ("blas", None)
        if EXT.sgemm_kind() == "blas":
            assert_close_in_rounding(EXT.sgemm(a, b), a @ b, terms=30, magnitude=np.abs(a) @ np.abs(b))
    finally:
        assert EXT.use_own_sgemm(True)


@needs_own_gemm
def test_bench_kernels_times_the_own_gemm_against_numpys_matmul(monkeypatch, capsys):
    from minilab.benchmarks import kernels as bench

    monkeypatch.setattr(bench, "TRAINING_GEMMS", [("A^T B", 40, 50, 30, True, False), ("A B^T", 13, 70, 9, False, True)])
    EXT.use_own_sgemm(False)                 # the bench turns it on for its runs and leaves it as it found it
    try:
        result = bench.bench_float_gemm(EXT, repeat=1)
        assert EXT.sgemm_kind() != "own-avx512"
    finally:
        EXT.use_own_sgemm(True)
    assert [r["shape"] for r in result["rows"]] == ["40x50x30 A^T", "13x70x9 B^T"]
    assert all(r["own_gmacs"] > 0 and r["blas_gmacs"] > 0 and r["ratio"] > 0 for r in result["rows"])
    bench.print_kernels({"isa": EXT.isa(), "threads": 1, "binary_conv": [], "float_gemm": result,
                         "lab_depthwise": {"layer": "LAB", "kernel_ms": 1.0, "numpy_ms": 2.0, "ratio": 2.0}})
    out = capsys.readouterr().out
    assert "float GEMM, 1 thread: minilab's own (avx512) vs NumPy's matmul" in out and "13x70x9 B^T" in out


@needs_gemm
def test_sgemm_batch_and_argument_checks():
    a, b = rand(0, (16, 5, 7)), rand(1, (16, 7, 9))
    assert_close_in_rounding(EXT.sgemm_batch(a, b, threads=2), a @ b, terms=7, magnitude=np.abs(a) @ np.abs(b))
    bt = rand(2, (16, 9, 7)).transpose(0, 2, 1)                        # transposed matrices, strided stack
    assert_close_in_rounding(EXT.sgemm_batch(a, bt, threads=2), a @ bt, terms=7, magnitude=np.abs(a) @ np.abs(bt))
    with pytest.raises(ValueError, match="a is"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (5, 2)))
    with pytest.raises(ValueError, match="beta"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (4, 2)), beta=1.0)
    with pytest.raises(ValueError, match="out must be"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (4, 2)), out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="float32"):
        EXT.sgemm(np.ones((3, 4)), rand(0, (4, 2)))
    np.testing.assert_array_equal(EXT.sgemm(rand(0, (3, 0)), rand(0, (0, 2))), np.zeros((3, 2)))
    frozen = np.zeros((3, 2), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        EXT.sgemm(rand(0, (3, 4)), rand(0, (4, 2)), out=frozen)
    x = rand(0, (64, 64))
    with pytest.raises(ValueError, match="shares memory"):          # C written while A is still being read
        EXT.sgemm(x, rand(1, (64, 64)), out=x)
    one = np.zeros((5, 9), np.float32)
    stacked = np.lib.stride_tricks.as_strided(one, (16, 5, 9), (0, 36, 4))   # 16 products into one matrix
    with pytest.raises(ValueError, match="overlap"):
        EXT.sgemm_batch(a, b, out=stacked, threads=2)


BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)


G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def test_winograd_transforms_are_the_textbook_matrices():
    """U = G w Gᵀ, V = Bᵀ d B, Z = A ∂y Aᵀ, and back: ∂w = Gᵀ M G, ∂d = B N Bᵀ, computed here with the matrices."""
    ext = EXT
    w = rand(0, (2, 3, 3, 3))
    u = ext.winograd_filters(w)
    want = np.einsum("ik,ockl,jl->ijoc", G, w, G).reshape(16, 2, 3)
    size = np.einsum("ik,ockl,jl->ijoc", abs(G), abs(w), abs(G)).reshape(16, 2, 3)   # Σ|tᵢ|
    assert_close_in_rounding(u, want, terms=9, magnitude=size)
    back = np.einsum("ik,ijoc,jl->ockl", G, want.reshape(4, 4, 2, 3), G)
    # from u, itself rounded: twice the size of the sums over |want|
    back_size = 2 * np.einsum("ik,ijoc,jl->ockl", abs(G), abs(want).reshape(4, 4, 2, 3), abs(G))
    assert_close_in_rounding(ext.winograd_filter_grads(u), back, terms=16 + 9, magnitude=back_size)
    x = rand(1, (1, 1, 4, 4))                                  # padding 0: one tile, the whole map
    assert_close_in_rounding(ext.winograd_input_tiles(x, 0)[:, 0, 0], (BT @ x[0, 0] @ BT.T).ravel(), terms=16,
                             magnitude=(abs(BT) @ abs(x[0, 0]) @ abs(BT).T).ravel())
    g = rand(2, (1, 1, 2, 2))
    assert_close_in_rounding(ext.winograd_grad_tiles(g)[:, 0, 0], (AT.T @ g[0, 0] @ AT).ravel(), terms=4,
                             magnitude=(abs(AT).T @ abs(g[0, 0]) @ abs(AT)).ravel())
    n = ext.winograd_slabs(1, 1)
    n[:, 0, 0] = rand(3, 16)
    dx = ext.winograd_input_grads(n, np.zeros((1, 1, 4, 4), np.float32), 0)
    assert_close_in_rounding(dx[0, 0], BT.T @ n[:, 0, 0].reshape(4, 4) @ BT, terms=16,
                             magnitude=abs(BT).T @ abs(n[:, 0, 0]).reshape(4, 4) @ abs(BT))


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
    size_x, size_w = winograd_magnitudes(x, wt, g, p, pad_value)
    assert_close_in_rounding(dx, rx, terms=o * 9 + WINOGRAD_STEPS, magnitude=size_x)
    assert_close_in_rounding(dw, rw, terms=g.shape[0] * g.shape[2] * g.shape[3] + WINOGRAD_STEPS, magnitude=size_w)
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


@given(conv_geometry(), st.booleans(), st.sampled_from([1, 2]))
def test_frozen_conv_forward_equals_the_twins_forward(g, with_bias, threads):
    """bind_eval (the packed engine's frozen float convs: shapes checked once, nothing kept for a backward) gives
    the bits of the twin's own forward, for the dense twin and for the depthwise one where its kernel is 3 x 3."""
    from minilab.core.autograd import Context
    from minilab.fast.conv import ChunkedConvKernel, DepthwiseConvKernel

    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["n"], g["c"], g["h"], g["w"])).astype(np.float32)
    options = {"stride": (g["s"], g["s"]), "padding": (g["p"], g["p"]), "pad_value": g["pad_value"]}
    cases = [(ChunkedConvKernel, rng.standard_normal((4, g["c"], g["k"], g["k"])).astype(np.float32), 1)]
    if g["k"] == 3:
        cases.append((DepthwiseConvKernel, rng.standard_normal((2 * g["c"], 1, 3, 3)).astype(np.float32), g["c"]))
    for twin, w, groups in cases:
        params = (w, rng.standard_normal(w.shape[0]).astype(np.float32)) if with_bias else (w,)
        with config.use(threads=threads):
            want = twin.forward(Context(), x, *params, groups=groups, **options)
            got = twin.bind_eval(x.shape, *params, groups=groups, **options)(x)
        np.testing.assert_array_equal(got, want)
