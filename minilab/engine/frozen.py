"""The eval-mode float layers of a packed model, each bound once to the function the training graph runs.

In the training graph an eval BatchNorm2d runs Module.__call__ → BatchNorm2d.forward → ops.batch_norm →
Function.apply → the dispatcher → its compiled twin, which recomputes 1/√(σ² + ε) and converts its vectors
before the one kernel call that does the work.  At batch 1 those steps cost more than the kernel on most
layers, and they do not shrink with more threads.  A packed model never trains, so each such layer asks the
dispatcher once which implementation the training graph would run for a float32 input — the compiled twin, or
the NumPy reference — and binds that implementation's own forward: the same function on the same arrays, so the
values are the training graph's bit for bit (the engine's tests compare the logits).

The layers bound are BatchNorm2d, with γ and β or without both (the implementation's `bind_eval`: its constants
made once), ReLU and AvgPool2d without padding (the implementation's forward, with a context nothing reads), the
float convolutions (the implementation chosen for an input's shape, called with its options normalised once), the
global average pool and the classifier (NumPy's operators, as the reference ops compute them).  The modules
themselves stay (their parameters, buffers and names, hence the packed file's layout and the profiler's
categories, are unchanged); only their `forward` becomes the direct call.  Each bound layer also gets
`forward_array`, the same call from array to array, which the packed model's program runs (program.py).  After
changing a packed model's BatchNorm statistics, convert or load it again: the constants are read once, here, and
the recorded programs hold the bound calls."""
import numpy as np

from .. import nn
from ..core import config, dispatch
from ..core.autograd import Context, Tensor
from ..ops.activation import Rectifier
from ..ops.conv import Convolution, DepthwiseConvolution, is_depthwise, pair
from ..ops.norm import BatchNorm
from ..ops.pool import AveragePooling


def implementation(reference, arrays, options):
    """What `Function.apply` runs for these inputs: the compiled twin the dispatcher picks, or the reference."""
    return dispatch.choose(reference, arrays, options) or reference


def batchnorm_call(bn):
    """bn's eval forward on arrays: y = ((x − μ)·(1/σ))·γ + β per channel (y = x̂ without γ and β), by the
    implementation the training graph uses.  The compiled twin's forward carries its vectors as
    `forward.constants` (bind_float_layers keeps them as the module's `eval_constants`)."""
    affine = bn.weight is not None
    gamma, beta = (bn.weight.data, bn.bias.data) if affine else (None, None)
    probe = np.zeros((1, len(bn.running_mean), 1, 1), np.float32)   # the engine's activations are float32 maps
    options = {"running_mean": bn.running_mean, "running_var": bn.running_var, "training": False,
               "momentum": bn.momentum, "eps": bn.eps, "affine": affine}
    arrays = (probe, gamma, beta) if affine else (probe,)
    return implementation(BatchNorm, arrays, options).bind_eval(gamma, beta, bn.running_mean, bn.running_var, bn.eps)


def forward_call(reference, probe, **options):
    """The forward on arrays of the implementation the training graph uses for float32 inputs like `probe`, called
    with a context that nothing reads (a frozen layer has no backward)."""
    forward = implementation(reference, (probe,), options).forward
    return lambda x: forward(Context(), x, **options)


def relu_call():
    """ReLU's eval forward."""
    return forward_call(Rectifier, np.zeros(1, np.float32))


def avgpool_call(pool):
    """An unpadded AvgPool2d's forward."""
    kernel = pair(pool.kernel_size)
    stride = kernel if pool.stride is None else pair(pool.stride)
    return forward_call(AveragePooling, np.zeros((1, 1) + kernel, np.float32), kernel=kernel, stride=stride,
                        padding=(0, 0))


def conv_call(conv):
    """A float Conv2d's forward: the implementation the dispatcher picks for the first input of each shape (the
    training graph's choice, which depends on shapes and dtypes only) — its `bind_eval` for that shape where it
    has one (the compiled twins: shapes checked once, nothing kept for a backward), else its forward."""
    weight = conv.kernel.data
    params = (weight,) if conv.bias is None else (weight, conv.bias.data)
    groups = conv.groups
    options = {"stride": pair(conv.stride), "padding": pair(conv.padding), "groups": groups, "pad_value": 0.0}
    bound = {}      # input shape -> the forward for it

    def bind(data):
        op = DepthwiseConvolution if is_depthwise(data, weight, groups) else Convolution
        chosen = implementation(op, (data,) + params, options)
        if hasattr(chosen, "bind_eval"):
            return chosen.bind_eval(data.shape, *params, **options)
        return lambda x: chosen.forward(Context(), x, *params, **options)

    def forward(x):
        run = bound.get(x.shape)
        if run is None:
            run = bound[x.shape] = bind(x)
        return run(x)
    return forward


def global_average_call(x):
    """GlobalAvgPool's forward: the mean over each map, as ops.mean computes it, flattened to (N, C)."""
    return np.asarray(x.mean(axis=(2, 3), keepdims=True)).reshape(x.shape[0], x.shape[1])


def linear_call(linear):
    """Linear's forward as ops.linear computes it: x @ Wᵀ (the transposed view) + b, NumPy's own operators."""
    weight_t = np.transpose(linear.weight.data)
    bias = None if linear.bias is None else linear.bias.data

    def forward(x):
        y = x @ weight_t
        return y if bias is None else y + bias
    return forward


def tensor_call(forward_array):
    """A module's forward (Tensor in, Tensor out) that runs `forward_array` on the Tensor's array."""
    return lambda x: Tensor(forward_array(x.data), _keep_dtype=True)


def array_function(module):
    """`module`'s forward from array to array: its `forward_array` where it was bound, else a call of the module
    on a Tensor (in eval mode and without a graph: the packed model runs under no_grad)."""
    bound = module.__dict__.get("forward_array")
    return bound if bound is not None else lambda x: module(Tensor(x, _keep_dtype=True)).data


def bind_float_layers(model):
    """Bind, in place, every eval BatchNorm2d (float32 γ and β, or neither), ReLU, unpadded AvgPool2d, float
    Conv2d, GlobalAvgPool and float Linear of `model` to its direct call: `forward_array` on arrays, and `forward`
    on Tensors through it.  Returns how many were bound."""
    if config.kernels() is None:
        raise RuntimeError(f"binding the float layers needs the compiled extension ({config.reason()})")
    bound = 0
    for module in model.modules():
        forward = None
        if (type(module) is nn.BatchNorm2d and (module.weight is None) == (module.bias is None)
                and (module.weight is None or module.weight.data.dtype == np.float32)):
            forward = batchnorm_call(module)
        elif type(module) is nn.ReLU:
            forward = relu_call()
        elif type(module) is nn.AvgPool2d and pair(module.padding) == (0, 0):
            forward = avgpool_call(module)
        elif type(module) is nn.Conv2d and module.kernel.data.dtype == np.float32:
            forward = conv_call(module)
        elif type(module) is nn.GlobalAvgPool:
            forward = global_average_call
        elif type(module) is nn.Linear and module.weight.data.dtype == np.float32:
            forward = linear_call(module)
        if forward is not None:
            if getattr(forward, "constants", None) is not None:     # a BatchNorm's vectors, as its forward uses them
                object.__setattr__(module, "eval_constants", forward.constants)
            object.__setattr__(module, "forward_array", forward)
            object.__setattr__(module, "forward", tensor_call(forward))   # Module.__call__ calls self.forward
            bound += 1
    return bound
