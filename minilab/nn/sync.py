"""`--sync-bn`: BatchNorm2d layers whose training statistics cover the global batch of every rank."""
from ..ops.sync_norm import sync_batch_norm
from .layers import BatchNorm2d


class SyncBatchNorm2d(BatchNorm2d):
    """BatchNorm2d that, while training, normalises with the mean and variance of the whole global batch (summed
    across the ranks of `world`); in eval mode it is BatchNorm2d (the running statistics, equal on every rank)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        weight = self.weight if self.weight is not None else self._ones
        bias = self.bias if self.bias is not None else self._zeros
        return sync_batch_norm(x, self.running_mean, self.running_var, weight, bias, self.world, self.momentum,
                               self.eps)


def convert_sync_batchnorm(model, world):
    """Turn every BatchNorm2d of `model` into a SyncBatchNorm2d over `world`, in place: the same parameters,
    buffers and names, so checkpoints do not change.  Returns how many layers were converted."""
    count = 0
    for module in model.modules():
        if type(module) is BatchNorm2d:
            module.__class__ = SyncBatchNorm2d
            object.__setattr__(module, "world", world)
            count += 1
    return count
