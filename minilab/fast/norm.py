"""Compiled twin of BatchNorm: one fused pass per direction."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext
from ..core.dispatch import twin_of
from ..ops.norm import BatchNorm, check_input, inverse_std, update_running


def channels_view(x):
    """x as a contiguous float32 (N, C, HW) array (a view when x already is contiguous)."""
    return np.ascontiguousarray(x, dtype=np.float32).reshape(x.shape[0], x.shape[1], -1)


def affine_map(xv, mu32, invstd, gamma, beta):
    """y = ((x − μ)·(1/σ))·γ + β per channel of the (N, C, HW) view, in one kernel pass."""
    return ext.batchnorm_forward(xv, mu32, invstd, gamma, beta, config.threads)


def unit_affine(channels):
    """(γ, β) = (1, 0) for a BatchNorm without them: x̂·1 + 0 is x̂ in float32 (a −0 becomes +0, equal to it), and
    γ = 1 leaves the backward's products unchanged, so one kernel serves both kinds."""
    return np.ones(channels, np.float32), np.zeros(channels, np.float32)


@twin_of(BatchNorm)
class BatchNormKernel:
    """float32 input with float32 γ and β, or without them (QuickNet's stem).  The statistics with double
    accumulators, the affine map, and a backward that recomputes x̂ from x instead of storing it.  The affine map
    is the reference's float32 steps (bit for bit, which the packed engine relies on); sums differ from NumPy's
    by float32 rounding."""
    rtol = 2e-4

    @staticmethod
    def accepts(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True, momentum=0.99,
                eps=1e-3, affine=True):
        return (x.dtype == np.float32 and (not affine or gamma.dtype == np.float32 == beta.dtype)
                and x.shape[0] > 0)   # an empty batch: the reference (the (N, C, HW) view cannot infer HW of 0)

    @staticmethod
    def forward(ctx, x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                momentum=0.99, eps=1e-3, affine=True):
        check_input(x, running_mean, training)
        if not affine:
            gamma, beta = unit_affine(x.shape[1])
        ctx.affine = affine
        xv = channels_view(x)
        if training:
            mu, var = ext.channel_mean_var(xv, config.threads)
            update_running(running_mean, running_var, mu, var, x.size // x.shape[1], momentum)
        else:
            mu, var = running_mean, running_var
        mu32, invstd = np.ascontiguousarray(mu, dtype=np.float32), inverse_std(var, eps, x.dtype)
        gamma = np.ascontiguousarray(gamma)
        ctx.training = training
        ctx.save(xv, mu32, invstd, gamma)
        return affine_map(xv, mu32, invstd, gamma, np.ascontiguousarray(beta)).reshape(x.shape)

    @staticmethod
    def bind_eval(gamma, beta, running_mean, running_var, eps, dtype=np.float32):
        """The eval forward with its constants made once (a frozen layer: the packed engine): `forward`'s
        constants and its one kernel call, so its values bit for bit.  γ and β None: a BatchNorm without them.
        `forward.constants` is (μ, 1/σ, γ, β), the float32 vectors of y = ((x − μ)·(1/σ))·γ + β, which the kernel
        computes one rounded step at a time (the packed engine applies a shortcut's BatchNorm with them inside its
        binary conv's output transform)."""
        mu32, invstd = np.ascontiguousarray(running_mean, dtype=np.float32), inverse_std(running_var, eps, dtype)
        if gamma is None:
            gamma, beta = unit_affine(len(mu32))
        gamma, beta = np.ascontiguousarray(gamma, dtype=np.float32), np.ascontiguousarray(beta, dtype=np.float32)

        def forward(x):
            return affine_map(channels_view(x), mu32, invstd, gamma, beta).reshape(x.shape)
        forward.constants = (mu32, invstd, gamma, beta)
        return forward

    @staticmethod
    def backward(ctx, g):
        xv, mu32, invstd, gamma = ctx.saved
        gv = channels_view(g)
        if ctx.training:
            dx, dgamma, dbeta = ext.batchnorm_backward(xv, gv, mu32, invstd, gamma, config.threads)
            dx = dx.reshape(g.shape)
            return (dx, dgamma, dbeta) if ctx.affine else dx
        # eval mode (fixed statistics): ∂L/∂x = g·γ/σ, with x̂ rebuilt as the forward computed it
        dx = (gv * gamma[None, :, None] * invstd[None, :, None]).reshape(g.shape)
        if not ctx.affine:
            return dx
        xhat = (xv - mu32[None, :, None]) * invstd[None, :, None]
        return dx, (gv * xhat).sum(axis=(0, 2)), gv.sum(axis=(0, 2))
