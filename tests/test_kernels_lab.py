"""LAB's kernels against the training graph: the depthwise 3x3 convolution (forward bit for bit, backward within
float32 rounding), LAB's ArgMax, and the inference engine's fused LAB binarize-and-pack, whose short way (one
response instead of two, where a certificate allows) must give exactly the training graph's bits."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minilab as ml
from minilab import F, config
from minilab.testing import assert_close_in_rounding
from kernel_cases import EXT, conv_bounds, conv_magnitudes, needs_ext, rand, reference

pytestmark = needs_ext


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 2), st.integers(1, 2), st.integers(2, 9),
       st.integers(0, 2**31))
def test_depthwise_and_lab_kernels_match_numpy(n, c, m, stride, h, seed):
    x = rand(seed, (n, c, h, h + 2))
    w = rand(seed + 1, (c * m, 1, 3, 3))
    b = rand(seed + 2, (c * m,))

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

    fast, slow = run(), reference(run)
    g = np.cos(np.arange(fast[0].size, dtype=np.float32)).reshape(fast[0].shape)
    bounds = conv_magnitudes(x, w, g, b, stride, 1, groups=c)
    terms = [9 + 1, m * 9, n * fast[0].shape[2] * fast[0].shape[3], n * fast[0].shape[2] * fast[0].shape[3]]
    if c == 1:   # one input channel is a dense conv: its compiled backward may take Winograd, bounded as such
        bounds, terms = (list(t) for t in zip(*conv_bounds(x, w, g, fast[0], b, stride, 1)))
    for got, want, size, length in zip(fast[:4], slow[:4], bounds, terms):
        assert_close_in_rounding(got, want, terms=length, magnitude=size)
    if m == 2:   # LAB: the same bits; its backward scales ∂z by β·(1 − tanh²)/2 ≤ |β|/2 per map, then the
        np.testing.assert_array_equal(fast[4], slow[4])   # depthwise backward sums 2 maps × 9 taps into ∂x
        gz = np.sin(np.arange(fast[4].size, dtype=np.float32)).reshape(fast[4].shape)
        size_r = conv_magnitudes(x, w, np.zeros((n, 2 * c, h, h + 2)), b, 1, 1, groups=c)[0]   # LAB's stride 1
        gr = np.broadcast_to(np.abs(gz).max(axis=1, keepdims=True) * 0.35, size_r.shape)   # |β|/2 = 0.35
        size_x = conv_magnitudes(x, w, gr, b, 1, 1, groups=c)[1]
        size_r = size_r.max(axis=1, keepdims=True)                         # |r₁ − r₀| ≤ 2·this
        steps = 8   # tanh, its square, the products and differences before each sum
        assert_close_in_rounding(fast[5], slow[5], terms=2 * 9 + steps, magnitude=size_x)
        assert_close_in_rounding(fast[6], slow[6], terms=gz.size + 9 + steps, magnitude=np.sum(np.abs(gz) * size_r))


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


@given(st.sampled_from(LAB_REGIMES), st.integers(1, 2), st.sampled_from([1, 3, 64, 70]), st.integers(1, 19),
       st.sampled_from([1, 5, 11, 12, 16, 17, 30, 33]), st.sampled_from(["channel", "official"]), st.integers(0, 1),
       st.sampled_from([1, 2]), st.sampled_from([1.0, -0.7, 3e-38, 1e-30, 2e30, 0.0, -0.0, np.inf]),
       st.integers(0, 2**31))
def test_short_way_bits_equal_the_training_graph(regime, n, c, h, w, pairing, p, threads, beta, seed):
    """The one-kernel difference decides a block only where lab_bound certifies its sign (or the window is all
    zeros); every regime that pushes r1 - r0 towards rounding, underflow or overflow still gives the training
    graph's bits: near ties, ReLU zeros, subnormal and near-overflow values, a NaN or an infinity, β tiny, huge,
    zero or infinite.  Widths from 1 to 33 cover the tiled and the flat kernels, full and partial segments (on
    two threads these maps take the exact way: the test below covers the short way there)."""
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


@pytest.mark.parametrize("regime", LAB_REGIMES)
@pytest.mark.parametrize("threads", [2, 3])
def test_short_way_on_several_threads_gives_the_exact_bits(regime, threads):
    """On several threads the short way runs only on maps of LAB_SHARED_SHORT_WAY (28 x 28) pixels or more, with
    each thread's row maxima combined into the bounds: every regime on a 29 x 30 map, both pairings."""
    rng = np.random.default_rng(threads)
    for pairing in ("channel", "official"):
        x, k, b = lab_regime(rng, regime, (2, 66, 29, 30), 66)
        assert_short_way_gives_the_exact_bits(x, k, b, np.float32(1.0), pairing, 1, threads)


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


