"""The eval-mode float layers of a packed model as direct kernel calls.

In the training graph an eval BatchNorm2d runs Module.__call__ → BatchNorm2d.forward → ops.batch_norm →
Function.apply → the dispatcher → its compiled twin, which recomputes 1/√(σ² + ε) and converts its vectors
before the one kernel call that does the work.  At batch 1 those steps cost more than the kernel on most
layers, and they do not shrink with more threads.  A packed model never trains, so each such layer can be bound
once to its kernel call, with its constants made the way the twin makes them: the same kernel on the same
arrays, so the values are the twin's bit for bit (the engine's tests compare the logits with the training graph).

The layers bound are BatchNorm2d with γ and β, ReLU and AvgPool2d without padding (each one kernel call), the
float convolutions (their Function's apply, without the layers of option checks around it), the global average
pool and the classifier (NumPy's operators, as the reference ops compute them).  The modules themselves stay
(their parameters, buffers and names, hence the packed file's layout and the profiler's categories, are
unchanged); only their `forward` becomes the direct call.  Bind again after changing a packed model's
BatchNorm statistics: the constants are read once, here."""
import numpy as np

from ..core import config
from .. import nn
from ..core.autograd import Tensor
from ..ops.conv import Convolution, DepthwiseConvolution, pair
from ..ops.norm import inverse_std


def batchnorm_call(bn, ext):
    """bn's eval forward as one ext.batchnorm_forward call: y = ((x − μ)·(1/σ))·γ + β per channel."""
    mean = np.ascontiguousarray(bn.running_mean, dtype=np.float32)
    invstd = inverse_std(bn.running_var, bn.eps, np.float32)
    gamma = np.ascontiguousarray(bn.weight.data, dtype=np.float32)
    beta = np.ascontiguousarray(bn.bias.data, dtype=np.float32)

    def forward(x):
        data = np.ascontiguousarray(x.data)        # as the twin's channels_view
        out = ext.batchnorm_forward(data.reshape(data.shape[0], data.shape[1], -1), mean, invstd, gamma, beta,
                                    config.threads)
        return Tensor(out.reshape(data.shape), _keep_dtype=True)
    return forward


def relu_call(ext):
    """ReLU's eval forward as one ext.relu_forward call."""
    def forward(x):
        return Tensor(ext.relu_forward(x.data, config.threads), _keep_dtype=True)
    return forward


def avgpool_call(pool, ext):
    """An unpadded AvgPool2d's forward as one ext.avgpool2d_forward call."""
    kernel = pair(pool.kernel_size)
    stride = kernel if pool.stride is None else pair(pool.stride)

    def forward(x):
        return Tensor(ext.avgpool2d_forward(np.ascontiguousarray(x.data), *kernel, *stride, config.threads),
                      _keep_dtype=True)
    return forward


def conv_call(conv):
    """A float Conv2d's forward as its Function's apply, with the options normalised and checked once (the
    dispatcher still picks the implementation for each input, as in the training graph)."""
    weight = conv.kernel
    params = (weight,) if conv.bias is None else (weight, conv.bias)
    groups = conv.groups
    op = DepthwiseConvolution if groups > 1 and weight.shape[1] == 1 else Convolution   # ops.conv.is_depthwise
    options = {"stride": pair(conv.stride), "padding": pair(conv.padding), "groups": groups, "pad_value": 0.0}

    def forward(x):
        return op.apply(x, *params, **options)
    return forward


def global_average_call(x):
    """GlobalAvgPool's forward: the mean over each map, as ops.mean computes it, flattened to (N, C)."""
    data = x.data
    return Tensor(np.asarray(data.mean(axis=(2, 3), keepdims=True)).reshape(data.shape[0], data.shape[1]),
                  _keep_dtype=True)


def linear_call(linear):
    """Linear's forward as ops.linear computes it: x @ Wᵀ (the transposed view) + b, NumPy's own operators."""
    weight_t = np.transpose(linear.weight.data)
    bias = None if linear.bias is None else linear.bias.data

    def forward(x):
        y = x.data @ weight_t
        return Tensor(y if bias is None else y + bias, _keep_dtype=True)
    return forward


def bind_float_layers(model):
    """Bind, in place, every eval BatchNorm2d (with γ and β, float32 statistics), ReLU, unpadded AvgPool2d, float
    Conv2d, GlobalAvgPool and float Linear of `model` to its direct call.  Returns how many were bound."""
    ext = config.kernels()
    if ext is None:
        raise RuntimeError(f"binding the float layers needs the compiled extension ({config.reason()})")
    bound = 0
    for module in model.modules():
        forward = None
        if (type(module) is nn.BatchNorm2d and module.weight is not None and module.bias is not None
                and module.weight.data.dtype == np.float32):
            forward = batchnorm_call(module, ext)
        elif type(module) is nn.ReLU:
            forward = relu_call(ext)
        elif type(module) is nn.AvgPool2d and pair(module.padding) == (0, 0):
            forward = avgpool_call(module, ext)
        elif type(module) is nn.Conv2d and module.kernel.data.dtype == np.float32:
            forward = conv_call(module)
        elif type(module) is nn.GlobalAvgPool:
            forward = global_average_call
        elif type(module) is nn.Linear and module.weight.data.dtype == np.float32:
            forward = linear_call(module)
        if forward is not None:
            object.__setattr__(module, "forward", forward)   # Module.__call__ calls self.forward
            bound += 1
    return bound
