"""The functional API: every differentiable op, PyTorch-like names, NCHW layout.

Each op is a NumPy reference: a `Function` with a hand-written forward and backward, its maths in the
docstring.  Compiled twins of some of them live in `minilab.fast`; `minilab.core.dispatch` picks one when it applies."""
from .activation import hardtanh, linear, prelu, relu
from .arith import abs, add, amax, div, matmul, mean, mul, neg, pow, sqrt, sub, sum
from .binarizers import approx_sign, get_binarizer, niblack, sauvola, sign, sign_ste
from .binary_conv import binary_conv2d
from .conv import conv2d
from .lab import lab
from .loss import cross_entropy
from .norm import batch_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .shape import concat, flatten, getitem, pad2d, reshape, transpose
from .weight_quantizers import magnitude_aware_sign, xnor_weight_scale
from . import operators  # noqa: F401,E402  (a Tensor's +, *, @, [], .sum(), .reshape() …)
