"""`python -m minilab.train`: train a BNN from scratch, with resumable, crash-safe checkpoints.

The three places a data-parallel version will touch are kept apart: `train_step` (the gradient step — an
all-reduce goes between backward and step), `Loader` (the data order — a sharded sampler), and `save_checkpoint`
(written by one process)."""
import argparse
import json
import math
import os
import signal
import sys
import time


from . import ops as F
from .models import MODELS, create_model, default_binarizer
from .ops.binarizers import ALL_BINARIZERS
from .optim import OPTIMIZERS, SCHEDULES, make_schedule

PAPER_EPOCHS = {"labbnn": 100, "birealnet18": 150, "quicknet": 120, "quicknet_small": 120, "quicknet_large": 120,
                "reactnet_a": 75, "xnornet": 60}


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minilab.train",
        description="Train a binary neural network (LAB-BNN, Bi-RealNet-18, QuickNet, ReActNet-A, XNOR-Net) from "
                    "scratch on Imagenette, an image folder, or generated data. Defaults follow the LAB paper: "
                    "Adam, lr 2.5e-3, linear decay to 1e-6 over the run's real number of steps.",
        epilog="Examples:\n  python -m minilab.train --arch labbnn --data synthetic --epochs 2 --image-size 32\n"
               "  python -m minilab.train --arch labbnn --data imagenette --image-size 64 --width 0.5 --epochs 30\n"
               "  python -m minilab.train --resume --out runs/labbnn     # continue an interrupted run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="labbnn", choices=sorted(MODELS), help="architecture (default labbnn)")
    p.add_argument("--data", default=None, help="synthetic | imagenette | imagenette2-160/-320 | PATH to "
                   "root/{train,val}/<class>/*. Default: Imagenette from the cache directory if present")
    p.add_argument("--image-size", type=int, default=64, help="training resolution in px, 32-224 (default 64)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier for every layer (default 1.0)")
    p.add_argument("--epochs", type=int, default=None, help="default: the paper's (labbnn 100, birealnet18 150…)")
    p.add_argument("--batch-size", type=int, default=64, help="default 64 (the paper: 256 on ImageNet, 32 on "
                   "Imagenette)")
    p.add_argument("--lr", type=float, default=2.5e-3, help="peak learning rate (default 2.5e-3)")
    p.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="linear", choices=sorted(SCHEDULES),
                   help="linear: decay to 1e-6 over the run; cosine: warm-up then cosine; constant")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="warm-up length for --schedule cosine")
    p.add_argument("--binarizer", default=None, choices=ALL_BINARIZERS,
                   help="activation binarizer (default: lab for labbnn, sign otherwise)")
    p.add_argument("--binarizer-k", type=float, default=None, help="k for niblack (-0.2) / sauvola (0.5)")
    p.add_argument("--lab-blocks", default="1111", help="4 bits, LAB on/off per residual stage (default 1111)")
    p.add_argument("--lab-bits", type=int, default=32, choices=(32, 8, 4),
                   help="train LAB's depthwise kernels with INT8/INT4 fake quantisation (default 32: float)")
    p.add_argument("--augment", default="rrc", choices=("rrc", "padcrop", "none"),
                   help="training augmentation: random-resized crop (default), pad-and-crop, none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads and as many OpenMP threads for the compiled kernels (README 'Threads'; "
                        "default: the BLAS library's own default, kernels single-threaded)")
    p.add_argument("--workers", type=int, default=1, help="background processes preparing batches (default 1)")
    p.add_argument("--out", default="runs/latest", help="run directory: checkpoint.npz, metrics.jsonl")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps (0: per epoch)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--cache-dir", default=None, help="where Imagenette and the preprocessing cache live "
                   "(default $MINILAB_CACHE or ~/.cache/minilab)")
    p.add_argument("--synthetic-size", type=int, nargs=2, default=(2000, 500), metavar=("TRAIN", "VAL"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return p


def train_step(model, optimizer, x, y):
    """One gradient step; returns (loss, number of correct top-1 predictions)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"the loss became {value}")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return value, int((logits.data.argmax(axis=1) == y).sum())


class Interrupted(Exception):
    pass


def _write_metrics(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def _read_metrics(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run(args):
    from tqdm import tqdm

    from .checkpoint import read_checkpoint, save_checkpoint
    from .data import Loader, load_datasets
    from .evaluate import evaluate
    from .nn import init

    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    record = None
    if args.resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        model_state, optim_state, record = read_checkpoint(ckpt_path)
        saved = record["args"]
        for key in ("arch", "data", "image_size", "width", "batch_size", "lr", "optimizer", "schedule", "binarizer",
                    "binarizer_k", "lab_blocks", "lab_bits", "seed", "augment", "weight_decay", "warmup_epochs",
                    "synthetic_size"):
            setattr(args, key, saved[key])
        args.epochs = saved["epochs"] if args.epochs is None else args.epochs
        # the BLAS thread count changes float summation order: keep the run's own unless overridden
        args.threads = saved["threads"] if args.threads is None else args.threads
    if args.threads:
        from .threads import set_threads
        set_threads(args.threads)
    from .memory import keep_freed_memory
    keep_freed_memory()   # every step frees and reallocates the same arrays: keep them in the process
    args.epochs = args.epochs or PAPER_EPOCHS[args.arch]
    args.binarizer = args.binarizer or default_binarizer(args.arch)
    progress = not args.no_progress

    train_set, val_set = load_datasets(args.data, args.image_size, args.cache_dir, tuple(args.synthetic_size),
                                       args.seed, progress)
    model_config = {"arch": args.arch, "num_classes": len(train_set.classes), "image_size": args.image_size,
                    "width": args.width, "binarizer": args.binarizer, "lab_blocks": args.lab_blocks,
                    "lab_bits": args.lab_bits, "binarizer_k": args.binarizer_k}
    init.seed(args.seed)
    model = create_model(**model_config)
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_loader = Loader(train_set, args.batch_size, shuffle=True, augmentation=args.augment, seed=args.seed,
                          workers=args.workers)
    val_loader = Loader(val_set, 100, shuffle=False)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * args.epochs
    schedule = make_schedule(args.schedule, args.lr, total_steps, int(args.warmup_epochs * steps_per_epoch))
    epoch, batch, step = 0, 0, 0
    if record is not None:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        epoch, batch, step = record["epoch"], record["batch"], record["step"]
        print(f"resuming {args.out} at epoch {epoch + 1}, batch {batch} (step {step})")
    metrics = [m for m in _read_metrics(metrics_path) if m["epoch"] < epoch + 1]
    _write_metrics(metrics_path, metrics)

    def checkpoint(at_epoch, at_batch, at_step):
        save_checkpoint(ckpt_path, model, optimizer, {
            "epoch": at_epoch, "batch": at_batch, "step": at_step, "model": model_config,
            "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}})

    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    start_time = time.time()
    print(f"training {args.arch} ({args.binarizer}, lab_blocks {args.lab_blocks}, width {args.width}) on "
          f"{train_set.name}: {len(train_set)} train / {len(val_set)} val images at {args.image_size}px, "
          f"{model.num_parameters():,} parameters, {args.epochs} epochs × {steps_per_epoch} steps")
    try:
        while epoch < args.epochs:
            model.train()
            seen = correct = 0
            loss_sum = 0.0
            t0 = time.time()
            bar = tqdm(total=steps_per_epoch, initial=batch, desc=f"epoch {epoch + 1}/{args.epochs}",
                       disable=not progress, dynamic_ncols=True)
            for x, y in train_loader.batches(epoch, batch):
                optimizer.lr = schedule(step)
                try:
                    loss, hits = train_step(model, optimizer, x, y)
                except FloatingPointError as error:
                    bar.close()
                    raise FloatingPointError(f"{error} at epoch {epoch + 1}, step {step}; stopping. The last good "
                                             f"checkpoint ({ckpt_path}) was kept — try a lower --lr") from None
                batch, step = batch + 1, step + 1
                seen, correct, loss_sum = seen + len(y), correct + hits, loss_sum + loss * len(y)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                                img_s=f"{seen / (time.time() - t0):.0f}")
                bar.update(1)
                if args.checkpoint_every and step % args.checkpoint_every == 0:
                    checkpoint(epoch, batch, step)
                if stop["signal"] is not None:
                    raise Interrupted()
                if args.max_steps is not None and step >= args.max_steps:
                    break
            bar.close()
            train_time = time.time() - t0
            if args.max_steps is not None and step >= args.max_steps and batch < steps_per_epoch:
                checkpoint(epoch, batch, step)
                print(f"stopped after --max-steps {args.max_steps}")
                break
            result = evaluate(model, val_loader, progress)
            epoch, batch = epoch + 1, 0
            row = {"epoch": epoch, "step": step, "lr": optimizer.lr, "train_loss": loss_sum / max(seen, 1),
                   "train_acc": correct / max(seen, 1), "val_top1": result["top1"], "val_top5": result["top5"],
                   "val_loss": result["loss"], "images_per_s": seen / max(train_time, 1e-9),
                   "epoch_seconds": time.time() - t0}
            metrics.append(row)
            _write_metrics(metrics_path, metrics)
            checkpoint(epoch, 0, step)
            print(f"epoch {epoch}/{args.epochs}: loss {row['train_loss']:.3f} train {100 * row['train_acc']:.1f}% "
                  f"val top-1 {100 * row['val_top1']:.2f}% top-5 {100 * row['val_top5']:.2f}% "
                  f"({row['images_per_s']:.0f} img/s)", flush=True)
    except Interrupted:
        checkpoint(epoch, batch, step)
        print(f"\ninterrupted: saved {ckpt_path} at epoch {epoch + 1}, batch {batch}; continue with "
              f"`python -m minilab.train --resume --out {args.out}`")
        return 130
    finally:
        train_loader.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    if metrics:
        last = metrics[-1]
        print(f"done: {args.arch} {args.binarizer} val top-1 {100 * last['val_top1']:.2f}% top-5 "
              f"{100 * last['val_top5']:.2f}% after {epoch} epochs, {time.time() - start_time:.0f} s this session; "
              f"checkpoint {ckpt_path}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .data import DataError

    try:
        if not 16 <= args.image_size <= 512:
            raise ValueError(f"--image-size must be between 16 and 512, got {args.image_size}")
        return run(args)
    except (DataError, ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if not isinstance(error, FloatingPointError) else 3


if __name__ == "__main__":
    sys.exit(main())
