"""Feature capture: run a model and collect, for every binary conv, the float input to its binarizer and the ±1
map the binarizer produced — by forward hooks on the binarizer modules, without touching the model code."""
import numpy as np

from .. import nn
from ..core.autograd import Tensor, no_grad


def binary_layers(model):
    """[(name, BinaryConv2d)] in forward order of definition."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.BinaryConv2d)]


def capture(model, images, layers=None):
    """{layer name: {"float": (N, C, H, W), "binary": (N, C, H, W)}} for a batch of normalised images.
    `layers` limits the capture to these binary-conv names.  For pre-binarized inputs (ReActNet), "float" is the
    RSign shift's output as seen by the conv, i.e. already ±1."""
    selected = binary_layers(model)
    if layers is not None:
        unknown = set(layers) - {n for n, _ in selected}
        if unknown:
            raise ValueError(f"no binary conv named {sorted(unknown)}; the model has {[n for n, _ in selected][:6]}…")
        selected = [(n, m) for n, m in selected if n in layers]
    result, removers = {}, []
    for name, conv in selected:
        def hook(module, inputs, out, name=name):
            result[name] = {"float": inputs[0].data.copy(), "binary": out.data.copy()}
        removers.append(conv.binarizer.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.asarray(images, dtype=np.float32)))
    finally:
        model.train(was_training)
        for remove in removers:
            remove()
    return {name: result[name] for name, _ in selected if name in result}
