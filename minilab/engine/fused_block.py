"""A residual binary block whose shortcut add and PReLU run inside its packed conv's output transform.

In the training graph a Bi-Real / LAB-BNN block computes, in float32,

    out = PReLU(BN(BinaryConv(x)) + shortcut(x))

as three passes over the output after the conv.  Once the conv is packed and its BatchNorm folded, the add and
the PReLU are two more steps of the same per-element transform (bgemm's), applied in the same order while the
popcount result is still in a register, so the block writes its output once and the values are unchanged.  In
the packed model's recorded forward (program.py) a downsampling block's shortcut BatchNorm joins them: the
transform reads each shortcut value through it, with the BatchNorm kernel's float32 steps."""
from ..core.autograd import Tensor
from ..models.common import ResidualBinaryBlock
from ..nn import Identity
from ..nn.module import Module
from .frozen import array_function
from .packed_conv import PackedBinaryConv2d
from .tree import set_submodule


class PackedResidualBlock(Module):
    """Holds the block's modules under their own names (so the state dict's keys are the float block's)."""

    def __init__(self, block):
        super().__init__()
        self.downsample = block.downsample
        if block.downsample:
            self.pool, self.shortcut_conv, self.shortcut_bn = block.pool, block.shortcut_conv, block.shortcut_bn
        self.conv, self.bn, self.prelu = block.conv, block.bn, block.prelu

    def forward(self, x):
        shortcut = self.shortcut_bn(self.shortcut_conv(self.pool(x))) if self.downsample else x
        slopes = None if self.prelu is None else self.prelu.weight.data
        return Tensor(self.conv.forward_fused(x, residual=shortcut.data, prelu=slopes), _keep_dtype=True)

    def bound_forward(self, shape):
        """The same forward on arrays of `shape`, for the packed model's program (program.py).  A downsampling
        block's shortcut BatchNorm runs inside the conv's output transform too, as each shortcut value is read
        (one pass over the shortcut fewer), where its float32 steps are the transform's."""
        conv = self.conv.bound_forward(shape)
        slopes = None if self.prelu is None else self.prelu.weight.data
        if not self.downsample:
            return lambda x: conv(x, x, slopes)
        pool, shortcut_conv = array_function(self.pool), array_function(self.shortcut_conv)
        bn = self.shortcut_bn
        constants = bn.__dict__.get("eval_constants")   # the vectors its bound forward computes with, if any
        if constants is not None:
            return lambda x: conv(x, shortcut_conv(pool(x)), slopes, constants)
        shortcut_bn = array_function(bn)
        return lambda x: conv(x, shortcut_bn(shortcut_conv(pool(x))), slopes)


def fuse_residual_blocks(model):
    """Replace, in place, every residual block whose binary conv is packed with its BatchNorm folded (bn is an
    Identity) by a PackedResidualBlock.  Returns how many were replaced."""
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, ResidualBinaryBlock) and isinstance(module.conv, PackedBinaryConv2d)
               and isinstance(module.bn, Identity)]
    for name, block in targets:
        set_submodule(model, name, PackedResidualBlock(block))
    return len(targets)
