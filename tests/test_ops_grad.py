"""Property-based gradient checks for every op (float64 central differences)."""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from minilab import F
from minilab.testing import arrays, assert_gradcheck, conv_configs, tensor_of


def away_from(x, points, margin=1e-3):
    return all(np.all(np.abs(x - p) > margin) for p in points)


@given(arrays(max_dims=3), st.data())
def test_elementwise_binary_ops(a, data):
    shape = a.shape
    b_shape = data.draw(st.sampled_from([shape, shape[-1:], (1,) * len(shape)]))
    b = data.draw(arrays(shape=b_shape))
    assume(np.all(np.abs(b) > 0.2))
    A, B = tensor_of(a), tensor_of(b)
    assert_gradcheck(F.add, A, B)
    assert_gradcheck(F.sub, A, B)
    assert_gradcheck(F.mul, A, B)
    assert_gradcheck(F.div, A, B)


@given(arrays(max_dims=3, low=0.3, high=2.0), st.sampled_from([2, 3, 0.5, -1.5]))
def test_neg_pow_abs_sqrt(x, p):
    X = tensor_of(x)
    assert_gradcheck(F.neg, X)
    assert_gradcheck(lambda x: F.pow(x, p), X)
    assert_gradcheck(F.abs, X)
    assert_gradcheck(F.sqrt, X)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.data())
def test_matmul_and_linear(n, k, m, data):
    a, b = data.draw(arrays(shape=(n, k))), data.draw(arrays(shape=(k, m)))
    assert_gradcheck(F.matmul, tensor_of(a), tensor_of(b))
    w, bias = data.draw(arrays(shape=(m, k))), data.draw(arrays(shape=(m,)))
    assert_gradcheck(F.linear, tensor_of(a), tensor_of(w), tensor_of(bias))


@given(arrays(min_dims=2, max_dims=4), st.data())
def test_shape_ops_and_reductions(x, data):
    X = tensor_of(x)
    axis = data.draw(st.sampled_from([None, 0, -1, (0, 1)]))
    keep = data.draw(st.booleans())
    assert_gradcheck(lambda x: F.sum(x, axis, keep), X)
    assert_gradcheck(lambda x: F.mean(x, axis, keep), X)
    assert_gradcheck(lambda x: F.reshape(x, (-1,)), X)
    assert_gradcheck(lambda x: F.transpose(x), X)
    assert_gradcheck(lambda x: F.flatten(x), X)
    assert_gradcheck(lambda x: F.getitem(x, (slice(None), 0)), X)
    assert_gradcheck(lambda x: F.concat([x, x * 2.0], axis=0), X)
    assert_gradcheck(F.amax, X)


@given(conv_configs(), st.booleans(), st.data())
def test_conv2d(cfg, bias, data):
    x = data.draw(arrays(shape=(cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])))
    w = data.draw(arrays(shape=(cfg["c_out"], cfg["c_in"] // cfg["groups"], cfg["kernel"], cfg["kernel"])))
    args = [tensor_of(x), tensor_of(w)] + ([tensor_of(data.draw(arrays(shape=(cfg["c_out"],))))] if bias else [])

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=cfg["stride"], padding=cfg["padding"], groups=cfg["groups"])

    assert_gradcheck(fn, *args)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 2), st.data())
def test_depthwise_conv2d_with_multiplier(c, m, stride, data):
    x = data.draw(arrays(shape=(2, c, 5, 6)))
    w = data.draw(arrays(shape=(c * m, 1, 3, 3)))
    b = data.draw(arrays(shape=(c * m,)))
    assert_gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=1, groups=c),
                     tensor_of(x), tensor_of(w), tensor_of(b))


@given(st.sampled_from([(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)]), st.data())
def test_pooling(cfg, data):
    k, s, p = cfg
    x = data.draw(arrays(shape=(2, 2, 5, 6)))
    # distinct values so max pooling has a unique arg-max in every window
    assume(len(np.unique(np.round(x, 4))) == x.size)
    X = tensor_of(x)
    assert_gradcheck(lambda x: F.avg_pool2d(x, k, s, p), X)
    assert_gradcheck(lambda x: F.max_pool2d(x, k, s, p), X)
    assert_gradcheck(lambda x: F.adaptive_avg_pool2d(x, 1), X)


@given(arrays(shape=(2, 3, 4, 4)), st.data())
def test_activations(x, data):
    assume(away_from(x, [0.0, -1.0, 1.0]))
    a = data.draw(arrays(shape=(3,)))
    assert_gradcheck(F.relu, tensor_of(x))
    assert_gradcheck(F.hardtanh, tensor_of(x))
    assert_gradcheck(F.prelu, tensor_of(x), tensor_of(a))


