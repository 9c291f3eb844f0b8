"""Cross-entropy on logits, through a numerically stable log-softmax::

    log p[n,k] = z[n,k] − max_j z[n,j] − log Σ_j exp(z[n,j] − max_j z[n,j])
    L = −(1/N) Σ_n log p[n, t_n]            ∂L/∂z[n,k] = (p[n,k] − 1[k = t_n]) / N

The targets t are class indices, not tensors: the gradient goes to the logits only.
"""
import numpy as np

from ..core.autograd import Function


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class CrossEntropy(Function):
    r"""Mean cross-entropy of logits z (N, K) against integer targets t, through a stable log-softmax.

    .. math::

       \log p_{n,k} = z_{n,k} - \max_j z_{n,j} - \log \sum_j e^{z_{n,j} - \max_j z_{n,j}},
       \qquad L = -\frac{1}{N} \sum_n \log p_{n, t_n}

       \frac{\partial L}{\partial z_{n,k}} = \frac{p_{n,k} - \mathbb{1}[k = t_n]}{N}
    """

    @staticmethod
    def forward(ctx, logits, target=None):
        if logits.ndim != 2:
            raise ValueError(f"cross_entropy: logits must be (N, classes), got shape {logits.shape}")
        if logits.shape[0] == 0:
            raise ValueError("cross_entropy: the batch is empty; a mean over no samples is undefined")
        target = np.asarray(target)
        if target.shape != (logits.shape[0],) or not np.issubdtype(target.dtype, np.integer):
            raise ValueError(f"cross_entropy: target must be {logits.shape[0]} integer class indices, "
                             f"got shape {target.shape} dtype {target.dtype}")
        if target.size and (target.min() < 0 or target.max() >= logits.shape[1]):
            raise ValueError(f"cross_entropy: target classes must lie in [0, {logits.shape[1]}), "
                             f"got {target.min()}..{target.max()}")
        logp = log_softmax(logits)
        ctx.save(logp, target)
        return np.asarray(-logp[np.arange(len(target)), target].mean(), dtype=logits.dtype)

    @staticmethod
    def backward(ctx, g):
        logp, target = ctx.saved
        grad = np.exp(logp)
        grad[np.arange(len(target)), target] -= 1
        return (grad * (g / len(target))).astype(logp.dtype)


def cross_entropy(logits, target):
    """Mean cross-entropy; `target` is an integer array of class indices (not a Tensor)."""
    return CrossEntropy.apply(logits, target=target)
