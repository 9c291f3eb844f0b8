"""Model summary: parameters (binary / float), model size, BOPs, FLOPs and OPs per layer and in total (the
library behind `python -m minilab.summary`).

Conventions (Larq's model summary, with LAB counted correctly):
  - parameters: every weight of the model — trainable or fixed (QuickNet's blur kernel) — with BatchNorm counted
    as 2 per channel (Larq folds the running statistics into γ and β, also when scale/center are off);
  - model size: binary conv weights 1 bit, everything else 32 bits, in decimal MB (10⁶ bytes);
  - BOPs = binary MACs (binary conv weights × output pixels); FLOPs = float MACs (float conv / dense weights ×
    output pixels, and LAB's depthwise 3×3 with multiplier 2: 18·C per input pixel — float work, *not* binary as
    Larq's summary books it); OPs = BOPs/64 + FLOPs."""
import numpy as np

from .. import nn
from ..core.autograd import Tensor, no_grad


def _numel(shape):
    return int(np.prod(shape))


def layer_costs(model, image_size, in_channels=3):
    """One row per costed layer: name, kind, binary params, float params, BOPs, FLOPs (a batch-1 forward)."""
    rows, removers = [], []
    names = {id(m): name for name, m in model.named_modules()}

    def hook(module, inputs, output):
        name = names.get(id(module), type(module).__name__)
        out_pixels = _numel(output.shape[2:]) if output.ndim == 4 else 1
        if isinstance(module, nn.BinaryConv2d):
            w = module.weight.size
            rows.append((name, "binary conv", w, 0, w * out_pixels, 0))
        elif isinstance(module, nn.LAB):
            c = inputs[0].shape[1]
            rows.append((name, "LAB", 0, module.num_parameters(), 0, 18 * c * _numel(inputs[0].shape[2:])))
        elif isinstance(module, nn.Conv2d):
            w = module.kernel.size
            rows.append((name, "conv", 0, w + (module.bias.size if module.bias is not None else 0), 0,
                         w * out_pixels))
        elif isinstance(module, nn.Linear):
            rows.append((name, "dense", 0, module.num_parameters(), 0, module.weight.size))
        elif isinstance(module, nn.BatchNorm2d):
            rows.append((name, "batchnorm", 0, 2 * len(module.running_mean), 0, 0))
        elif isinstance(module, (nn.PReLU, nn.LearnableBias)):
            rows.append((name, type(module).__name__, 0, module.num_parameters(), 0, 0))

    for module in model.modules():
        if isinstance(module, (nn.BinaryConv2d, nn.LAB, nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.PReLU,
                               nn.LearnableBias)):
            removers.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros((1, in_channels, image_size, image_size), np.float32)))
    finally:
        model.train(was_training)
        for remove in removers:
            remove()
    return rows


def totals(rows):
    binary = sum(r[2] for r in rows)
    floating = sum(r[3] for r in rows)
    bops = sum(r[4] for r in rows)
    flops = sum(r[5] for r in rows)
    return {"params": binary + floating, "binary_params": binary, "float_params": floating,
            "size_mb": (binary / 8 + 4 * floating) / 1e6, "bops": bops, "flops": flops, "ops": bops / 64 + flops}


def summarize(model, image_size=224):
    return totals(layer_costs(model, image_size))


def format_summary(rows, title=""):
    lines = [title] if title else []
    lines.append(f"{'layer':44s} {'kind':12s} {'binary p.':>11s} {'float p.':>10s} {'BOPs':>14s} {'FLOPs':>14s}")
    for name, kind, bp, fp, bops, flops in rows:
        lines.append(f"{name[:44]:44s} {kind:12s} {bp:11,d} {fp:10,d} {bops:14,d} {flops:14,d}")
    t = totals(rows)
    lines.append("-" * 110)
    lines.append(f"total parameters {t['params']:,} ({t['binary_params']:,} binary, {t['float_params']:,} float)   "
                 f"model size {t['size_mb']:.3f} MB")
    lines.append(f"BOPs {t['bops'] / 1e9:.3f} G   FLOPs {t['flops'] / 1e6:.2f} M   "
                 f"OPs = BOPs/64 + FLOPs = {t['ops'] / 1e6:.2f} M")
    return "\n".join(lines)
