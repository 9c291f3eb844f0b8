"""Evaluation: top-1 / top-5 accuracy and loss of a model on a dataset, its confusion matrix, and the check that a
dataset's classes are the ones a checkpoint was trained on."""
import numpy as np

from ..core.autograd import no_grad
from ..distributed.world import ONE_PROCESS


def topk_correct(logits, labels, k):
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def evaluate(model, loader, progress=False, world=ONE_PROCESS):
    """{'top1', 'top5', 'loss', 'predictions', 'labels'} of `model` (switched to eval mode, then back) over
    one pass of `loader`; 'predictions' are the top-1 class of every image, in the loader's order.
    With a data-parallel `world`, each rank evaluates its batches and the counts are summed: the same top-1/top-5
    as one process evaluating every batch ('predictions' and 'labels' stay the rank's own)."""
    from tqdm import tqdm

    from ..ops.loss import log_softmax

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
    n, top1, top5, loss = (float(v) for v in world.sum([n, top1, top5, loss]))
    return {"top1": top1 / max(n, 1), "top5": top5 / max(n, 1), "loss": loss / max(n, 1),
            "predictions": np.concatenate(predictions) if predictions else np.zeros(0, np.int64),
            "labels": np.concatenate(labels) if labels else np.zeros(0, np.int64)}


def confusion_matrix(labels, predictions, num_classes):
    """counts[i, j] = how many images of true class i were predicted as class j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
    return counts


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
