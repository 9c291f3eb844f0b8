"""Every compiled twin registered with the dispatcher, against the NumPy reference it is bound to.

Each twin has a case here: inputs its `accepts` takes (odd sizes, ties, non-contiguous views where it takes
them), run through the twin's and the reference's forward and backward on their own contexts.  A twin declared
`exact` must give the same bits; the others agree to their declared float32 `rtol`.  A twin registered without a
case fails `test_every_twin_has_a_case`, so no compiled path lands untested."""
import copy

import numpy as np
import pytest

from minilab import config
from minilab.core import dispatch
from minilab.core.autograd import Context

EXT = config.kernels()          # loading the kernels registers their twins
pytestmark = pytest.mark.skipif(EXT is None, reason=f"extension not built: {config.reason()}")
TWINS = [twin for twins in dispatch.twins.values() for twin in twins]
CASES = {}


def case(twin_name):
    """Register a generator of inputs for the twin called `twin_name`: it yields (arrays, options[, settings]),
    settings being config.use keyword arguments for the run."""
    def register(fn):
        CASES[twin_name] = fn
        return fn
    return register


def normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


@case("SignSTEKernel")
def sign_cases(rng):
    x = normal(rng, (3, 4, 5, 6))
    x.reshape(-1)[:4] = [0.0, 1.0, -1.0, 0.5]               # sign(0) = +1 and the clip's edges
    yield (x,), {"clip": 1.0}
    yield (x.transpose(0, 1, 3, 2),), {"clip": 0.5}         # a non-contiguous view


@case("MagnitudeAwareSignKernel")
def magnitude_cases(rng):
    yield (normal(rng, (8, 3, 3, 3)),), {}
    yield (normal(rng, (7, 5)).T,), {}


@case("LabArgMaxKernel")
def lab_cases(rng):
    r = normal(rng, (2, 6, 5, 7))
    r[:, 1] = r[:, 0]                                        # a tie gives −1
    yield (r, np.asarray(1.5, np.float32)), {"pairing": "channel"}
    yield (r, np.asarray(-0.5, np.float32)), {"pairing": "channel"}


@case("ReLUKernel")
def relu_cases(rng):
    x = normal(rng, (2, 3, 40, 50))                          # more than one block of the kernel's split
    x.reshape(-1)[:4] = [0.0, -0.0, np.nan, -np.inf]         # max(±0, 0) = +0, NaN stays NaN
    yield (x,), {}
    yield (x,), {}, {"threads": 2}
    yield (x.transpose(0, 1, 3, 2),), {}                    # a non-contiguous view


@case("PReLUKernel")
def prelu_cases(rng):
    yield (normal(rng, (2, 3, 4, 5)), normal(rng, (3,))), {}


@case("AvgPoolKernel")
def avg_pool_cases(rng):
    x = normal(rng, (2, 3, 7, 9))
    yield (x,), {"kernel": (3, 3), "stride": (2, 2), "padding": (0, 0)}
    yield (x,), {"kernel": (2, 2), "stride": (1, 1), "padding": (0, 0)}
    for shape in ((2, 3, 7, 9), (1, 4, 8, 38)):     # the 2 × 2 / 2 path: odd sizes drop a row or column
        yield (normal(rng, shape),), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}


@case("MaxPoolKernel")
def max_pool_cases(rng):
    x = normal(rng, (2, 3, 7, 9))
    x.reshape(-1)[::3] = 0.5                                 # ties: the first maximum takes the gradient
    yield (x,), {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)}
    yield (x,), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}


@case("BatchNormKernel")
def batch_norm_cases(rng):
    x = normal(rng, (4, 3, 5, 6)) * 3 + 1
    gamma, beta = rng.uniform(0.5, 1.5, 3).astype(np.float32), normal(rng, (3,))
    for training in (True, False):
        yield (x, gamma, beta), {"running_mean": normal(rng, (3,)), "running_var": rng.uniform(0.5, 2, 3)
                                 .astype(np.float32), "training": training, "momentum": 0.9}
    for training in (True, False):                          # without γ and β (QuickNet's stem)
        yield (x,), {"running_mean": normal(rng, (3,)), "running_var": rng.uniform(0.5, 2, 3).astype(np.float32),
                     "training": training, "momentum": 0.9, "affine": False}


@case("PackedBinaryConvKernel")
def packed_conv_cases(rng):
    x = pm1(rng, (2, 65, 6, 7))                                # 65 channels: two 64-bit words, one partial
    w = pm1(rng, (5, 65, 3, 3)) * rng.uniform(0.1, 1, (5, 1, 1, 1)).astype(np.float32)
    for stride, pad_value in (((1, 1), 0.0), ((2, 2), 1.0)):
        yield (x, w), {"stride": stride, "padding": (1, 1), "pad_value": pad_value, "binary": True}
    yield (x, w), {"padding": (1, 1), "binary": True}, {"winograd": False}


@case("ChunkedConvKernel")
def chunked_conv_cases(rng):
    x, w, b = normal(rng, (3, 4, 7, 8)), normal(rng, (6, 4, 3, 3)), normal(rng, (6,))
    yield (x, w, b), {"stride": (1, 1), "padding": (1, 1)}                         # Winograd backward
    yield (x, w, b), {"stride": (1, 1), "padding": (1, 1)}, {"winograd": False}    # im2col + GEMM backward
    yield (x, normal(rng, (5, 4, 1, 1))), {"stride": (2, 2), "padding": (0, 0)}
    yield (x, w), {"stride": (2, 1), "padding": (1, 0), "pad_value": 1.0}


