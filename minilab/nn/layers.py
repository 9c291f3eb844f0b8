"""Float layers: Conv2d, Linear, BatchNorm2d, PReLU, ReLU, pooling, Flatten, Sequential, Identity."""
import numpy as np

from .. import ops as F
from ..ops.conv import check_conv_options, pair
from . import init
from .module import Module, Parameter


class Sequential(Module):
    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)


class Identity(Module):
    def forward(self, x):
        return x


class Conv2d(Module):
    """Float convolution.  padding=None means 'same' for odd kernels (k//2 on each side)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, groups=1, bias=False,
                 initializer="glorot_normal", trainable=True):
        super().__init__()
        if not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
            raise ValueError(f"Conv2d: kernel_size must be a positive integer, got {kernel_size!r}")
        if min(in_channels, out_channels) < 1:
            raise ValueError(f"Conv2d: channel counts must be positive, got {in_channels} → {out_channels}")
        self.stride, self.groups = stride, groups
        self.padding = kernel_size // 2 if padding is None else padding
        check_conv_options(pair(stride), pair(self.padding), groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide {in_channels} input and {out_channels} output "
                             "channels")
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        fan_in, fan_out = init.conv_fans(shape)
        weight = init.initialize(initializer, shape, fan_in, fan_out)
        if trainable:
            self.weight = Parameter(weight)
        else:  # a fixed kernel (QuickNet's blur pool): a plain tensor, invisible to the optimizer
            from ..core.autograd import Tensor
            self.fixed_weight = Tensor(weight)
        self.bias = Parameter(np.zeros(out_channels)) if bias else None

    @property
    def kernel(self):
        return self.weight if "weight" in self.__dict__ else self.fixed_weight

    def forward(self, x):
        return F.conv2d(x, self.kernel, self.bias, self.stride, self.padding, self.groups)

    def extra_repr(self):
        o, i, k, _ = self.kernel.shape
        return f"{i * self.groups}, {o}, k={k}, stride={self.stride}, groups={self.groups}"


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, initializer="glorot_uniform"):
        super().__init__()
        self.weight = Parameter(init.initialize(initializer, (out_features, in_features), in_features, out_features))
        self.bias = Parameter(np.zeros(out_features)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}"


class BatchNorm2d(Module):
    """Batch normalisation with Keras' conventions: momentum m means running = m·running + (1−m)·batch
    (m = 0.99 and ε = 1e-3 by default).  `scale`/`center` switch γ/β off, like Keras' arguments."""

    def __init__(self, channels, momentum=0.99, eps=1e-3, scale=True, center=True):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = Parameter(np.ones(channels)) if scale else None
        self.bias = Parameter(np.zeros(channels)) if center else None
        self._ones, self._zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        self.register_buffer("running_mean", np.zeros(channels))
        self.register_buffer("running_var", np.ones(channels))

    def forward(self, x):
        if self.weight is None and self.bias is None:
            return F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training,
                                self.momentum, self.eps)
        weight = self.weight if self.weight is not None else self._ones
        bias = self.bias if self.bias is not None else self._zeros
        return F.batch_norm(x, self.running_mean, self.running_var, weight, bias, self.training,
                            self.momentum, self.eps)

    def extra_repr(self):
        return f"{len(self.running_mean)}, momentum={self.momentum}, eps={self.eps}"


class PReLU(Module):
    """One slope per channel, shared over H and W; Keras initialises it to 0 (ReLU at the start)."""

    def __init__(self, channels, init_value=0.0):
        super().__init__()
        self.weight = Parameter(np.full(channels, init_value))

    def forward(self, x):
        return F.prelu(x, self.weight)


class LearnableBias(Module):
    """ReActNet's per-channel shift: y = x + b_c (zero-initialised)."""

    def __init__(self, channels):
        super().__init__()
        self.bias = Parameter(np.zeros((1, channels, 1, 1)))

    def forward(self, x):
        return F.add(x, self.bias)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


# the same options as MaxPool2d, passed to the other pooling op
class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool(Module):
    """(N, C, H, W) → (N, C): average over the whole map, then flatten."""

    def forward(self, x):
        return F.flatten(F.adaptive_avg_pool2d(x, 1))


class Flatten(Module):
    def forward(self, x):
        return F.flatten(x)
