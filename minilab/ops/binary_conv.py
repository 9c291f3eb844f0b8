"""The binary convolution: binarized activations times quantized weights, padded after binarization."""
from ..core.autograd import in_surrogate_mode
from .binarizers import get_binarizer, sign_ste
from .conv import Convolution, check_conv_options, pair
from .weight_quantizers import get_weight_quantizer, magnitude_aware_sign


def binary_conv2d(x, weight, stride=1, padding=0, pad_value=0.0, binarizer=sign_ste,
                  weight_quantizer=magnitude_aware_sign):
    r"""A binary convolution as Larq's QuantConv2D computes it::

        x_b = binarizer(x) ∈ {−1, +1}
        x_p = x_b padded with `pad_value` (0 or +1)  — padding comes *after* binarization
        w_q = weight_quantizer(w)                    — ±α_o per output channel
        y   = conv2d(x_p, w_q, stride)              (no bias)

    `binary=True` tells the convolution both operands are ±1 (times a per-channel α), so a compiled twin may run
    it on the exact XNOR-popcount kernel; in surrogate mode the binarizer output is not ±1, so it is not set.

    .. math::

       y_{n,o,i,j} = \sum_{c,u,v} \alpha_o \operatorname{sign}(w_{o,c,u,v})\; \operatorname{pad}\!\bigl(q(x)\bigr)_{n,c,\, i s + u,\, j s + v}

       \frac{\partial L}{\partial x} = \frac{\partial L}{\partial q(x)} \cdot \left.\frac{\partial q}{\partial x}\right|_{\text{pseudo}},
       \qquad \frac{\partial L}{\partial w} = \frac{\partial L}{\partial w_q} \cdot \left.\frac{\partial w_q}{\partial w}\right|_{\text{pseudo}}
    """
    if pad_value not in (0, 1):
        raise ValueError(f"binary_conv2d: pad_value must be 0 or 1 (+1), got {pad_value}")
    if isinstance(binarizer, str):
        binarizer = get_binarizer(binarizer)
    if isinstance(weight_quantizer, str):
        weight_quantizer = get_weight_quantizer(weight_quantizer)
    check_conv_options(pair(stride), pair(padding), 1, "binary_conv2d")
    xb = binarizer(x)
    wq = weight_quantizer(weight)
    return Convolution.apply(xb, wq, stride=pair(stride), padding=pair(padding), groups=1,
                             pad_value=float(pad_value), binary=not in_surrogate_mode())
