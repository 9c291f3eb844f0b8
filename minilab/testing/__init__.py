"""A testing kit for courses: the hypothesis strategies minilab's own suite uses, and assertion helpers.

An instructor can property-test a student's op in a few lines, e.g. a student's LAB (`student_lab`, with the
signature of `minilab.F.lab`)::

    import numpy as np
    from hypothesis import given
    import minilab
    from minilab.testing import arrays, assert_gradcheck, assert_matches_reference, tensor_of

    @given(arrays(shape=(2, 3, 5, 5)))
    def test_student_lab(x):
        rng = np.random.default_rng(0)
        inputs = [tensor_of(x), tensor_of(rng.standard_normal((6, 1, 3, 3))),      # x, weight (2C, 1, 3, 3),
                  tensor_of(rng.standard_normal(6)), tensor_of(np.array(1.0))]      # bias (2C,), β
        assert_matches_reference(student_lab, minilab.F.lab, *inputs)   # forward and every input gradient
        assert_gradcheck(student_lab, *inputs, surrogate=True)          # against tanh(β(r1 − r0)/2)
"""
import numpy as np
from hypothesis import assume  # noqa: F401  (re-exported for courses)
from hypothesis import strategies as st

from ..core.autograd import Tensor
from ..core.gradcheck import GradcheckError, gradcheck

__all__ = ["arrays", "binary_maps", "conv_configs", "assert_gradcheck", "assert_matches_reference", "tensor_of",
           "rounding_tolerance", "assert_close_in_rounding", "GradcheckError"]


@st.composite
def arrays(draw, shape=None, min_dims=1, max_dims=4, min_side=1, max_side=5, dtype=np.float64, low=-3.0,
           high=3.0, allow_noncontiguous=True):
    """Float arrays of the given (or a drawn) shape; some are non-contiguous views (strided or transposed),
    because ops that silently assume C order are a classic bug."""
    if shape is None:
        ndim = draw(st.integers(min_dims, max_dims))
        shape = tuple(draw(st.integers(min_side, max_side)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed"])) if allow_noncontiguous else "contiguous"
    if layout == "strided":
        big = rng.uniform(low, high, tuple(2 * s for s in shape)).astype(dtype)
        return big[tuple(slice(None, None, 2) for _ in shape)]
    if layout == "transposed" and len(shape) >= 2:
        return np.swapaxes(rng.uniform(low, high, shape[:-2] + (shape[-1], shape[-2])).astype(dtype), -1, -2)
    return rng.uniform(low, high, shape).astype(dtype)


@st.composite
def binary_maps(draw, shape=None, max_side=9):
    """±1 arrays (float32), with sign(0) = +1 never arising."""
    if shape is None:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, max_side)),
                 draw(st.integers(1, max_side)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


@st.composite
def conv_configs(draw, max_channels=6, max_side=7, groups=True):
    """A dict: n, c_in, c_out, h, w, kernel, stride, padding, groups — always a valid convolution."""
    g = draw(st.sampled_from([1, 1, 2, 3])) if groups else 1
    c_in = g * draw(st.integers(1, max(1, max_channels // g)))
    c_out = g * draw(st.integers(1, max(1, max_channels // g)))
    kernel = draw(st.sampled_from([1, 2, 3]))
    padding = draw(st.integers(0, kernel // 2))
    stride = draw(st.integers(1, 2))
    h = draw(st.integers(max(1, kernel - 2 * padding), max_side))
    w = draw(st.integers(max(1, kernel - 2 * padding), max_side))
    return dict(n=draw(st.integers(1, 3)), c_in=c_in, c_out=c_out, h=h, w=w, kernel=kernel, stride=stride,
                padding=padding, groups=g)


def tensor_of(array, requires_grad=True):
    return Tensor(np.array(array), requires_grad=requires_grad, dtype=np.asarray(array).dtype)


def assert_gradcheck(fn, *inputs, surrogate=False, atol=1e-5, rtol=1e-4):
    """Raise AssertionError with the worst entry when fn's backward disagrees with central differences."""
    gradcheck(fn, *inputs, surrogate=surrogate, atol=atol, rtol=rtol)


def assert_matches_reference(fn, reference, *inputs, atol=1e-6, rtol=1e-5, seed=0):
    """fn and reference agree on the forward value and on every input gradient (for a random output gradient)."""
    def run(f):
        ins = [Tensor(x.data.copy(), requires_grad=x.requires_grad, dtype=x.dtype) if isinstance(x, Tensor) else x
               for x in inputs]
        out = f(*ins)
        g = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        out.backward(g)
        return out.data, [x.grad for x in ins if isinstance(x, Tensor) and x.requires_grad]

    got, got_grads = run(fn)
    want, want_grads = run(reference)
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg="forward values differ")
    for i, (a, b) in enumerate(zip(got_grads, want_grads)):
        if b is None:
            continue
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=f"gradient of input {i} differs")


def rounding_tolerance(magnitude, terms=1, dtype=np.float32):
    """How far apart two correct floating-point evaluations of the same quantity may lie.

    A sum of n terms computed in any order is within γₙ·Σ|tᵢ| of the exact sum, with γₙ = n·u / (1 − n·u) and
    u = eps/2 the unit roundoff of `dtype` (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1).  Two
    evaluations (two orders, two thread counts, two ranks) may each err by that much in opposite directions, so
    they agree to within

        2·γₙ·magnitude

    where `magnitude` bounds Σ|tᵢ| (for a product or a single rounding, |value| with terms=1).  `terms` is the
    length of the longest reduction that made the value.  Both may be arrays (broadcast).  The bound follows the
    data: it never hides an error larger than float arithmetic can make, and no NumPy or CPU change can cross it.
    """
    u = np.finfo(dtype).eps / 2
    n = np.asarray(terms, dtype=np.float64)
    if np.any(n * u >= 1):
        raise ValueError(f"{int(np.max(n))} terms is too long a sum for {np.dtype(dtype).name} to bound")
    return 2 * (n * u / (1 - n * u)) * np.abs(np.asarray(magnitude, dtype=np.float64))


def assert_close_in_rounding(actual, expected, terms=1, magnitude=None, dtype=None, err_msg=""):
    """Assert |actual − expected| ≤ rounding_tolerance(magnitude, terms) elementwise.

    `magnitude` defaults to max(|actual|, |expected|) entry by entry, right when the value is itself the size of
    the terms it was summed from; pass Σ|tᵢ| (or a bound of it) when terms cancel.  `dtype` defaults to the
    lower precision of the two arrays."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if dtype is None:
        floats = [a.dtype for a in (actual, expected) if a.dtype.kind == "f"]
        dtype = min(floats, key=lambda d: d.itemsize, default=np.dtype(np.float64))
    if magnitude is None:
        magnitude = np.maximum(np.abs(actual), np.abs(expected))
    bound = rounding_tolerance(magnitude, terms, dtype)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bad = ~(diff <= bound)
    if np.any(bad):
        i = np.unravel_index(np.argmax(np.where(bad, diff - bound, -np.inf)), diff.shape) if diff.ndim else ()
        raise AssertionError(f"{err_msg + ': ' if err_msg else ''}{int(bad.sum())} of {bad.size} entries differ by "
                             f"more than float rounding allows ({np.dtype(dtype).name}, {int(np.max(terms))} terms); "
                             f"worst at {tuple(int(k) for k in i)}: {actual[i]!r} vs {expected[i]!r}, difference "
                             f"{diff[i]:.3g} > bound {np.broadcast_to(bound, diff.shape)[i]:.3g}")
