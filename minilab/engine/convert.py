"""Convert a trained model into the packed inference graph.

The converted model is the same module tree with every BinaryConv2d replaced by a PackedBinaryConv2d, and every
BatchNorm (and ReLU) that directly and solely consumes a binary conv's output folded into that conv (replaced by
Identity); residual blocks whose conv was packed then add their shortcut and apply their PReLU inside the conv
(fused_block.py).  The models' own forward code then runs the packed graph unchanged, so no architecture is written
twice (after the first forward of each input shape the packed model replays the layer calls that forward made:
program.py).  Which modules follow which is found by tracing one forward pass (hooks + the autograd graph's
consumer counts), not assumed per architecture."""
import numpy as np

from .. import nn
from ..core.autograd import Tensor, topological_order, no_grad
from ..core.config import kernels, reason, use
from ..nn.module import Module
from ..ops.weight_quantizers import WEIGHT_QUANTIZERS
from ..ops.norm import inverse_std
from ..ops.quant import dequantize, quantize_symmetric
from .frozen import bind_float_layers
from .fused_block import fuse_residual_blocks
from .packed_conv import PackedBinaryConv2d
from .program import record_program
from .tree import get_submodule, set_submodule


def trace(model, image_size, in_channels=3):
    """{module id: (inputs, output)} for one eval-mode forward, and {tensor id: number of consumers}."""
    records, removers = {}, []
    for _, module in model.named_modules():
        removers.append(module.register_forward_hook(
            lambda m, inputs, out: records.__setitem__(id(m), (inputs, out))))
    was_training = model.training
    model.eval()
    try:
        out = model(Tensor(np.zeros((1, in_channels, image_size, image_size), np.float32)))
    finally:
        model.train(was_training)
        for remove in removers:
            remove()
    consumers = {}
    for node in topological_order(out):
        for parent in node._parents:
            consumers[id(parent)] = consumers.get(id(parent), 0) + 1
    return records, consumers


def find_folds(model, records, consumers):
    """{binary conv name: [names of the ReLU / BatchNorm to fold into it, in order]}."""
    by_input = {}
    for name, module in model.named_modules():
        if id(module) in records and isinstance(module, (nn.BatchNorm2d, nn.ReLU)):
            inputs, _ = records[id(module)]
            if inputs and isinstance(inputs[0], Tensor):
                by_input.setdefault(id(inputs[0]), []).append((name, module))
    folds = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.BinaryConv2d) or id(module) not in records:
            continue
        chain, current = [], records[id(module)][1]
        for kind in (nn.ReLU, nn.BatchNorm2d):
            if consumers.get(id(current), 0) != 1:
                break
            nxt = [(n, m) for n, m in by_input.get(id(current), []) if isinstance(m, kind)]
            if len(nxt) != 1:
                continue
            chain.append(nxt[0][0])
            current = records[id(nxt[0][1])][1]
        folds[name] = chain
    return folds


def bn_arrays(bn):
    arrays = {"mean": bn.running_mean.astype(np.float32),
              "invstd": inverse_std(bn.running_var, bn.eps, np.float32)}
    if bn.weight is not None:
        arrays["gamma"] = bn.weight.data.astype(np.float32)
    if bn.bias is not None:
        arrays["beta"] = bn.bias.data.astype(np.float32)
    return arrays


