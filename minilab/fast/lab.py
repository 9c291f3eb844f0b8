"""Compiled twin of LAB's ArgMax step for the paper's channel pairing."""
import numpy as np

from ..core.config import compiled as ext
from ..core.dispatch import twin_of
from ..ops.lab import LabArgMax


@twin_of(LabArgMax)
class LabArgMaxKernel:
    """float32 maps r (N, 2C, H, W) and β, pairing="channel": the ±1 map and r1 − r0 in one pass over r.  The
    backward is the reference's (same saved arrays).  Equals the reference bit for bit."""
    exact = True

    @staticmethod
    def accepts(r, beta, pairing="channel"):
        return pairing == "channel" and r.dtype == np.float32 and beta.dtype == np.float32 and r.ndim == 4

    @staticmethod
    def forward(ctx, r, beta, pairing="channel"):
        y, diff = ext.lab_argmax_channel(np.ascontiguousarray(r), float(beta))
        ctx.pairing = pairing
        ctx.save(diff, beta)
        return y

    backward = LabArgMax.backward
