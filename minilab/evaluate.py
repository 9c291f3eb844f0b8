"""Evaluation: top-1 / top-5 accuracy of a model on a dataset, and the `python -m minilab.evaluate` CLI."""
import argparse
import sys

import numpy as np

from .autograd import no_grad
from .validate import Refused, check_output_file, int_range


def topk_correct(logits, labels, k):
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def evaluate(model, loader, progress=False, world=None):
    """{'top1', 'top5', 'loss', 'predictions', 'labels'} of `model` (switched to eval mode, then back) over
    one pass of `loader`; 'predictions' are the top-1 class of every image, in the loader's order.
    With a data-parallel `world`, each rank evaluates its batches and the counts are summed: the same top-1/top-5
    as one process evaluating every batch ('predictions' and 'labels' stay the rank's own)."""
    from tqdm import tqdm

    from .ops.loss import log_softmax

    was_training = model.training
    model.eval()
    n = top1 = top5 = 0
    loss = 0.0
    predictions, labels = [], []
    try:
        with no_grad():
            for x, y in tqdm(loader.batches(0), total=len(loader), desc="eval", leave=False, disable=not progress):
                logits = model(x).data
                top1 += topk_correct(logits, y, 1)
                top5 += topk_correct(logits, y, 5)
                loss -= float(log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].sum())
                n += len(y)
                predictions.append(logits.argmax(axis=1))
                labels.append(np.asarray(y))
    finally:
        model.train(was_training)
    if world is not None and world.size > 1:
        n, top1, top5, loss = world.sum([n, top1, top5, loss])
    return {"top1": top1 / max(n, 1), "top5": top5 / max(n, 1), "loss": loss / max(n, 1),
            "predictions": np.concatenate(predictions) if predictions else np.zeros(0, np.int64),
            "labels": np.concatenate(labels) if labels else np.zeros(0, np.int64)}


def confusion_matrix(labels, predictions, num_classes):
    """counts[i, j] = how many images of true class i were predicted as class j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
    return counts


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


def check_classes(record, classes, data):
    """The dataset must have the classes the model was trained on, in the same order: label i must mean the same
    class to both, or the accuracy measures nothing (ValueError)."""
    trained = record.get("classes") or (record.get("data") or {}).get("classes")
    if trained is not None:
        if list(trained) != list(classes):
            missing, extra = sorted(set(trained) - set(classes)), sorted(set(classes) - set(trained))
            detail = f"missing {missing[:5]}, not trained on {extra[:5]}" if missing or extra else "in another order"
            raise ValueError(f"--data {data} has other classes than the checkpoint was trained on ({detail})")
    elif record["model"].get("num_classes") != len(classes):
        raise ValueError(f"--data {data} has {len(classes)} classes but the checkpoint's model predicts "
                         f"{record['model'].get('num_classes')}")


def main(argv=None):
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
    args = parser.parse_args(argv)
    try:
        if args.confusion:   # before the evaluation, not after it
            check_output_file(args.confusion, "--confusion")
    except Refused as error:
        parser.error(str(error))
    from .checkpoint import check_resumable, load_model_from_checkpoint
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
        from .plotting import confusion_figure

        title = f"{record['model']['arch']} ({record['model']['binarizer']}): top-1 {100 * result['top1']:.1f} %"
        if confusion_figure(counts, names, args.confusion, title):
            print(f"wrote {args.confusion}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