@case("DepthwiseConvKernel")
def depthwise_cases(rng):
    x = normal(rng, (2, 4, 6, 7))
    yield (x, normal(rng, (8, 1, 3, 3)), normal(rng, (8,))), {"stride": (1, 1), "padding": (1, 1), "groups": 4}
    yield (x, normal(rng, (4, 1, 3, 3))), {"stride": (2, 2), "padding": (0, 0), "groups": 4}


@case("AdamUpdateKernel")
def adam_cases(rng):
    w, g = normal(rng, (7, 5, 3)), normal(rng, (7, 5, 3))
    m, v = normal(rng, (7, 5, 3)) * 0.1, np.abs(normal(rng, (7, 5, 3))) * 0.01
    for clip in (None, 0.5):
        yield (w, g, m, v), {"lr": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "step": 3, "clip": clip}


def run_function(impl, arrays, options, seed):
    """Forward and backward of a Function (or a twin) on a fresh context: every output and every array it
    changed in place (BatchNorm's running statistics)."""
    arrays, options = copy.deepcopy(arrays), copy.deepcopy(options)
    ctx = Context()
    ctx.needs_input_grad = (True,) * len(arrays)
    y = impl.forward(ctx, *arrays, **options)
    grads = impl.backward(ctx, np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [y, *grads, *(v for v in options.values() if isinstance(v, np.ndarray))]


def run_update(fn, arrays, options):
    """A plain in-place function (Adam's update): the arrays after it ran."""
    arrays = copy.deepcopy(arrays)
    fn(*arrays, **options)
    return list(arrays)


def assert_agree(twin, got, want):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"result {i}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        if getattr(twin, "exact", False):
            np.testing.assert_array_equal(a, b, err_msg=f"result {i} of {twin.__name__} is not bit-identical")
        else:
            scale = max(1.0, float(np.abs(b).max(initial=0.0)))
            np.testing.assert_allclose(a, b, rtol=twin.rtol, atol=twin.rtol * scale,
                                       err_msg=f"result {i} of {twin.__name__}")


def test_every_twin_has_a_case():
    assert TWINS, "no twin is registered although the kernels loaded"
    missing = sorted(twin.__name__ for twin in TWINS if twin.__name__ not in CASES)
    assert not missing, f"compiled twins without a test case in tests/test_twins.py: {missing}"


@pytest.mark.parametrize("twin", TWINS, ids=lambda twin: twin.__name__)
def test_twin_matches_its_reference(twin):
    for seed, (arrays, options, *settings) in enumerate(CASES[twin.__name__](np.random.default_rng(0))):
        with config.use(**(settings[0] if settings else {})):
            assert twin.accepts(*arrays, **options), f"{twin.__name__} refuses its own case {seed}"
            assert dispatch.choose(twin.reference, arrays, options) is twin, "an earlier twin takes this case"
            if hasattr(twin, "run"):
                got, want = run_update(twin.run, arrays, options), run_update(twin.reference, arrays, options)
            else:
                got = run_function(twin, arrays, options, seed)
                want = run_function(twin.reference, arrays, options, seed)
        assert_agree(twin, got, want)


def test_twins_refuse_what_they_do_not_handle():
    """float64 always takes the reference path; so do options a twin does not declare it handles."""
    from minilab.ops.binarizers import SignSTE
    from minilab.ops.conv import Convolution
    from minilab.ops.lab import LabArgMax
    from minilab.ops.pool import AveragePooling, MaxPooling

    rng = np.random.default_rng(1)
    x64, w64 = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((3, 4, 3, 3))
    pool = {"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1)}
    assert dispatch.choose(SignSTE, (x64,), {"clip": 1.0}) is None
    assert dispatch.choose(Convolution, (x64, w64), {}) is None
    assert dispatch.choose(MaxPooling, (x64,), pool) is None
    r, beta = normal(rng, (2, 4, 3, 3)), np.asarray(1.0, np.float32)
    assert dispatch.choose(LabArgMax, (r, beta), {"pairing": "official"}) is None
    assert dispatch.choose(AveragePooling, (r,), pool) is None             # padded average pooling
    spoiled = pm1(rng, (2, 4, 5, 5))
    spoiled[0, 0, 0, 0] = 0.5                               # not ±1: the packed twin must not take it
    w = pm1(rng, (3, 4, 3, 3))
    assert dispatch.choose(Convolution, (spoiled, w), {"binary": True}).__name__ == "ChunkedConvKernel"
    assert dispatch.choose(Convolution, (spoiled * 0 + 1, w), {"binary": True}).__name__ == "PackedBinaryConvKernel"
    with config.use(packed_conv=False):
        assert dispatch.choose(Convolution, (spoiled * 0 + 1, w), {"binary": True}).__name__ == "ChunkedConvKernel"
    with config.use(kernels=False):
        assert dispatch.choose(Convolution, (spoiled * 0 + 1, w), {"binary": True}) is None


@pytest.mark.parametrize("twin", [t for t in TWINS if not hasattr(t, "run")], ids=lambda twin: twin.__name__)
def test_twin_gives_the_reference_answer_on_an_empty_batch(twin):
    """A batch of 0 images (the first axis): a twin either refuses it (the reference runs) or gives the reference's
    answer — never an error where the reference has none."""
    for seed, (arrays, options, *settings) in enumerate(CASES[twin.__name__](np.random.default_rng(0))):
        empty = (arrays[0][:0], *arrays[1:])
        with config.use(**(settings[0] if settings else {})):
            try:
                want = run_function(twin.reference, empty, options, seed)
            except ValueError:     # the reference refuses it too (batch statistics of no values)
                continue
            if twin.accepts(*empty, **options):
                assert_agree(twin, run_function(twin, empty, options, seed), want)

