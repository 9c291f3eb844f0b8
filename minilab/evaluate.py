"""`python -m minilab.evaluate`: top-1 / top-5 accuracy of a training checkpoint on a dataset, its per-class
accuracy and, on request, its confusion matrix (the library: `minilab.training.evaluation`)."""
import argparse
import sys

import numpy as np

from .core.validate import Refused, check_output_file, int_range
from .training.evaluation import check_classes, confusion_matrix, evaluate


def print_per_class(counts, classes, names, limit=30):
    """One line per class: its name (and identifier), top-1 accuracy (the confusion matrix's diagonal) and image
    count.  Past `limit` classes only the ten weakest and ten strongest are listed."""
    totals = counts.sum(axis=1)
    accuracy = np.diag(counts) / np.maximum(totals, 1)
    labels = [name if name == cls else f"{name} ({cls})" for cls, name in zip(classes, names)]
    order = list(range(len(classes)))
    if len(order) > limit:
        ranked = sorted(order, key=lambda i: accuracy[i])
        order = ranked[:10] + ranked[-10:]
        print(f"per-class top-1 accuracy (the 10 weakest and 10 strongest of {len(classes)} classes):")
    else:
        print("per-class top-1 accuracy:")
    width = max(len(labels[i]) for i in order)
    for i in order:
        value = f"{100 * accuracy[i]:6.2f} %" if totals[i] else "     —  "
        print(f"  {labels[i]:{width}s}  {value}  ({totals[i]} images)")


def build_parser():
    """The command line of `python -m minilab.evaluate` (the docs render their page from it)."""
    parser = argparse.ArgumentParser(prog="python -m minilab.evaluate",
                                     description="Top-1/top-5 accuracy of a training checkpoint on a dataset's "
                                                 "validation split.")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.npz written by minilab.train")
    parser.add_argument("--data", default=None, help="synthetic | imagenette | PATH (default: the data the "
                                                     "checkpoint was trained on)")
    parser.add_argument("--batch-size", type=int_range(1, 4096), default=100, help="images per forward, 1-4096 "
                        "(default 100)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--input", default=None, choices=("cache", "stream"),
                        help="decode the images through the preprocessing cache or as they are read (default: as "
                             "the run was trained)")
    parser.add_argument("--confusion", default=None, metavar="OUT.png",
                        help="also draw the confusion matrix, with the class names, as a PNG (needs matplotlib)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.confusion:   # before the evaluation, not after it
            check_output_file(args.confusion, "--confusion")
    except Refused as error:
        parser.error(str(error))
    from .training.checkpoint import check_resumable, load_model_from_checkpoint
    from .data import DataError, Loader, load_datasets
    from .data.classnames import human_names

    try:
        model, record = load_model_from_checkpoint(args.checkpoint)
        run = check_resumable(args.checkpoint, record)["args"]
        data = args.data if args.data is not None else run.get("data")
        size = record["model"]["image_size"]
        source = args.input or run.get("input", "cache")
        # generated data is the run's own validation set only at the run's size and seed
        synthetic = tuple(run.get("synthetic_size", (2000, 500))), int(run.get("seed", 0))
        _, val = load_datasets(data, size, args.cache_dir, *synthetic, input=source if source != "auto" else "cache")
        check_classes(record, val.classes, data)
        result = evaluate(model, Loader(val, args.batch_size, shuffle=False), progress=True)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.checkpoint}: top-1 {100 * result['top1']:.2f} %  top-5 {100 * result['top5']:.2f} %  "
          f"loss {result['loss']:.4f}  ({len(val)} images)")
    counts = confusion_matrix(result["labels"], result["predictions"], len(val.classes))
    names = human_names(val.classes)
    print_per_class(counts, val.classes, names)
    if args.confusion:
        from .analysis.plotting import confusion_figure

        title = f"{record['model']['arch']} ({record['model']['binarizer']}): top-1 {100 * result['top1']:.1f} %"
        if confusion_figure(counts, names, args.confusion, title):
            print(f"wrote {args.confusion}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
