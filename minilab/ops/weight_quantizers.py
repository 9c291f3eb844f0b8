"""Weight quantizers: the maps from a latent float weight to ±α per output channel, each with its pseudo-gradient.

Weights are (C_out, ...); α_o is one scale per output channel.  As for the activation binarizers
(`binarizers.py`), every quantizer states its forward and the pseudo-gradient its backward uses."""
import numpy as np

from ..core.autograd import Function
from .activation import hardtanh
from .arith import abs as abs_, mean, mul
from .binarizers import sign, sign_ste


class MagnitudeAwareSign(Function):
    r"""Bi-Real Net's weight quantizer (Larq `magnitude_aware_sign`), weights (C_out, ...)::

        forward:          q(w) = α_o · sign(w),  α_o = mean |w[o]| over every axis but the first
        pseudo-gradient:  ∂q/∂w = α_o · 1[|w| ≤ 1]   (α is a constant for the backward: a stop-gradient)
        surrogate:        none — a stop-gradient has no smooth function whose derivative it is; tested directly.

    .. math::

       q(w) = \alpha_o \operatorname{sign}(w), \qquad \alpha_o = \operatorname{mean}_{c,u,v} |w_{o,c,u,v}|

       \frac{\partial q}{\partial w} \approx \alpha_o\, \mathbb{1}\left[\,|w| \le 1\,\right] \quad (\alpha_o \text{ held constant})
    """

    @staticmethod
    def forward(ctx, w):
        alpha = np.abs(w).mean(axis=tuple(range(1, w.ndim)), keepdims=True)
        ctx.save(alpha * (np.abs(w) <= 1))
        return (alpha * sign(w)).astype(w.dtype)

    @staticmethod
    def backward(ctx, g):
        (scale,) = ctx.saved
        return g * scale


def magnitude_aware_sign(w):
    return MagnitudeAwareSign.apply(w)


def xnor_weight_scale(w):
    r"""XNOR-Net's weight quantizer (Larq-zoo `xnor_weight_scale`): w_c = clip(w, −1, 1),
    q(w) = α_o · sign(w_c) with α_o = mean |w_c[o]|, and — unlike magnitude_aware_sign — the gradient *does*
    flow through α.  Pseudo-gradient of the sign part: the STE (1 on [−1, 1]).

    .. math::

       w_c = \operatorname{clip}(w, -1, 1), \qquad q(w) = \alpha_o \operatorname{sign}(w_c),
       \qquad \alpha_o = \operatorname{mean} |w_c[o]|

       \frac{\partial q}{\partial w} \approx \alpha_o\, \mathbb{1}\left[\,|w| \le 1\,\right] + \operatorname{sign}(w_c)\, \frac{\partial \alpha_o}{\partial w} \quad \text{(the gradient flows through } \alpha_o\text{)}
    """
    wc = hardtanh(w)
    alpha = mean(abs_(wc), axis=tuple(range(1, w.ndim)), keepdims=True)
    return mul(alpha, sign_ste(wc))


WEIGHT_QUANTIZERS = {
    "magnitude_aware_sign": magnitude_aware_sign,
    "ste_sign": sign_ste,
    "xnor": xnor_weight_scale,
}


def get_weight_quantizer(name):
    if name not in WEIGHT_QUANTIZERS:
        raise ValueError(f"unknown weight quantizer {name!r}; choose from {sorted(WEIGHT_QUANTIZERS)}")
    return WEIGHT_QUANTIZERS[name]