def test_fused_lab_binarize_pack_rejects_bad_shapes():
    x = np.zeros((1, 4, 5, 5), np.float32)
    maps = np.arange(4, dtype=np.int32)
    with pytest.raises(ValueError, match=r"kernels \(2C, 9\) = \(8, 9\)"):
        EXT.lab_binarize_pack(x, np.zeros((4, 9), np.float32), np.zeros(8, np.float32), 1.0, maps, maps, 1)
    with pytest.raises(ValueError, match="channel 3 pairs maps"):
        EXT.lab_binarize_pack(x, np.zeros((8, 9), np.float32), np.zeros(8, np.float32), 1.0, maps,
                                       maps + 5, 1)


@given(st.integers(1, 3), st.integers(2, 130), st.integers(1, 16), st.integers(1, 2), st.sampled_from([1, 2, 3]),
       st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**31))
def test_lab_and_conv_in_one_call_equal_the_two_calls(n, c, h, stride, threads, static, shortcut, short_way, seed):
    """PackedConvPlan.run_lab (LAB's loops and the conv's in one parallel region) gives the bits of
    LabPackPlan.run followed by PackedConvPlan.run: several words of channels, maps from 1 x 1 up, stride 2, with
    and without the residual and PReLU, the short way on and off, 1-3 threads, loops split statically or in
    chunks."""
    from minilab.engine.packed_conv import lab_pair_indices

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, h + 1)).astype(np.float32)
    kernels = rng.standard_normal((2 * c, 9)).astype(np.float32)
    bias = (rng.standard_normal(2 * c) * 0.1).astype(np.float32)
    i0, i1 = lab_pair_indices(c, "official")
    lab = EXT.LabPackPlan(kernels, bias, 1.0, i0, i1, short_way)
    o = int(rng.integers(1, 40))
    bt = EXT.pack_weights(np.where(rng.random((o, c, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32))
    plan = EXT.PackedConvPlan(bt, o, c * 9, x.shape, (3, 3), (stride, stride), (1, 1),
                              alpha=rng.uniform(0.5, 1.5, o).astype(np.float32))
    extra = {}
    if shortcut:
        extra = {"residual": rng.standard_normal((n, o, plan.out_h, plan.out_w)).astype(np.float32),
                 "prelu": rng.uniform(-1, 1, o).astype(np.float32)}
    previous = EXT.split_loops_statically(static)
    try:
        want = plan.run(lab.run(x, 1, threads), threads=threads, **extra)
        got = plan.run_lab(lab, x, 1, threads=threads, **extra)
    finally:
        EXT.split_loops_statically(previous)
    np.testing.assert_array_equal(got, want)


def test_lab_and_conv_in_one_call_reject_what_does_not_fit():
    lab = EXT.LabPackPlan(np.zeros((8, 9), np.float32), np.zeros(8, np.float32), 1.0, np.arange(4, dtype=np.int32),
                          np.arange(4, dtype=np.int32))
    bt = EXT.pack_weights(np.ones((8, 4, 3, 3), np.float32))
    plan = EXT.PackedConvPlan(bt, 8, 4 * 9, (1, 4, 6, 6), (3, 3), (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"LAB's packed input \(1, 9, 9, 1\) does not fit"):
        plan.run_lab(lab, np.zeros((1, 4, 7, 7), np.float32), 1)
    with pytest.raises(ValueError, match="expected C-contiguous float32"):
        plan.run_lab(lab, np.zeros((1, 5, 6, 6), np.float32), 1)
    with pytest.raises(ValueError, match="residual must be"):
        plan.run_lab(lab, np.zeros((1, 4, 6, 6), np.float32), 1, residual=np.zeros((1, 8, 6, 5), np.float32))
    with pytest.raises(TypeError):
        plan.run_lab(None, np.zeros((1, 4, 6, 6), np.float32), 1)
