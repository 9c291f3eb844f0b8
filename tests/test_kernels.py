"""Every compiled kernel against its NumPy reference: binary results identical, float results within float32
tolerance.  Skipped (with a reason) when the extension is not built."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minilab as ml
from minilab import F, config
from minilab.ops import packed
from minilab.testing import binary_maps

EXT = config.kernels()
needs_ext = pytest.mark.skipif(EXT is None, reason=f"extension not built: {config.reason()}")
CHANNELS = st.sampled_from([1, 3, 7, 63, 64, 65, 130])


@pytest.fixture
def no_ext():
    with config.use(kernels=False):
        yield


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
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)


@needs_ext
@given(binary_conv_cases(), st.sampled_from([1, 2]))
def test_packed_kernel_is_bit_exact(case, threads):
    x, w, stride, padding, pad_value = case
    from minilab.fast.packed import binary_conv2d_packed
    ref = packed.binary_conv2d_reference(x, w, stride, padding, pad_value)
    got = binary_conv2d_packed(x, w, stride, padding, pad_value, threads=threads)
    np.testing.assert_array_equal(got, ref)


@needs_ext
@given(st.integers(1, 9), st.integers(1, 19), st.integers(1900, 4200), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_bgemm_long_reductions_do_not_overflow_its_counters(m, n, k, p_differ, seed):
    """Reductions longer than 31 words (the AVX2 path's byte counters), up to every bit differing."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((m, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    b = np.where(rng.random((n, k)) < p_differ, -1.0, 1.0).astype(np.float32) * a[rng.integers(0, m)]
    want = a.astype(np.int64) @ b.T.astype(np.int64)
    bt = EXT.pack_weights(np.ascontiguousarray(b[:, :, None, None]))
    np.testing.assert_array_equal(EXT.bgemm(packed.packbits_rows(a), bt, n, k), want)


@needs_ext
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


@needs_ext
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
    np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(x.grad, gx, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(w.grad, gw, rtol=1e-5, atol=1e-3)


def assert_ext_matches_numpy(run):
    """run() once with the compiled kernels and once with the NumPy reference; float32-close results."""
    fast = run()
    with config.use(kernels=False):
        slow = run()
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _float_case(draw_seed, shape):
    return np.random.default_rng(draw_seed).standard_normal(shape).astype(np.float32)


@needs_ext
@given(st.integers(1, 3), st.integers(1, 6), st.integers(3, 9), st.sampled_from([1, 3]), st.integers(1, 2),
       st.integers(0, 2**31))
def test_float_conv_kernels_match_numpy(n, c, h, k, stride, seed):
    x = _float_case(seed, (n, c, h, h + 1))
    w = _float_case(seed + 1, (4, c, k, k))
    g = None

    def run():
        X, W = ml.Tensor(x, requires_grad=True), ml.Tensor(w, requires_grad=True)
        y = F.conv2d(X, W, None, stride, k // 2)
        nonlocal g
        g = _float_case(seed + 2, y.shape) if g is None else g
        y.backward(g)
        return y.data, X.grad, W.grad

    assert_ext_matches_numpy(run)


@needs_ext
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 2), st.integers(1, 2), st.integers(2, 9),
       st.integers(0, 2**31))
def test_depthwise_and_lab_kernels_match_numpy(n, c, m, stride, h, seed):
    x = _float_case(seed, (n, c, h, h + 2))
    w = _float_case(seed + 1, (c * m, 1, 3, 3))
    b = _float_case(seed + 2, (c * m,))

    def run():
        X, W, B = (ml.Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(X, W, B, stride, 1, groups=c)
        y.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        outs = [y.data, X.grad, W.grad, B.grad]
        if m == 2:
            beta = ml.Tensor(np.float32(0.7), requires_grad=True)
            X.grad = None
            z = F.lab(X, W, B, beta)
            z.backward(np.sin(np.arange(z.size, dtype=np.float32)).reshape(z.shape))
            outs += [z.data, X.grad, beta.grad]
        return outs

    assert_ext_matches_numpy(run)


def test_no_ext_environment_falls_back_with_one_warning():
    code = ("import warnings, minilab, minilab.ops;"
            "from minilab import config; print(config.kernels() is None, config.reason())")
    env = dict(os.environ, MINILAB_NO_EXT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("True MINILAB_NO_EXT")
    assert out.stderr.count("using the pure-NumPy reference ops") == 1


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []


@needs_ext
def test_native_build_uses_the_fastest_popcount_this_cpu_has():
    isa = EXT.isa()
    assert isa in ("avx512-vpopcntdq", "neon", "avx2", "portable")
    if EXT.built_portable():
        assert isa == "portable"
        pytest.skip("a portable build was requested (MINILAB_PORTABLE=1)")
    flags = _cpu_flags()
    if platform.machine() == "aarch64":
        assert isa == "neon"
    elif "avx512_vpopcntdq" in flags:
        assert isa == "avx512-vpopcntdq"
    elif "avx2" in flags:
        assert isa == "avx2"


@needs_ext
def test_bench_cli_reports_ratios(capsys):
    import json

    from minilab.bench import main
    assert main(["kernels", "--repeat", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in result["binary_conv"]] == ["64ch 56x56", "128ch 28x28", "256ch 14x14", "512ch 7x7"]
    assert all(r["ratio"] > 0 and r["binary_gbmacs"] > 0 for r in result["binary_conv"])
    assert main(["train", "--arch", "labbnn", "--image-size", "32", "--batch-size", "4", "--width", "0.25",
                 "--steps", "2", "--rounds", "1", "--threads", "1", "--binarizer", "lab"]) == 0
    out = capsys.readouterr().out
    assert "labbnn" in out and "speed-up" in out


@needs_ext
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 7), st.integers(0, 2**31))
def test_prelu_kernel_is_exact(n, c, h, seed):
    x = _float_case(seed, (n, c, h, h))
    a = _float_case(seed + 1, (c,))
    want = np.where(x > 0, x, a.reshape(1, -1, 1, 1) * x)
    np.testing.assert_array_equal(EXT.prelu_forward(x, a), want)


@needs_ext
@given(st.integers(1, 5), st.integers(1, 4), st.integers(3, 11), st.integers(1, 2), st.integers(0, 2**31))
def test_threaded_im2col_col2im_and_sign_are_identical(n, c, h, stride, seed):
    x = _float_case(seed, (n, c, h, h))
    one = EXT.im2col(x, 3, 3, stride, stride, 1, 1, 0.0, threads=1)
    np.testing.assert_array_equal(one, EXT.im2col(x, 3, 3, stride, stride, 1, 1, 0.0, threads=2))
    back = [EXT.col2im(one, np.zeros_like(x), 3, 3, stride, stride, 1, 1, threads=t) for t in (1, 2)]
    np.testing.assert_array_equal(back[0], back[1])
    y, inside = EXT.sign_ste_forward(x.reshape(-1), 1.0)
    np.testing.assert_array_equal(y, np.where(x.reshape(-1) >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(inside, np.abs(x.reshape(-1)) <= 1.0)


@needs_ext
@given(st.integers(1, 5), st.sampled_from([1, 3, 64, 65]), st.integers(2, 9), st.integers(0, 2**31))
def test_training_kernels_give_the_same_bits_with_any_thread_count(n, c, h, seed):
    """Every OpenMP split is over independent work (images, channels, rows or blocks), so threads change nothing."""
    ext = EXT
    x = _float_case(seed, (n, c, h, h))
    w = _float_case(seed + 1, (5, c, 3, 3))
    g = _float_case(seed + 2, (n, c, h, h))

    def run(t):
        x3, g3 = x.reshape(n, c, -1), g.reshape(n, c, -1)
        mean, var = ext.channel_mean_var(x3, t)
        invstd, gamma = (1 / np.sqrt(var + 1e-3)).astype(np.float32), np.full(c, 0.5, np.float32)
        m, v = np.zeros(w.size, np.float32), np.zeros(w.size, np.float32)
        adam_w = w.reshape(-1).copy()
        ext.adam_update(adam_w, np.resize(g, w.size), m, v,
                        0.9, 0.1, 0.999, 0.001, 0.1, 0.001, 0.01, 1e-7, t)
        q, mask, alpha = ext.magnitude_aware_sign_forward(w.reshape(5, -1), t)
        xb = np.where(x < 0, -1.0, 1.0).astype(np.float32)
        xpk = ext.pack_channels_last(xb, 1, 1, t)
        return [mean, var, ext.batchnorm_forward(x3, mean, invstd, gamma, gamma, t),
                *ext.batchnorm_backward(x3, g3, mean, invstd, gamma, t),
                *ext.maxpool2d_forward(x, 3, 3, 2, 2, 1, 1, (h - 1) // 2 + 1, (h - 1) // 2 + 1, True, t),
                ext.avgpool2d_forward(x, 2, 2, 2, 2, t), ext.avgpool2d_backward(x, 2, 2, 1, 1, h + 1, h + 1, t),
                *ext.sign_ste_forward(x.reshape(-1), 1.0, t), adam_w, m, v, q, mask, alpha,
                ext.magnitude_aware_sign_backward(w.reshape(5, -1), alpha, mask, t),
                xpk, ext.packed_im2col(xpk, 3, 3, 1, 1, h, h, t), ext.pack_weights(q.reshape(w.shape), t)]

    for a, b in zip(run(1), run(2)):
        np.testing.assert_array_equal(a, b)


@needs_ext
@given(st.integers(1, 2), st.sampled_from([2, 6, 64, 66, 130]), st.integers(1, 9), st.integers(1, 21),
       st.sampled_from(["channel", "official"]), st.integers(0, 1), st.sampled_from([1, 2]), st.booleans(),
       st.integers(0, 2**31))
def test_fused_lab_binarize_pack_equals_the_training_graph(n, c, h, w, pairing, p, threads, ties, seed):
    """lab_binarize_pack's bits are exactly F.lab's ±1 map — with the kernels and with the NumPy reference, both
    pairings, either sign of β, any size (border blocks, one-pixel maps, several words of channels).  With small
    integer inputs many differences r1 − r0 are exactly 0, where LAB gives −1.  (One input channel is not a
    depthwise conv to the training graph but a plain conv on the GEMM; the engine computes that case with it.)"""
    if pairing == "official" and c % 2:
        c += 1
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-2, 3, (n, c, h, w)).astype(np.float32)
        k = rng.integers(-1, 2, (2 * c, 1, 3, 3)).astype(np.float32)
        b = rng.integers(-1, 2, 2 * c).astype(np.float32)
    else:
        x, k, b = (rng.standard_normal(s).astype(np.float32) for s in ((n, c, h, w), (2 * c, 1, 3, 3), (2 * c,)))
    beta = np.float32(rng.choice([-1.3, 0.6, 2.0]))
    from minilab.engine.packed_conv import lab_pair_indices, unpack_channels_last
    i0, i1 = lab_pair_indices(c, pairing)
    got = unpack_channels_last(EXT.lab_binarize_pack(x, k.reshape(2 * c, 9), b, beta, i0, i1, p, threads),
                               c, (p, p))

    def training_graph():
        with ml.no_grad():
            return F.lab(ml.Tensor(x), ml.Tensor(k), ml.Tensor(b), ml.Tensor(beta), pairing).data

    np.testing.assert_array_equal(got, training_graph())
    with config.use(kernels=False):
        np.testing.assert_array_equal(got, training_graph())
    assert_short_way_gives_the_exact_bits(x, k, b, beta, pairing, p, threads)


def assert_short_way_gives_the_exact_bits(x, k, b, beta, pairing, p=1, threads=1):
    """lab_binarize_pack with lab_short_way's numbers gives exactly the words of the exact responses."""
    from minilab.engine.packed_conv import lab_pair_indices

    c = x.shape[1]
    i0, i1 = lab_pair_indices(c, pairing)
    kernels = np.ascontiguousarray(k.reshape(2 * c, 9), np.float32)
    exact = EXT.lab_binarize_pack(x, kernels, b, beta, i0, i1, p, threads)
    short = EXT.lab_binarize_pack(x, kernels, b, beta, i0, i1, p, threads, short_way=True)
    np.testing.assert_array_equal(short, exact)


LAB_REGIMES = ("gaussian", "near ties", "relu", "tiny", "huge", "spread", "nan and inf", "all zero")


def lab_regime(rng, regime, shape, c):
    """An input, kernels and biases of one numeric regime the short way's certificate must survive."""
    x = rng.standard_normal(shape).astype(np.float32)
    k = rng.standard_normal((2 * c, 1, 3, 3)).astype(np.float32)
    b = (rng.standard_normal(2 * c) * 0.1).astype(np.float32)
    if regime == "near ties":         # the two kernels of a channel differ in the last bits: r1 - r0 ~ rounding
        k[1::2] = np.nextafter(k[0::2], np.float32(np.inf)) if rng.random() < 0.5 else k[0::2]
        b[1::2] = b[0::2]
    elif regime == "relu":            # large zero regions: windows of nine zeros, where only the biases speak
        x = np.maximum(x - 0.8, 0).astype(np.float32)
        b[rng.random(2 * c) < 0.5] = 0
    elif regime == "tiny":            # subnormal products
        x = (x * 1e-36).astype(np.float32)
        k = (k * 1e-5).astype(np.float32)
    elif regime == "huge":            # sums near float32's range
        x = (x * 1e30).astype(np.float32)
        k = (k * 1e7).astype(np.float32)
    elif regime == "spread":          # one outlier per plane makes the bound loose everywhere else
        x.reshape(shape[0], c, -1)[:, :, 0] = 1e6
    elif regime == "nan and inf":
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, 3)] = [np.nan, np.inf, -np.inf]
    elif regime == "all zero":
        x[:] = 0
    return x, k, b


@needs_ext
@given(st.sampled_from(LAB_REGIMES), st.integers(1, 2), st.sampled_from([1, 3, 64, 70]), st.integers(1, 19),
       st.sampled_from([1, 5, 11, 12, 16, 17, 30, 33]), st.sampled_from(["channel", "official"]), st.integers(0, 1),
       st.sampled_from([1, 2]), st.sampled_from([1.0, -0.7, 3e-38, 1e-30, 2e30, 0.0, -0.0, np.inf]),
       st.integers(0, 2**31))
def test_short_way_bits_equal_the_training_graph(regime, n, c, h, w, pairing, p, threads, beta, seed):
    """The one-kernel difference decides a block only where lab_bound certifies its sign (or the window is all
    zeros); every regime that pushes r1 - r0 towards rounding, underflow or overflow still gives the training
    graph's bits: near ties, ReLU zeros, subnormal and near-overflow values, a NaN or an infinity, β tiny, huge,
    zero or infinite.  Widths from 1 to 33 cover the tiled and the flat kernels, full and partial segments."""
    if pairing == "official" and c % 2:
        c += 1
    rng = np.random.default_rng(seed)
    x, k, b = lab_regime(rng, regime, (n, c, h, w), c)
    beta = np.float32(beta)
    assert_short_way_gives_the_exact_bits(x, k, b, beta, pairing, p, threads)
    if c > 1:    # one channel is a plain conv to the training graph, not the depthwise kernel
        from minilab.engine.packed_conv import lab_pair_indices, unpack_channels_last

        i0, i1 = lab_pair_indices(c, pairing)
        kernels = np.ascontiguousarray(k.reshape(2 * c, 9))
        got = EXT.lab_binarize_pack(x, kernels, b, beta, i0, i1, p, threads, short_way=True)
        with ml.no_grad(), np.errstate(all="ignore"):
            want = F.lab(ml.Tensor(x), ml.Tensor(k), ml.Tensor(b), ml.Tensor(beta), pairing).data
        np.testing.assert_array_equal(unpack_channels_last(got, c, (p, p)), want)


@needs_ext
def test_short_way_certificate_is_needed_on_near_ties():
    """lab_short_way's numbers are the kernel differences; on near ties the plain sign of the short difference
    would be wrong somewhere, so the certificate is what keeps the kernel's bits exact (not the luck of the
    data)."""
    from minilab.engine.packed_conv import lab_pair_indices

    rng = np.random.default_rng(3)
    c, h, w = 64, 20, 20
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    k = rng.standard_normal((2 * c, 9)).astype(np.float32)
    k[1::2] = np.nextafter(k[0::2], np.float32(np.inf))
    b = np.zeros(2 * c, np.float32)
    i0, i1 = lab_pair_indices(c, "channel")
    numbers = EXT.lab_short_way(k, b, i0, i1)
    np.testing.assert_array_equal(numbers[:, :9], k[1::2] - k[0::2])
    # the short difference's own sign, as a kernel without the certificate would use it
    xp = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    d = sum(numbers[:, 3 * u + v, None, None] * xp[:, u:u + h, v:v + w] for u in range(3) for v in range(3))
    with ml.no_grad():
        exact = F.lab(ml.Tensor(x), ml.Tensor(k.reshape(2 * c, 1, 3, 3)), ml.Tensor(b), ml.Tensor(np.float32(1)),
                      "channel").data[0]
    assert np.any(np.where(d > 0, 1, -1) != exact)      # the uncertified sign flips some bits here
    assert_short_way_gives_the_exact_bits(x, k.reshape(2 * c, 1, 3, 3), b, np.float32(1), "channel")


@needs_ext
def test_fused_lab_binarize_pack_rejects_bad_shapes():
    x = np.zeros((1, 4, 5, 5), np.float32)
    maps = np.arange(4, dtype=np.int32)
    with pytest.raises(ValueError, match=r"kernels \(2C, 9\) = \(8, 9\)"):
        EXT.lab_binarize_pack(x, np.zeros((4, 9), np.float32), np.zeros(8, np.float32), 1.0, maps, maps, 1)
    with pytest.raises(ValueError, match="channel 3 pairs maps"):
        EXT.lab_binarize_pack(x, np.zeros((8, 9), np.float32), np.zeros(8, np.float32), 1.0, maps,
                                       maps + 5, 1)


@needs_ext
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 2), st.integers(1, 2), st.integers(1, 9),
       st.integers(0, 2**31))
