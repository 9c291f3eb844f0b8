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
    p.add_argument("--image-size", type=int, default=64,
                   help="training resolution in px, 16-512 (default 64; xnornet needs at least 64). Real images "
                        "are resized to it once, when the preprocessing cache is built")
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
                   help="how many cores one training process uses: the compiled kernels' threads, which also run "
                        "the conv GEMMs; on the pure-NumPy path, the BLAS library's threads (default: the BLAS "
                        "library's own default, compiled kernels single-threaded)")
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


class Session:
    """Everything a run holds between steps: its options, model, optimizer, loaders, learning-rate schedule,
    where it stands (epoch, batch within the epoch, global step) and the metrics rows written so far."""

    def __init__(self, args, model, model_config, optimizer, train_set, val_set, train_loader, val_loader,
                 schedule):
        self.args, self.model, self.model_config, self.optimizer = args, model, model_config, optimizer
        self.train_set, self.val_set, self.train_loader, self.val_loader = train_set, val_set, train_loader, val_loader
        self.schedule = schedule
        self.epoch = self.batch = self.step = 0
        self.metrics = []
        self.ckpt_path = os.path.join(args.out, "checkpoint.npz")
        self.metrics_path = os.path.join(args.out, "metrics.jsonl")

    @property
    def steps_per_epoch(self):
        return len(self.train_loader)

    def max_steps_reached(self):
        return self.args.max_steps is not None and self.step >= self.args.max_steps


RUN_DEFINING_OPTIONS = ("arch", "data", "image_size", "width", "batch_size", "lr", "optimizer", "schedule",
                        "binarizer", "binarizer_k", "lab_blocks", "lab_bits", "seed", "augment", "weight_decay",
                        "warmup_epochs", "synthetic_size")


def restore_options(args):
    """With --resume: read the run's checkpoint and put the options that define the run back into `args`.
    Returns (model state, optimizer state, record), or None for a fresh run."""
    from .checkpoint import read_checkpoint

    if not args.resume:
        return None
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    if not os.path.exists(ckpt_path):
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    model_state, optim_state, record = read_checkpoint(ckpt_path)
    saved = record["args"]
    for key in RUN_DEFINING_OPTIONS:
        setattr(args, key, saved[key])
    args.epochs = saved["epochs"] if args.epochs is None else args.epochs
    # the BLAS thread count changes float summation order: keep the run's own unless overridden
    args.threads = saved["threads"] if args.threads is None else args.threads
    return model_state, optim_state, record


def set_up(args):
    """Set-up and resume: threads, data, model, optimizer, loaders and schedule; with --resume, the saved weights,
    optimizer state and position, and the metrics of the epochs already finished."""
    from .data import Loader, load_datasets
    from .memory import keep_freed_memory
    from .nn import init

    os.makedirs(args.out, exist_ok=True)
    resumed = restore_options(args)
    if args.threads:
        from .threads import set_threads
        set_threads(args.threads)
    keep_freed_memory()   # every step frees and reallocates the same arrays: keep them in the process
    args.epochs = args.epochs or PAPER_EPOCHS[args.arch]
    args.binarizer = args.binarizer or default_binarizer(args.arch)

    train_set, val_set = load_datasets(args.data, args.image_size, args.cache_dir, tuple(args.synthetic_size),
                                       args.seed, not args.no_progress)
    model_config = {"arch": args.arch, "num_classes": len(train_set.classes), "image_size": args.image_size,
                    "width": args.width, "binarizer": args.binarizer, "lab_blocks": args.lab_blocks,
                    "lab_bits": args.lab_bits, "binarizer_k": args.binarizer_k}
    init.seed(args.seed)
    model = create_model(**model_config)
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_loader = Loader(train_set, args.batch_size, shuffle=True, augmentation=args.augment, seed=args.seed,
                          workers=args.workers)
    val_loader = Loader(val_set, 100, shuffle=False)
    steps = len(train_loader)
    schedule = make_schedule(args.schedule, args.lr, steps * args.epochs, int(args.warmup_epochs * steps))
    session = Session(args, model, model_config, optimizer, train_set, val_set, train_loader, val_loader, schedule)
    if resumed is not None:
        model_state, optim_state, record = resumed
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        session.epoch, session.batch, session.step = record["epoch"], record["batch"], record["step"]
        print(f"resuming {args.out} at epoch {session.epoch + 1}, batch {session.batch} (step {session.step})")
    session.metrics = [m for m in _read_metrics(session.metrics_path) if m["epoch"] < session.epoch + 1]
    _write_metrics(session.metrics_path, session.metrics)
    return session


def save(session):
    """Checkpointing: the weights, the optimizer state and the run's position, written atomically."""
    from .checkpoint import save_checkpoint
    from .data.classnames import class_record

    args = session.args
    save_checkpoint(session.ckpt_path, session.model, session.optimizer, {
        "epoch": session.epoch, "batch": session.batch, "step": session.step, "model": session.model_config,
        **class_record(session.train_set.classes),
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}})


