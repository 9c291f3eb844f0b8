"""Model summary: parameters (binary / float), model size, BOPs, FLOPs and OPs per layer and in total, and the
`python -m minilab.summary` CLI.

Conventions (Larq's model summary, with LAB counted correctly):
  - parameters: every weight of the model — trainable or fixed (QuickNet's blur kernel) — with BatchNorm counted
    as 2 per channel (Larq folds the running statistics into γ and β, also when scale/center are off);
  - model size: binary conv weights 1 bit, everything else 32 bits, in decimal MB (10⁶ bytes);
  - BOPs = binary MACs (binary conv weights × output pixels); FLOPs = float MACs (float conv / dense weights ×
    output pixels, and LAB's depthwise 3×3 with multiplier 2: 18·C per input pixel — float work, *not* binary as
    Larq's summary books it); OPs = BOPs/64 + FLOPs."""
import argparse
import sys

import numpy as np

from . import nn
from .autograd import Tensor, no_grad


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


def build_parser():
    """The command line of `python -m minilab.summary` (the docs render their page from it)."""
    from .models import MODELS
    from .ops.binarizers import ALL_BINARIZERS

    p = argparse.ArgumentParser(prog="python -m minilab.summary",
                                description="Per-layer parameters (binary/float), model size (MB), BOPs, FLOPs "
                                            "and OPs = BOPs/64 + FLOPs of a minilab architecture.")
    p.add_argument("--arch", default="labbnn", choices=sorted(MODELS))
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--binarizer", default=None, choices=ALL_BINARIZERS)
    p.add_argument("--lab-blocks", default="1111")
    p.add_argument("--totals", action="store_true", help="print only the totals")
    return p


def main(argv=None):
    from .models import create_model, default_binarizer

    args = build_parser().parse_args(argv)
    binarizer = args.binarizer or default_binarizer(args.arch)
    try:
        model = create_model(args.arch, num_classes=args.num_classes, image_size=args.image_size, width=args.width,
                             binarizer=binarizer, lab_blocks=args.lab_blocks)
        rows = layer_costs(model, args.image_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    title = f"{args.arch} ({binarizer}, lab_blocks {args.lab_blocks}) at {args.image_size}px, {args.num_classes} classes"
    text = format_summary(rows, title)
    print("\n".join(text.splitlines()[-3:]) if args.totals else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
