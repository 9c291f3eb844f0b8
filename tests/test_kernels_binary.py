"""The binary convolution's kernels against their references: bit-packing, the XNOR-popcount GEMM (every
instruction set computes the same integers), its fused output transform, the packed conv plan, the training
graph's packed forward, and the ±1 check that lets a layer take it.  Binary results are compared bit for bit."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minilab as ml
from minilab import F, config
from minilab.testing import assert_close_in_rounding, binary_maps
from minilab.ops import packed
from kernel_cases import EXT, needs_ext

pytestmark = needs_ext


CHANNELS = st.sampled_from([1, 3, 7, 63, 64, 65, 130])


@st.composite
def binary_conv_cases(draw):
    c = draw(CHANNELS)
    o = draw(st.sampled_from([1, 5, 16, 17, 33]))
    k = draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(k, 9)), draw(st.integers(k, 9))
    n = draw(st.sampled_from([1, 2, 5]))
    x = draw(binary_maps(shape=(n, c, h, w)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    alpha = rng.uniform(0.1, 1.0, (o, 1, 1, 1)) if draw(st.booleans()) else np.ones((o, 1, 1, 1))
    wq = (np.where(rng.random((o, c, k, k)) < 0.5, -1.0, 1.0) * alpha).astype(np.float32)
    return x, wq, draw(st.integers(1, 2)), draw(st.integers(0, k // 2)), draw(st.sampled_from([0, 1]))


@given(binary_conv_cases())
def test_numpy_packed_reference_equals_float_conv(case):
    x, w, stride, padding, pad_value = case
    ref = F.conv2d(ml.Tensor(x.astype(np.float64)), ml.Tensor(w.astype(np.float64)), None, stride, padding,
                   pad_value=pad_value).data
    got = packed.binary_conv2d_reference(x, w, stride, padding, pad_value)
    terms = x.shape[1] * w.shape[2] * w.shape[3]   # ±1 products: |tᵢ| = 1
    assert_close_in_rounding(got, ref, terms=terms, magnitude=terms, dtype=np.float32)


@given(binary_conv_cases(), st.sampled_from([1, 2]))
def test_packed_kernel_is_bit_exact(case, threads):
    x, w, stride, padding, pad_value = case
    from minilab.fast.packed import binary_conv2d_packed
    ref = packed.binary_conv2d_reference(x, w, stride, padding, pad_value)
    got = binary_conv2d_packed(x, w, stride, padding, pad_value, threads=threads)
    np.testing.assert_array_equal(got, ref)


@given(st.integers(1, 9), st.integers(1, 19), st.integers(1900, 4200), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_bgemm_long_reductions_do_not_overflow_its_counters(m, n, k, p_differ, seed):
    """Reductions longer than 31 words (the AVX2 path's byte counters), up to every bit differing."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((m, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    b = np.where(rng.random((n, k)) < p_differ, -1.0, 1.0).astype(np.float32) * a[rng.integers(0, m)]
    want = a.astype(np.int64) @ b.T.astype(np.int64)
    bt = EXT.pack_weights(np.ascontiguousarray(b[:, :, None, None]))
    np.testing.assert_array_equal(EXT.bgemm(packed.packbits_rows(a), bt, n, k), want)


@given(st.integers(1, 70), st.integers(1, 40), st.integers(1, 200), st.integers(0, 2**31))
def test_bgemm_against_bitwise_count(m, n, k, seed):
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((m, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    b = np.where(rng.random((n, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    want = a.astype(np.int64) @ b.T.astype(np.int64)
    bt = EXT.pack_weights(np.ascontiguousarray(b[:, :, None, None]))
    a_bits = packed.packbits_rows(a)
    got = EXT.bgemm(a_bits, bt, n, k)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(packed.xnor_popcount_matmul(a_bits, packed.packbits_rows(b), k), want)
    scale, bias = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)
    # the fused output transform rounds exactly like the same float32 steps in NumPy
    expect = want.astype(np.float32) * scale + bias
    np.testing.assert_array_equal(EXT.bgemm(a_bits, bt, n, k, alpha=scale, beta=bias), expect)
    mean, invstd = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32) + 0.5
    expect = (np.maximum(want.astype(np.float32) * scale, 0) - mean) * invstd * scale + bias
    got = EXT.bgemm(a_bits, bt, n, k, alpha=scale, relu=1, mean=mean, invstd=invstd, gamma=scale,
                             beta=bias, pixels=m)
    np.testing.assert_array_equal(got[0], expect.T)
    slope = rng.random(n).astype(np.float32)
    v = want.astype(np.float32) * scale
    np.testing.assert_array_equal(EXT.bgemm(a_bits, bt, n, k, alpha=scale, prelu=slope),
                                  np.where(v > 0, v, slope * v))


def test_training_graph_uses_packed_forward_and_matches_float(monkeypatch):
    rng = np.random.default_rng(0)
    x = ml.Tensor(rng.standard_normal((2, 65, 6, 6)).astype(np.float32), requires_grad=True)
    w = ml.Tensor(rng.standard_normal((17, 65, 3, 3)).astype(np.float32), requires_grad=True)
    from minilab.fast import conv as fast_conv
    calls = []
    original = fast_conv.binary_conv2d_packed
    monkeypatch.setattr(fast_conv, "binary_conv2d_packed", lambda *a, **k: calls.append(1) or original(*a, **k))
    y = F.binary_conv2d(x, w, 2, 1, 0)
    assert calls, "the packed kernel was not used"
    y.sum().backward()
    gx, gw = x.grad.copy(), w.grad.copy()
    x.grad = w.grad = None
    with config.use(kernels=False):
        y_ref = F.binary_conv2d(x, w, 2, 1, 0)
        y_ref.sum().backward()
    # sums of ±1 products (the STE masks only drop terms): Σ|tᵢ| is at most the number of terms
    for got, want, terms in ((y.data, y_ref.data, 65 * 9), (gx, x.grad, 17 * 9), (gw, w.grad, 2 * 3 * 3)):
        assert_close_in_rounding(got, want, terms=terms, magnitude=terms)


@given(st.integers(1, 70), st.sampled_from([1, 7, 16, 33]), st.sampled_from([0, 9, 64]), st.integers(0, 2**31))
def test_popcount_transform_adds_the_residual_then_prelu(m, n, pixels, seed):
    """bgemm's output transform: BatchNorm, then + residual, then PReLU — NumPy's float32 steps in that order."""
    rng = np.random.default_rng(seed)
    m = m * pixels if pixels else m     # whole images: with 64 pixels, 8-row tiles are stored transposed
    k = 2
    a = rng.integers(0, 2**63, (m, k), dtype=np.uint64)
    bt = np.zeros((k, (n + 15) // 16 * 16), np.uint64)
    bt[:, :n] = rng.integers(0, 2**63, (k, n), dtype=np.uint64)
    alpha, gamma, beta, slope = (rng.uniform(-1, 2, n).astype(np.float32) for _ in range(4))
    mean, invstd = rng.normal(0, 3, n).astype(np.float32), rng.uniform(0.5, 2, n).astype(np.float32)
    plain = EXT.bgemm(a, bt, n, 64 * k, alpha=alpha, mean=mean, invstd=invstd, gamma=gamma, beta=beta,
                               pixels=pixels)
    residual = rng.standard_normal(plain.shape).astype(np.float32)
    got = EXT.bgemm(a, bt, n, 64 * k, alpha=alpha, mean=mean, invstd=invstd, gamma=gamma, beta=beta,
                             pixels=pixels, residual=residual, prelu=slope, threads=2)
    s = plain + residual
    np.testing.assert_array_equal(got, np.where(s > 0, s, slope.reshape((-1, 1) if pixels else -1) * s))
    with pytest.raises(ValueError, match="residual must be"):
        EXT.bgemm(a, bt, n, 64 * k, pixels=pixels, residual=np.zeros(residual.size + 1, np.float32))


@st.composite
def packed_conv_plans(draw):
    """A packed binary conv at one input shape, with a random output transform (each step on or off)."""
    c, o, k = draw(CHANNELS), draw(st.sampled_from([1, 5, 16, 17, 33, 70])), draw(st.sampled_from([1, 3]))
    n, h, w = draw(st.sampled_from([1, 2, 3])), draw(st.integers(k, 12)), draw(st.integers(k, 12))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, k // 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    vec = (lambda: rng.uniform(-1, 2, o).astype(np.float32) if draw(st.booleans()) else None)
    transform = {"alpha": vec(), "gamma": vec(), "beta": vec(), "relu": int(draw(st.booleans()))}
    if draw(st.booleans()):
        transform.update(mean=rng.normal(0, 3, o).astype(np.float32), invstd=rng.uniform(0.5, 2, o).astype(np.float32))
    x = np.where(rng.random((n, c, h, w)) < 0.5, -1.0, 1.0).astype(np.float32)
    wq = np.where(rng.random((o, c, k, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    return x, wq, stride, padding, transform, draw(st.booleans()), draw(st.sampled_from([1, 2, 3])), rng


@given(packed_conv_plans())
def test_packed_conv_plan_equals_im2col_then_bgemm(case):
    """The engine's one-call conv (gather + popcount GEMM in one parallel region) against the two calls it
    replaces, bit for bit: every transform step, the zero-padding correction, residual and PReLU, any threads."""
    x, wq, stride, padding, transform, fused, threads, rng = case
    n, c, h, w = x.shape
    o, k = wq.shape[0], wq.shape[2]
    xpk = EXT.pack_channels_last(x, padding, padding)
    bt = EXT.pack_weights(wq)
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    pattern = corr = None
    if padding:
        corr, pattern = packed.zero_padding_correction(packed.tap_sums_from_packed(bt, c, o, k * k), (h, w), (k, k),
                                                       (stride, stride), (padding, padding))
    extra = {}
    if fused:
        extra = {"residual": rng.standard_normal((n, o, oh, ow)).astype(np.float32),
                 "prelu": rng.uniform(-1, 1, o).astype(np.float32)}
    rows = EXT.packed_im2col(xpk, k, k, stride, stride, oh, ow)
    want = EXT.bgemm(rows, bt, o, c * k * k, row_pattern=None if pattern is None else np.tile(pattern, n),
                     pattern_corr=corr, pixels=oh * ow, **transform,
                     **{key: None if v is None else v.reshape(n, o, -1) if key == "residual" else v
                        for key, v in extra.items()}).reshape(n, o, oh, ow)
    plan = EXT.PackedConvPlan(bt, o, c * k * k, x.shape, (k, k), (stride, stride), (padding, padding),
                              row_pattern=pattern, pattern_corr=corr, **transform)
    assert (plan.batch, plan.out_channels, plan.out_h, plan.out_w) == (n, o, oh, ow)
    for _ in range(2):    # a plan is reused: the second call sees the same cached slopes
        np.testing.assert_array_equal(plan.run(xpk, threads=threads, **extra), want)
    if fused:   # the shortcut's own BatchNorm inside the transform: the BatchNorm kernel's bits, then the add
        bn = tuple(v.astype(np.float32) for v in (rng.normal(0, 1, o), rng.uniform(0.5, 2, o), rng.uniform(-2, 2, o),
                                                  rng.normal(0, 1, o)))
        normed = EXT.batchnorm_forward(extra["residual"].reshape(n, o, -1), *bn, threads).reshape(n, o, oh, ow)
        want = plan.run(xpk, threads=threads, residual=normed, prelu=extra["prelu"])
        for _ in range(2):
            np.testing.assert_array_equal(plan.run(xpk, threads=threads, residual_bn=bn, **extra), want)


def test_packed_conv_plan_rejects_inputs_of_another_shape():
    bt = EXT.pack_weights(np.ones((8, 64, 3, 3), np.float32))
    plan = EXT.PackedConvPlan(bt, 8, 64 * 9, (1, 64, 6, 6), (3, 3), (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"uint64 of shape \(1, 8, 8, 1\)"):
        plan.run(np.zeros((1, 9, 9, 1), np.uint64))
    with pytest.raises(ValueError, match="residual must be"):
        plan.run(np.zeros((1, 8, 8, 1), np.uint64), residual=np.zeros((1, 8, 6, 5), np.float32))
    with pytest.raises(ValueError, match="prelu has 3 slopes"):
        plan.run(np.zeros((1, 8, 8, 1), np.uint64), prelu=np.ones(3, np.float32))
    bn = (np.zeros(8, np.float32),) * 4
    with pytest.raises(ValueError, match="residual_bn needs a residual"):
        plan.run(np.zeros((1, 8, 8, 1), np.uint64), residual_bn=bn)
    with pytest.raises(ValueError, match="8 values each"):
        plan.run(np.zeros((1, 8, 8, 1), np.uint64), residual=np.zeros((1, 8, 6, 6), np.float32),
                 residual_bn=bn[:3] + (np.zeros(7, np.float32),))
    with pytest.raises(ValueError, match="words per column"):
        EXT.PackedConvPlan(bt, 8, 64 * 9, (1, 65, 6, 6), (3, 3), (1, 1), (1, 1))


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
