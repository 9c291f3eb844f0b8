"""Binarizers (activation quantizers), weight quantizers and the binary convolution.

Every binarizer is documented as Larq documents its quantizers: the forward, and the pseudo-gradient its backward
uses in place of sign's zero derivative.  `surrogate` is the smooth function whose *true* derivative equals that
pseudo-gradient; `gradcheck(..., surrogate=True)` differentiates it numerically to verify the backward.

Convention: sign(0) = +1 (Larq).
"""
import numpy as np

from .. import _backend
from ..autograd import Function
from .activation import hardtanh
from .arith import abs as abs_, mean, mul
from .conv import Conv2d, _pair


def sign(x: np.ndarray) -> np.ndarray:
    """±1 with sign(0) = +1, in x's dtype (scalars of that dtype: no int64 intermediate)."""
    return np.where(x >= 0, x.dtype.type(1), x.dtype.type(-1))


class SignSTE(Function):
    """Straight-through sign (Larq `ste_sign`).

    forward:          q(x) = sign(x)
    pseudo-gradient:  ∂q/∂x = 1 if |x| ≤ clip else 0
    surrogate:        clip(x, −clip, clip)"""

    @staticmethod
    def forward(ctx, x, clip=1.0):
        if _backend.ext is not None and x.dtype == np.float32:
            y, inside = _backend.ext.sign_ste_forward(np.ascontiguousarray(x).reshape(-1), clip, _backend.threads)
            ctx.save(inside.reshape(x.shape))
            return y.reshape(x.shape)
        ctx.save(np.abs(x) <= clip)
        return sign(x)

    @staticmethod
    def surrogate(ctx, x, clip=1.0):
        ctx.save(np.abs(x) <= clip)
        return np.clip(x, -clip, clip)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved
        if _backend.ext is not None and g.dtype == np.float32 and inside.dtype == np.bool_:
            flat = _backend.ext.masked_gradient(np.ascontiguousarray(g).reshape(-1),
                                                np.ascontiguousarray(inside).reshape(-1).view(np.uint8),
                                                _backend.threads)
            return flat.reshape(g.shape)
        return g * inside


class ApproxSign(Function):
    """Bi-Real Net's ApproxSign (Larq `approx_sign`).

    forward:          q(x) = sign(x)
    pseudo-gradient:  ∂q/∂x = 2 − 2|x| if |x| ≤ 1 else 0
    surrogate:        2x − x|x| on [−1, 1], sign(x) outside (a piecewise quadratic)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return sign(x)

    @staticmethod
    def surrogate(ctx, x):
        ctx.save(x)
        return np.where(np.abs(x) <= 1, 2 * x - x * np.abs(x), np.sign(x)).astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        ax = np.abs(x)
        return g * np.where(ax <= 1, 2 - 2 * ax, 0).astype(g.dtype)


class MagnitudeAwareSign(Function):
    """Bi-Real Net's weight quantizer (Larq `magnitude_aware_sign`), weights (C_out, ...).

    forward:          q(w) = α_o · sign(w),  α_o = mean |w[o]| over every axis but the first
    pseudo-gradient:  ∂q/∂w = α_o · 1[|w| ≤ 1]   (α is a constant for the backward: a stop-gradient)
    surrogate:        none — a stop-gradient has no smooth function whose derivative it is; tested directly."""

    @staticmethod
    def forward(ctx, w):
        ctx.compiled = _backend.ext is not None and w.dtype == np.float32 and w.ndim > 1 and w.size > 0
        if ctx.compiled:
            # α, q and the STE mask without temporaries; the backward scales by α·mask, never storing the float
            # scale array
            q, mask, alpha_rows = _backend.ext.magnitude_aware_sign_forward(
                np.ascontiguousarray(w).reshape(w.shape[0], -1), _backend.threads)
            ctx.save(alpha_rows, mask)
            return q.reshape(w.shape)
        alpha = np.abs(w).mean(axis=tuple(range(1, w.ndim)), keepdims=True)
        ctx.save(alpha * (np.abs(w) <= 1))
        return (alpha * sign(w)).astype(w.dtype)

    @staticmethod
    def backward(ctx, g):
        if ctx.compiled:
            alpha_rows, mask = ctx.saved
            dw = _backend.ext.magnitude_aware_sign_backward(np.ascontiguousarray(g, dtype=np.float32)
                                                            .reshape(mask.shape), alpha_rows, mask,
                                                            _backend.threads)
            return dw.reshape(g.shape)
        (scale,) = ctx.saved
        return g * scale


def sign_ste(x, clip=1.0):
    return SignSTE.apply(x, clip=clip)


def approx_sign(x):
    return ApproxSign.apply(x)


def magnitude_aware_sign(w):
    return MagnitudeAwareSign.apply(w)


def xnor_weight_scale(w):
    """XNOR-Net's weight quantizer (Larq-zoo `xnor_weight_scale`): w_c = clip(w, −1, 1),
    q(w) = α_o · sign(w_c) with α_o = mean |w_c[o]|, and — unlike magnitude_aware_sign — the gradient *does*
    flow through α.  Pseudo-gradient of the sign part: the STE (1 on [−1, 1])."""
    wc = hardtanh(w)
    alpha = mean(abs_(wc), axis=tuple(range(1, w.ndim)), keepdims=True)
    return mul(alpha, sign_ste(wc))


WEIGHT_QUANTIZERS = {
    "magnitude_aware_sign": magnitude_aware_sign,
    "ste_sign": sign_ste,
    "xnor": xnor_weight_scale,
}


def binary_conv2d(x, weight, stride=1, padding=0, pad_value=0.0, binarizer=sign_ste,
                  weight_quantizer=magnitude_aware_sign):
    """A binary convolution as Larq's QuantConv2D computes it:

        x_b = binarizer(x) ∈ {−1, +1}
        x_p = x_b padded with `pad_value` (0 or +1)  — padding comes *after* binarization
        w_q = weight_quantizer(w)                    — ±α_o per output channel
        y   = conv2d(x_p, w_q, stride)              (no bias)

    Both operands are ±1 (times a per-channel α), so the forward runs on the exact XNOR-popcount kernel when the
    extension is built; in surrogate mode the binarizer output is not ±1 and the float reference is used."""
    from ..autograd import in_surrogate_mode

    if pad_value not in (0, 1):
        raise ValueError(f"binary_conv2d: pad_value must be 0 or 1 (+1), got {pad_value}")
    if isinstance(binarizer, str):
        from .binarizers import get_binarizer
        binarizer = get_binarizer(binarizer)
    if isinstance(weight_quantizer, str):
        if weight_quantizer not in WEIGHT_QUANTIZERS:
            raise ValueError(f"unknown weight quantizer {weight_quantizer!r}; choose from {sorted(WEIGHT_QUANTIZERS)}")
        weight_quantizer = WEIGHT_QUANTIZERS[weight_quantizer]
    xb = binarizer(x)
    wq = weight_quantizer(weight)
    return Conv2d.apply(xb, wq, stride=_pair(stride), padding=_pair(padding), groups=1,
                        pad_value=float(pad_value), binary=not in_surrogate_mode())
