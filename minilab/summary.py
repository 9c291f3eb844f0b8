"""`python -m minilab.summary`: parameters (binary / float), model size, BOPs, FLOPs and OPs per layer and in
total of an architecture, counted as `minilab.analysis.summary` explains."""
import argparse
import sys

from .analysis.summary import format_summary, layer_costs


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
