"""Compiled twins of the sign STE (activations) and the magnitude-aware sign (Bi-Real weights)."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext
from ..core.dispatch import twin_of
from ..ops.binarizers import SignSTE
from ..ops.weight_quantizers import MagnitudeAwareSign


@twin_of(SignSTE)
class SignSTEKernel:
    """float32 of any shape.  The ±1 map and the STE mask in one pass; the backward masks in one pass.  Equals
    the reference bit for bit."""
    exact = True

    @staticmethod
    def accepts(x, clip=1.0):
        return x.dtype == np.float32

    @staticmethod
    def forward(ctx, x, clip=1.0):
        y, inside = ext.sign_ste_forward(np.ascontiguousarray(x).reshape(-1), clip, config.threads)
        ctx.save(inside.reshape(x.shape))
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved
        flat = ext.masked_gradient(np.ascontiguousarray(g, dtype=np.float32).reshape(-1),
                                   inside.reshape(-1).view(np.uint8), config.threads)
        return flat.reshape(g.shape)


@twin_of(MagnitudeAwareSign)
class MagnitudeAwareSignKernel:
    """float32 weights (C_out, ...) with at least one value.  α, q and the STE mask without temporaries; the
    backward scales by α·mask without storing the float scale array.  α is a mean summed in another order than
    NumPy's (float32 rounding); given α, q = ±α and the gradient are exact."""
    rtol = 1e-6

    @staticmethod
    def accepts(w):
        return w.dtype == np.float32 and w.ndim > 1 and w.size > 0

    @staticmethod
    def forward(ctx, w):
        q, mask, alpha_rows = ext.magnitude_aware_sign_forward(np.ascontiguousarray(w).reshape(w.shape[0], -1),
                                                               config.threads)
        ctx.save(alpha_rows, mask)
        return q.reshape(w.shape)

    @staticmethod
    def backward(ctx, g):
        alpha_rows, mask = ctx.saved
        dw = ext.magnitude_aware_sign_backward(np.ascontiguousarray(g, dtype=np.float32).reshape(mask.shape),
                                               alpha_rows, mask, config.threads)
        return dw.reshape(g.shape)
