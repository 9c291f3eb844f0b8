"""Batch normalisation whose batch is spread over the ranks of a data-parallel job (`--sync-bn`).

Rank r holds m_r of the M = Σ_r m_r values per channel.  Forward, two sums per channel cross the ranks::

    S₁ = Σ_r Σ x,   S₂ = Σ_r Σ x²   (float64)      μ = S₁/M,   σ² = S₂/M − μ²
    x̂ = (x − μ)/√(σ² + ε),   y = γ·x̂ + β        — the statistics one process would compute over all M values.

Backward.  Each rank's loss is the mean over its own images, and the ranks' gradients are summed with weights
s_r = m_r/M (minilab.distributed), so the gradient of the global loss reaching rank r's y is s_r·g.  One process
with the whole batch computes ∂L/∂x = (1/√(σ²+ε))·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = γ·(its g) and the means
over all M values; here those means are::

    A = (1/M)·Σ_r s_r·Σ ĝ,   C = (1/M)·Σ_r s_r·Σ ĝ·x̂     (one more cross-rank sum)

and the gradient rank r passes on, again as the gradient of its own loss (divided by s_r), is::

    ∂L_r/∂x = (1/√(σ²+ε))·(ĝ − (A + x̂·C)/s_r),     ∂L_r/∂γ = Σ g·x̂,   ∂L_r/∂β = Σ g   (local sums; the
                                                     gradient averaging weighs them by s_r like every gradient).

With one rank (s = 1) this is exactly BatchNorm's backward.  The running statistics use the global μ and the
unbiased global variance σ²·M/(M − 1), so they are the same on every rank."""
import numpy as np

from ..core.autograd import Function
from .norm import check_input, inverse_std, update_running


class SyncBatchNorm(Function):
    r"""Training-mode batch norm whose statistics span every rank's images (see the module docstring).

    .. math::

       \mu = \frac{S_1}{M}, \quad \sigma^2 = \frac{S_2}{M} - \mu^2, \qquad
       \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

       \frac{\partial L_r}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
       \left(\hat g - \frac{A + \hat x\, C}{s_r}\right), \qquad
       A = \frac{1}{M} \sum_r s_r \sum \hat g, \quad C = \frac{1}{M} \sum_r s_r \sum \hat g \hat x
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean=None, running_var=None, world=None, momentum=0.99, eps=1e-3):
        check_input(x, running_mean, training=False)   # (one value per rank is fine when the ranks hold more)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        channels = x.shape[1]
        m = x.size // channels
        x64 = x.reshape(x.shape[0], channels, -1).astype(np.float64)   # sums of squares need the precision
        totals = world.sum(np.concatenate([x64.sum(axis=(0, 2)), np.einsum("ncs,ncs->c", x64, x64), [m]]))
        count = totals[-1]
        if count < 2:
            raise ValueError(f"sync batch_norm: training needs more than one value per channel, input {x.shape}")
        mu = totals[:channels] / count
        var = np.maximum(totals[channels:2 * channels] / count - mu * mu, 0.0)
        update_running(running_mean, running_var, mu, var, count, momentum)
        invstd = inverse_std(var, eps, x.dtype)
        xhat = (x - mu.reshape(shape).astype(x.dtype)) * invstd.reshape(shape)
        ctx.axes, ctx.shape, ctx.world, ctx.count, ctx.share = axes, shape, world, count, m / count
        ctx.save(xhat, invstd, gamma)
        return xhat * gamma.reshape(shape) + beta.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, gamma = ctx.saved
        axes, shape, share = ctx.axes, ctx.shape, ctx.share
        ghat = g * gamma.reshape(shape)
        local = np.concatenate([ghat.sum(axis=axes, dtype=np.float64), (ghat * xhat).sum(axis=axes, dtype=np.float64)])
        totals = ctx.world.sum(share * local) / ctx.count
        channels = len(gamma)
        a = (totals[:channels] / share).astype(g.dtype).reshape(shape)
        c = (totals[channels:] / share).astype(g.dtype).reshape(shape)
        dx = invstd.reshape(shape) * (ghat - a - xhat * c)
        return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)


def sync_batch_norm(x, running_mean, running_var, weight, bias, world, momentum=0.99, eps=1e-3):
    """Training-mode batch norm over the whole global batch; `world` sums across ranks (minilab.distributed)."""
    return SyncBatchNorm.apply(x, weight, bias, running_mean=running_mean, running_var=running_var, world=world,
                               momentum=momentum, eps=eps)