def train_epoch(session, stop):
    """One epoch (or the rest of it, after a resume): every batch through `train_step`, checkpoints every
    --checkpoint-every steps.  Raises Interrupted when `stop` says a signal arrived, after the step in flight.
    Returns {'seen', 'correct', 'loss_sum', 'started', 'seconds'} for the batches trained here."""
    from tqdm import tqdm

    args, optimizer = session.args, session.optimizer
    seen = correct = 0
    loss_sum = 0.0
    session.model.train()
    t0 = time.time()
    bar = tqdm(total=session.steps_per_epoch, initial=session.batch, desc=f"epoch {session.epoch + 1}/{args.epochs}",
               disable=args.no_progress, dynamic_ncols=True)
    try:
        for x, y in session.train_loader.batches(session.epoch, session.batch):
            optimizer.lr = session.schedule(session.step)
            try:
                loss, hits = train_step(session.model, optimizer, x, y)
            except FloatingPointError as error:
                raise FloatingPointError(f"{error} at epoch {session.epoch + 1}, step {session.step}; stopping. "
                                         f"The last good checkpoint ({session.ckpt_path}) was kept — try a lower "
                                         f"--lr") from None
            session.batch, session.step = session.batch + 1, session.step + 1
            seen, correct, loss_sum = seen + len(y), correct + hits, loss_sum + loss * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen / (time.time() - t0):.0f}")
            bar.update(1)
            if args.checkpoint_every and session.step % args.checkpoint_every == 0:
                save(session)
            if stop["signal"] is not None:
                raise Interrupted()
            if session.max_steps_reached():
                break
    finally:
        bar.close()
    return {"seen": seen, "correct": correct, "loss_sum": loss_sum, "started": t0, "seconds": time.time() - t0}


def finish_epoch(session, stats):
    """Evaluation and the end-of-epoch record: validation top-1/top-5, one metrics.jsonl row, a checkpoint at the
    start of the next epoch, one log line."""
    from .evaluate import evaluate
    from .plot import write_run_curves

    result = evaluate(session.model, session.val_loader, not session.args.no_progress)
    session.epoch, session.batch = session.epoch + 1, 0
    seen = max(stats["seen"], 1)
    row = {"epoch": session.epoch, "step": session.step, "lr": session.optimizer.lr,
           "train_loss": stats["loss_sum"] / seen, "train_acc": stats["correct"] / seen, "val_top1": result["top1"],
           "val_top5": result["top5"], "val_loss": result["loss"],
           "images_per_s": stats["seen"] / max(stats["seconds"], 1e-9), "epoch_seconds": time.time() - stats["started"]}
    session.metrics.append(row)
    _write_metrics(session.metrics_path, session.metrics)
    write_run_curves(session.args.out)      # the run's own curves.png (skipped, said once, without matplotlib)
    save(session)
    print(f"epoch {session.epoch}/{session.args.epochs}: loss {row['train_loss']:.3f} train "
          f"{100 * row['train_acc']:.1f}% val top-1 {100 * row['val_top1']:.2f}% top-5 {100 * row['val_top5']:.2f}% "
          f"({row['images_per_s']:.0f} img/s)", flush=True)


def run(args):
    """Train until --epochs (or --max-steps); SIGINT/SIGTERM save a checkpoint and return 130."""
    session = set_up(args)
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    start_time = time.time()
    print(f"training {args.arch} ({args.binarizer}, lab_blocks {args.lab_blocks}, width {args.width}) on "
          f"{session.train_set.name}: {len(session.train_set)} train / {len(session.val_set)} val images at "
          f"{args.image_size}px, {session.model.num_parameters():,} parameters, {args.epochs} epochs × "
          f"{session.steps_per_epoch} steps")
    try:
        while session.epoch < args.epochs:
            stats = train_epoch(session, stop)
            if session.max_steps_reached() and session.batch < session.steps_per_epoch:
                save(session)
                print(f"stopped after --max-steps {args.max_steps}")
                break
            finish_epoch(session, stats)
    except Interrupted:
        save(session)
        print(f"\ninterrupted: saved {session.ckpt_path} at epoch {session.epoch + 1}, batch {session.batch}; "
              f"continue with `python -m minilab.train --resume --out {args.out}`")
        return 130
    finally:
        session.train_loader.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    if session.metrics:
        last = session.metrics[-1]
        print(f"done: {args.arch} {args.binarizer} val top-1 {100 * last['val_top1']:.2f}% top-5 "
              f"{100 * last['val_top5']:.2f}% after {session.epoch} epochs, {time.time() - start_time:.0f} s this "
              f"session; checkpoint {session.ckpt_path}")
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
