"""Batch normalisation over every axis but the channel axis (1).

Training:  μ, σ² = mean and (biased) variance of the batch;  x̂ = (x − μ)/√(σ² + ε);  y = γ·x̂ + β.
           running ← m·running + (1 − m)·batch  (Keras' momentum convention; the running variance uses the
           unbiased batch variance, as PyTorch and TF's fused kernel do).
Eval:      μ, σ² = the running statistics.
Backward (training), with M values per channel and ĝ = g·γ:
           ∂L/∂x = (1/√(σ²+ε)) · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),   ∂L/∂γ = Σ g·x̂,   ∂L/∂β = Σ g.
"""
import numpy as np

from ..core.autograd import Function


def inverse_std(var, eps, dtype):
    """1/√(σ² + ε) rounded to `dtype` — the engine folds exactly this value, so it must be computed in one place."""
    return (1.0 / np.sqrt(var + eps)).astype(dtype)


def check_input(x, running_mean, training):
    if x.ndim < 2 or running_mean.shape != (x.shape[1],):
        raise ValueError(f"batch_norm: input {x.shape} does not have {running_mean.shape[0]} channels on axis 1")
    if training and x.size // x.shape[1] < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, input {x.shape}")


def update_running(running_mean, running_var, mu, var, count, momentum):
    """running ← m·running + (1 − m)·batch, in place; the variance unbiased (count values per channel)."""
    running_mean *= momentum
    running_mean += (1 - momentum) * mu
    running_var *= momentum
    running_var += (1 - momentum) * var * count / (count - 1)


def normalize(x, mu, invstd, shape):
    """x̂ = (x − μ)·(1/√(σ² + ε)), the per-channel vectors reshaped to broadcast over x."""
    return (x - mu.reshape(shape).astype(x.dtype)) * invstd.reshape(shape)


class BatchNorm(Function):
    r"""Batch normalisation of axis 1 (training: batch statistics, updating the running ones; eval: the running ones).

    .. math::

       \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

       \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}} \left(\hat g - \overline{\hat g} - \hat x\, \overline{\hat g \hat x}\right), \quad \hat g = \gamma g,
       \qquad \frac{\partial L}{\partial \gamma} = \sum g \hat x, \qquad \frac{\partial L}{\partial \beta} = \sum g
    """

    @staticmethod
    def forward(ctx, x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                momentum=0.99, eps=1e-3, affine=True):
        check_input(x, running_mean, training)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if training:
            mu, var = x.mean(axis=axes), x.var(axis=axes)
            update_running(running_mean, running_var, mu, var, x.size // x.shape[1], momentum)
        else:
            mu, var = running_mean, running_var
        invstd = inverse_std(var, eps, x.dtype)
        ctx.training, ctx.affine, ctx.axes, ctx.shape = training, affine, axes, shape
        xhat = normalize(x, mu, invstd, shape)
        ctx.save(xhat, invstd, gamma)
        return xhat * gamma.reshape(shape) + beta.reshape(shape) if affine else xhat

    @staticmethod
    def bind_eval(gamma, beta, running_mean, running_var, eps, dtype=np.float32):
        """The eval forward of (N, C, H, W) maps, its constants made once (a frozen layer: the packed engine); the
        same float steps as `forward`, so the same values.  γ and β None: a BatchNorm without them (y = x̂)."""
        shape = (1, -1, 1, 1)
        invstd = inverse_std(running_var, eps, dtype)
        if gamma is None:
            return lambda x: normalize(x, running_mean, invstd, shape)
        gamma, beta = gamma.reshape(shape), beta.reshape(shape)

        def forward(x):
            return normalize(x, running_mean, invstd, shape) * gamma + beta
        return forward

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, gamma = ctx.saved
        axes, shape = ctx.axes, ctx.shape
        ghat = g * gamma.reshape(shape) if ctx.affine else g
        if ctx.training:
            dx = invstd.reshape(shape) * (ghat - ghat.mean(axis=axes, keepdims=True)
                                          - xhat * (ghat * xhat).mean(axis=axes, keepdims=True))
        else:
            dx = ghat * invstd.reshape(shape)
        if not ctx.affine:
            return dx
        return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=True, momentum=0.99, eps=1e-3):
    """`running_mean`/`running_var` are NumPy arrays updated in place while training."""
    affine = weight is not None
    if affine:
        return BatchNorm.apply(x, weight, bias, running_mean=running_mean, running_var=running_var,
                               training=training, momentum=momentum, eps=eps, affine=True)
    return BatchNorm.apply(x, running_mean=running_mean, running_var=running_var, training=training,
                           momentum=momentum, eps=eps, affine=False)
