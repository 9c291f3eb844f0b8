"""The functional API: every differentiable op, PyTorch-like names, NCHW layout."""
from .activation import hardtanh, linear, prelu, relu
from .arith import abs, add, amax, div, matmul, mean, mul, neg, pow, sqrt, sub, sum
from .binarizers import get_binarizer, niblack, sauvola
from .binary import approx_sign, binary_conv2d, magnitude_aware_sign, sign, sign_ste, xnor_weight_scale
from .conv import conv2d
from .lab import lab
from .loss import cross_entropy
from .norm import batch_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .shape import concat, flatten, getitem, pad2d, reshape, transpose