def pack_binary_conv(conv, folded_modules):
    """(spec, arrays, float binarizer or None) of one BinaryConv2d and what folds into it."""
    ext = kernels()
    with no_grad():
        wq = WEIGHT_QUANTIZERS[conv.weight_quantizer](Tensor(conv.weight.data)).data.astype(np.float32)
    o, c, k, _ = wq.shape
    bt = ext.pack_weights(np.ascontiguousarray(wq))
    arrays = {"words": np.ascontiguousarray(bt[:, :o].T), "alpha": np.abs(wq.reshape(o, -1)[:, 0])}
    spec = {"in_channels": c, "out_channels": o, "kernel": k, "stride": conv.stride, "padding": conv.padding,
            "pad_value": conv.pad_value, "relu": False}
    binarizer = conv.binarizer
    float_binarizer = None
    if isinstance(binarizer, nn.LAB):
        spec.update(binarizer="lab", lab_pairing=binarizer.pairing, lab_bits=binarizer.bits)
        w = binarizer.weight.data
        if binarizer.bits < 32:
            q, scale = quantize_symmetric(w, binarizer.bits)
            arrays.update(lab_q=q, lab_scale=scale)
            w = dequantize(q, scale)
        arrays.update(lab_weight=np.ascontiguousarray(w, np.float32), lab_bias=binarizer.bias.data.copy(),
                      lab_beta=np.asarray(binarizer.beta.data, np.float32))
    elif isinstance(binarizer, nn.Identity):
        spec["binarizer"] = "prebinarized"
    elif binarizer.name in ("sign", "approxsign"):
        spec["binarizer"] = "sign"          # both are sign(x) in the forward
    else:
        spec.update(binarizer="float", float_binarizer=binarizer.name, binarizer_k=binarizer.k)
        float_binarizer = binarizer
    for module in folded_modules:
        if isinstance(module, nn.ReLU):
            spec["relu"] = True
        else:
            arrays.update(bn_arrays(module))
    return spec, arrays, float_binarizer


class PackedModel:
    """A converted model: call it on a float32 batch (N, 3, S, S) to get logits.  It runs its module tree's
    forward the first time it sees an input shape, and that forward's program (program.py) after."""

    def __init__(self, model, config, threads=1):
        self.model, self.config = model, dict(config)
        self.programs = {}              # input shape -> Program, or None where the tree must run
        self.hooks_seen = None          # Module.hook_changes when the tree was last searched for hooks
        self.hooked = False
        self.set_threads(threads)

    def forget_recorded(self):
        """Drop the recorded forwards: call it after changing the packed model's modules or parameters in place
        (the next forward of each shape runs the tree again and records it anew)."""
        self.programs.clear()

    def set_threads(self, threads):
        self.threads = threads
        for m in self.packed_convs():
            m.threads = threads

    def packed_convs(self):
        return [m for m in self.model.modules() if isinstance(m, PackedBinaryConv2d)]

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        size = self.config["image_size"]
        if x.ndim != 4 or x.shape[1:] != (3, size, size):
            raise ValueError(f"this packed {self.config['arch']} expects images of shape (N, 3, {size}, {size}), "
                             f"got {x.shape}")
        with no_grad(), use(threads=self.threads):      # the float layers' kernels split work too
            if self.hooks_seen != Module.hook_changes:
                self.hooked = any(module.has_hooks() for module in self.model.modules())
                self.hooks_seen = Module.hook_changes
            if self.hooked:
                return self.model(Tensor(x, _keep_dtype=True)).data
            if x.shape not in self.programs:
                out, self.programs[x.shape] = record_program(self.model, x)
                return out
            program = self.programs[x.shape]
            return program(x) if program is not None else self.model(Tensor(x, _keep_dtype=True)).data


def convert(model, config, threads=1):
    """Pack `model` (a trained or freshly built minilab model; it is modified in place — pass a copy to keep the
    float one).  `config` is the create_model configuration (arch, image_size, …), stored with the packed model."""
    if kernels() is None:
        raise RuntimeError(f"the packed engine needs the compiled extension ({reason()})")
    model.eval()
    records, consumers = trace(model, config["image_size"])
    folds = find_folds(model, records, consumers)
    for name, chain in folds.items():
        conv = get_submodule(model, name)
        spec, arrays, float_binarizer = pack_binary_conv(conv, [get_submodule(model, n) for n in chain])
        spec["folded"] = chain
        set_submodule(model, name, PackedBinaryConv2d(spec, arrays, float_binarizer))
        for folded in chain:
            set_submodule(model, folded, nn.Identity())
    fuse_residual_blocks(model)
    model.eval()
    bind_float_layers(model)
    return PackedModel(model, config, threads)
