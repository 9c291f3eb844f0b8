"""Known-answer tests of forward values: convolution layout (depthwise channel order), sign(0) = +1, the
binarizers' pseudo-gradients, LAB's two pairings and its ties, padding after binarization, Niblack by hand."""
import numpy as np
import pytest

import minilab as ml
from minilab import F
from minilab.testing import assert_close_in_rounding


def T(x, grad=False):
    return ml.Tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)


def naive_conv(x, w, b, stride, padding, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for b_ in range(n):
        for f in range(o):
            g = f // og
            for i in range(oh):
                for j in range(ow):
                    patch = xp[b_, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[b_, f, i, j] = (patch * w[f]).sum() + (b[f] if b is not None else 0)
    return out


@pytest.mark.parametrize("stride,padding,groups", [(1, 0, 1), (2, 1, 1), (1, 1, 2), (2, 1, 4), (1, 2, 1)])
def test_conv2d_matches_loops(stride, padding, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((8, 4 // groups, 3, 3))
    b = rng.standard_normal(8)
    got = F.conv2d(T(x), T(w), T(b), stride, padding, groups).data
    # each output sums (4 / groups)·3·3 products and a bias; Σ|terms| is the same convolution of |x|, |w|, |b|
    assert_close_in_rounding(got, naive_conv(x, w, b, stride, padding, groups), terms=4 // groups * 9 + 1,
                             magnitude=naive_conv(np.abs(x), np.abs(w), np.abs(b), stride, padding, groups))


def test_depthwise_output_channel_order_is_c_times_m_plus_k():
    x = np.zeros((1, 2, 3, 3))
    x[0, 1, 1, 1] = 1.0                       # only input channel 1 is non-zero
    w = np.zeros((6, 1, 3, 3))
    w[:, 0, 1, 1] = np.arange(6) + 1          # centre taps 1..6
    y = F.conv2d(T(x), T(w), None, 1, 1, groups=2).data
    # channel 1 with multiplier 3 feeds outputs 3, 4, 5
    np.testing.assert_array_equal(y[0, :, 1, 1], [0, 0, 0, 4, 5, 6])


def test_sign_of_zero_is_plus_one():
    assert F.sign_ste(T([0.0, -0.0, -1e-30, 2.0])).data.tolist() == [1, 1, -1, 1]
    assert F.approx_sign(T([0.0])).data.tolist() == [1]


def test_sign_ste_gradient_is_clipped_identity():
    x = T([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], grad=True)
    F.sign_ste(x).sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_approx_sign_gradient():
    x = T([-1.5, -0.5, 0.0, 0.25, 1.0], grad=True)
    F.approx_sign(x).sum().backward()
    np.testing.assert_allclose(x.grad, [0, 1, 2, 1.5, 0])


def test_magnitude_aware_sign_forward_and_stop_gradient():
    w = T(np.array([[[[0.5, -1.5]]], [[[-0.2, 0.4]]]]), grad=True)   # (2, 1, 1, 2)
    q = F.magnitude_aware_sign(w)
    np.testing.assert_allclose(q.data[:, 0, 0], [[1.0, -1.0], [-0.3, 0.3]])
    q.sum().backward()
    # α constant, STE mask |w| <= 1
    np.testing.assert_allclose(w.grad[:, 0, 0], [[1.0, 0.0], [0.3, 0.3]])


def lab_reference(x, w, b, beta, pairing):
    """LAB written the way the released TensorFlow code computes it (NHWC reshape to (2, C))."""
    n, c, h, wd = x.shape
    r = naive_conv(x, w, b, 1, 1, c)                     # (N, 2C, H, W), channel c·2 + m
    nhwc = r.transpose(0, 2, 3, 1)
    if pairing == "official":
        pairs = nhwc.reshape(n, h, wd, 2, c)             # row-major reshape, no transpose: the quirk
        z0, z1 = beta * pairs[..., 0, :], beta * pairs[..., 1, :]
    else:
        pairs = nhwc.reshape(n, h, wd, c, 2)
        z0, z1 = beta * pairs[..., 0], beta * pairs[..., 1]
    y = np.where(z1 > z0, 1.0, -1.0)                     # argmax; tie → index 0 → −1
    return y.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("pairing", ["channel", "official"])
@pytest.mark.parametrize("beta", [1.0, 0.3, -2.0])
def test_lab_forward_matches_the_argmax_definition(pairing, beta):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((8, 1, 3, 3))
    b = rng.standard_normal(8)
    got = F.lab(T(x), T(w), T(b), T(beta), pairing).data
    np.testing.assert_array_equal(got, lab_reference(x, w, b, beta, pairing))


def test_lab_official_pairing_compares_different_input_channels():
    x = np.zeros((1, 4, 3, 3))
    x[0, 2] = 1.0                        # only input channel 2 is non-zero
    w = np.zeros((8, 1, 3, 3))
    w[:, 0, 1, 1] = 1.0
    y_official = F.lab(T(x), T(w), T(np.zeros(8)), T(1.0), "official").data
    # official: output c' compares flat maps c' and 4 + c'; maps 4, 5 come from input channel 2
    assert (y_official[0, :2] == 1).all() and (y_official[0, 2:] == -1).all()
    y_channel = F.lab(T(x), T(w), T(np.zeros(8)), T(1.0), "channel").data
    assert (y_channel == -1).all()       # per channel both kernels are equal: a tie everywhere → −1


def test_lab_tie_gives_minus_one_and_negative_beta_flips():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    w = np.zeros((4, 1, 3, 3))
    assert (F.lab(T(x), T(w), T(np.zeros(4)), T(1.0)).data == -1).all()
    w = np.random.default_rng(1).standard_normal((4, 1, 3, 3))
    y_pos = F.lab(T(x), T(w), T(np.zeros(4)), T(1.0)).data
    y_neg = F.lab(T(x), T(w), T(np.zeros(4)), T(-1.0)).data
    np.testing.assert_array_equal(y_pos, -y_neg)


def test_lab_beta_gradient_formula():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)
    beta = T(0.7, grad=True)
    F.lab(T(x), T(w), T(b), beta).sum().backward()
    r = naive_conv(x, w, b, 1, 1, 2)
    d = r[:, 1::2] - r[:, 0::2]
    s = np.tanh(0.7 * d / 2)
    assert beta.grad == pytest.approx((d * (1 - s * s) / 2).sum())


def test_lab_errors():
    x = T(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="even"):
        F.lab(x, T(np.zeros((6, 1, 3, 3))), T(np.zeros(6)), T(1.0), "official")
    with pytest.raises(ValueError, match="weight must be"):
        F.lab(x, T(np.zeros((4, 1, 3, 3))), T(np.zeros(4)), T(1.0))
    with pytest.raises(ValueError, match="pairing"):
        F.lab(x, T(np.zeros((6, 1, 3, 3))), T(np.zeros(6)), T(1.0), "diagonal")


@pytest.mark.parametrize("pad_value", [0, 1])
def test_binary_conv_pads_after_binarization(pad_value):
    x = np.full((1, 1, 3, 3), -0.3)                    # binarizes to −1 everywhere
    w = np.ones((1, 1, 3, 3))
    y = F.binary_conv2d(T(x), T(w), 1, 1, pad_value, F.sign_ste, F.sign_ste).data[0, 0]
    # corner: 4 taps inside (−1 each) and 5 padded taps (pad_value each)
    assert y[0, 0] == -4 + 5 * pad_value
    assert y[1, 1] == -9
    assert y[0, 1] == -6 + 3 * pad_value


def test_binary_conv_bad_pad_value():
    with pytest.raises(ValueError, match="pad_value"):
        F.binary_conv2d(T(np.zeros((1, 1, 3, 3))), T(np.ones((1, 1, 3, 3))), pad_value=-1)


def test_niblack_threshold_by_hand():
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    # centre pixel: m = 4, neighbours' own local means are needed for s — compute them explicitly
    from minilab.ops.binarizers import local_stats
    m, s = local_stats(T(x))
    assert m.data[0, 0, 1, 1] == pytest.approx(4.0)
    assert m.data[0, 0, 0, 0] == pytest.approx((0 + 1 + 3 + 4) / 4)       # padding excluded from the mean
    means = m.data[0, 0]
    dev = (x[0, 0] - means) ** 2
    assert s.data[0, 0, 1, 1] == pytest.approx(np.sqrt(dev.mean() + 1e-9))
    y = F.niblack(T(x), k=-0.2).data[0, 0]
    assert y[1, 1] == (1 if 4 - (4 - 0.2 * s.data[0, 0, 1, 1]) >= 0 else -1)
    y = F.sauvola(T(x), k=0.5).data
    t = means * (1 + 0.5 * (s.data[0, 0] / s.data.max() - 1))
    np.testing.assert_array_equal(y[0, 0], np.where(x[0, 0] - t >= 0, 1, -1))