@given(arrays(shape=(4, 3, 2, 2)), st.booleans(), st.data())
def test_batch_norm(x, training, data):
    gamma = data.draw(arrays(shape=(3,), low=0.5, high=2.0))
    beta = data.draw(arrays(shape=(3,)))
    rm, rv = np.zeros(3), np.ones(3) * 1.5

    def fn(x, g, b):
        return F.batch_norm(x, rm.copy(), rv.copy(), g, b, training=training)

    assert_gradcheck(fn, tensor_of(x), tensor_of(gamma), tensor_of(beta), atol=1e-4)
    assert_gradcheck(lambda x: F.batch_norm(x, rm.copy(), rv.copy(), training=training), tensor_of(x), atol=1e-4)


@given(arrays(shape=(5, 4)), st.data())
def test_cross_entropy(z, data):
    target = np.array(data.draw(st.lists(st.integers(0, 3), min_size=5, max_size=5)))
    assert_gradcheck(lambda z: F.cross_entropy(z, target), tensor_of(z))


# ---- binarizers: the backward is checked against each declared surrogate -------------------------------------
@given(arrays(shape=(3, 4)), st.sampled_from([1.0, 1.25]))
def test_sign_ste_against_clipped_identity(x, clip):
    assume(away_from(x, [-clip, clip]))
    assert_gradcheck(lambda x: F.sign_ste(x, clip), tensor_of(x), surrogate=True)


@given(arrays(shape=(3, 4)))
def test_approx_sign_against_its_quadratic(x):
    assume(away_from(x, [-1.0, 0.0, 1.0]))
    assert_gradcheck(F.approx_sign, tensor_of(x), surrogate=True)


@given(arrays(shape=(3, 2, 3, 3), low=-1.5, high=1.5))
def test_xnor_weight_scale(w):
    assume(away_from(w, [-1.0, 0.0, 1.0]))
    assert_gradcheck(F.xnor_weight_scale, tensor_of(w), surrogate=True)


@given(arrays(shape=(2, 3, 5, 5)), st.sampled_from([(1, 0), (2, 1), (1, 1)]), st.data())
def test_binary_conv2d_with_every_binarizer(x, cfg, data):
    stride, pad_value = cfg
    assume(away_from(x, [-1.0, 1.0]))
    w = data.draw(arrays(shape=(4, 3, 3, 3), low=-1.5, high=1.5))
    assume(away_from(w, [-1.0, 0.0, 1.0]))
    for binarizer in (F.sign_ste, F.approx_sign):
        assume(binarizer is F.sign_ste or away_from(x, [0.0]))
        assert_gradcheck(lambda x, w: F.binary_conv2d(x, w, stride, 1, pad_value, binarizer, F.xnor_weight_scale),
                         tensor_of(x), tensor_of(w), surrogate=True)


@given(arrays(shape=(2, 4, 5, 5)), st.sampled_from(["channel", "official"]), st.data())
def test_lab_against_soft_argmax(x, pairing, data):
    """LAB's backward must equal the numerical gradient of tanh(β(r1 − r0)/2) — for x, kernels, bias and β."""
    w = data.draw(arrays(shape=(8, 1, 3, 3), low=-1, high=1))
    b = data.draw(arrays(shape=(8,), low=-1, high=1))
    beta = data.draw(st.floats(-3, 3).filter(lambda v: abs(v) > 0.1))
    assert_gradcheck(lambda x, w, b, beta: F.lab(x, w, b, beta, pairing),
                     tensor_of(x), tensor_of(w), tensor_of(b), tensor_of(np.array(beta)), surrogate=True)


@given(arrays(shape=(2, 2, 4, 5)), st.sampled_from(["niblack", "sauvola"]))
def test_local_threshold_binarizers(x, name):
    from minilab.ops.binarizers import local_stats
    m, s = local_stats(tensor_of(x, requires_grad=False))
    if name == "niblack":
        t = m.data - 0.2 * s.data
    else:
        t = m.data * (1 + 0.5 * (s.data / (s.data.max() + 1e-9) - 1))
        flat = np.sort(s.data.ravel())
        assume(flat[-1] - flat[-2] > 1e-3)   # a unique maximum of s (R's arg-max)
    assume(away_from(x - t, [-1.0, 1.0], 1e-3))
    assume(np.all(s.data > 1e-2))
    fn = F.niblack if name == "niblack" else F.sauvola
    assert_gradcheck(fn, tensor_of(x), surrogate=True, atol=1e-4)