def test_depthwise_forward_is_bit_identical_to_numpy(n, c, m, stride, h, seed):
    """The depthwise kernel adds its nine products and the bias in the NumPy reference's order (c > 1: one
    channel is a plain conv)."""
    c += 1
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((n, c, h, h + 3), (c * m, 1, 3, 3), (c * m,)))

    def run():
        with ml.no_grad():
            return F.conv2d(ml.Tensor(x), ml.Tensor(w), ml.Tensor(b), stride, 1, groups=c).data

    fast = run()
    with config.use(kernels=False):
        np.testing.assert_array_equal(fast, run())


@needs_ext
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


@needs_ext
def test_peak_rates_are_positive_and_threads_add_work():
    binary, flt = EXT.peak_rates(0.01, 1)
    assert binary > 1e8 and flt > 1e7
    assert all(r > 0 for r in EXT.peak_rates(0.01, 2))


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


@needs_ext
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


@needs_ext
def test_packed_conv_plan_rejects_inputs_of_another_shape():
    bt = EXT.pack_weights(np.ones((8, 64, 3, 3), np.float32))
    plan = EXT.PackedConvPlan(bt, 8, 64 * 9, (1, 64, 6, 6), (3, 3), (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"uint64 of shape \(1, 8, 8, 1\)"):
        plan.run(np.zeros((1, 9, 9, 1), np.uint64))
    with pytest.raises(ValueError, match="residual must be"):
        plan.run(np.zeros((1, 8, 8, 1), np.uint64), residual=np.zeros((1, 8, 6, 5), np.float32))
    with pytest.raises(ValueError, match="prelu has 3 slopes"):
        plan.run(np.zeros((1, 8, 8, 1), np.uint64), prelu=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="words per column"):
        EXT.PackedConvPlan(bt, 8, 64 * 9, (1, 65, 6, 6), (3, 3), (1, 1), (1, 1))
