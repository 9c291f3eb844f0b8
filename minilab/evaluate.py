"""Evaluation: top-1 / top-5 accuracy of a model on a dataset, and the `python -m minilab.evaluate` CLI."""
import argparse
import sys

import numpy as np

from .autograd import no_grad


def topk_correct(logits, labels, k):
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def evaluate(model, loader, progress=False, world=None):
    """{'top1', 'top5', 'loss'} of `model` (switched to eval mode, then back) over one pass of `loader`.
    With a data-parallel `world`, each rank evaluates its batches and the counts are summed: the same top-1/top-5
    as one process evaluating every batch."""
    from tqdm import tqdm

    from .ops.loss import log_softmax

    was_training = model.training
    model.eval()
    n = top1 = top5 = 0
    loss = 0.0
    try:
        with no_grad():
            for x, y in tqdm(loader.batches(0), total=len(loader), desc="eval", leave=False, disable=not progress):
                logits = model(x).data
                top1 += topk_correct(logits, y, 1)
                top5 += topk_correct(logits, y, 5)
                loss -= float(log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].sum())
                n += len(y)
    finally:
        model.train(was_training)
    if world is not None and world.size > 1:
        n, top1, top5, loss = world.sum([n, top1, top5, loss])
    return {"top1": top1 / max(n, 1), "top5": top5 / max(n, 1), "loss": loss / max(n, 1)}


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
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--input", default=None, choices=("cache", "stream"),
                        help="decode the images through the preprocessing cache or as they are read (default: as "
                             "the run was trained)")
    args = parser.parse_args(argv)
    from .checkpoint import load_model_from_checkpoint
    from .data import DataError, Loader, load_datasets

    try:
        model, record = load_model_from_checkpoint(args.checkpoint)
        data = args.data if args.data is not None else record["args"]["data"]
        size = record["model"]["image_size"]
        source = args.input or record["args"].get("input", "cache")
        _, val = load_datasets(data, size, args.cache_dir, input=source if source != "auto" else "cache")
        check_classes(record, val.classes, data)
        result = evaluate(model, Loader(val, args.batch_size, shuffle=False), progress=True)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.checkpoint}: top-1 {100 * result['top1']:.2f} %  top-5 {100 * result['top5']:.2f} %  "
          f"loss {result['loss']:.4f}  ({len(val)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
