"""`python -m minilab.train`: train a BNN from scratch, with resumable, crash-safe checkpoints — in one process,
or data-parallel over MPI (`mpiexec -n N python -m minilab.train ...`, see minilab.distributed).

Data parallelism touches three places, kept apart: `train_step` (the gradients are averaged between backward and
step), the loaders (each rank prepares its slice of every global batch), and `save` (rank 0 alone writes)."""
import argparse
import math
import os
import signal
import sys
import time
import traceback

from . import ops as F
from .models import MODELS, create_model, default_binarizer
from .ops.binarizers import ALL_BINARIZERS
from .data.loader import WorkerDied
from .optim import OPTIMIZERS, SCHEDULES, make_schedule
from .run_dir import RunDirError, apply_resume_options, check_same_data, open_run_dir
from .validate import IMAGE_SIZES, MAX_BATCH, MAX_WIDTH, check_allocation, loads_strict, strict_json

STREAM_FROM_SIZE = 160   # --input auto: a cache of S×S×3 bytes per image grows with S², decoding barely does
PAPER_EPOCHS = {"labbnn": 100, "birealnet18": 150, "quicknet": 120, "quicknet_small": 120, "quicknet_large": 120,
                "reactnet_a": 75, "xnornet": 60}


def build_parser():
    """The command line: one declarative list of options, each with its help text (hence its length)."""
    p = argparse.ArgumentParser(
        prog="python -m minilab.train",
        description="Train a binary neural network (LAB-BNN, Bi-RealNet-18, QuickNet, ReActNet-A, XNOR-Net) from "
                    "scratch on Imagenette, an image folder, or generated data. Defaults follow the LAB paper: "
                    "Adam, lr 2.5e-3, linear decay to 1e-6 over the run's real number of steps.",
        epilog="Examples:\n  python -m minilab.train --arch labbnn --data synthetic --epochs 2 --image-size 32\n"
               "  python -m minilab.train --arch labbnn --data imagenette --image-size 64 --width 0.5 --epochs 30\n"
               "  python -m minilab.train --resume --out runs/labbnn     # continue an interrupted run\n"
               "  mpiexec -n 4 python -m minilab.train --data imagenette --threads 1   # 4 ranks, data-parallel",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="labbnn", choices=sorted(MODELS), help="architecture (default labbnn)")
    p.add_argument("--data", default=None, help="synthetic | imagenette | imagenette2-160/-320 | PATH to "
                   "root/{train,val}/<class>/* (with --input stream also ImageNet's flat val/ plus "
                   "LOC_val_solution.csv or val_labels.txt). Default: Imagenette from the cache directory if present")
    p.add_argument("--image-size", type=int, default=64,
                   help="training resolution in px, 16-512 (default 64), checked against what the architecture "
                        "runs (an error names the nearest sizes that work). Real images are resized to it once "
                        "into the preprocessing cache (--input cache), or whenever they are decoded (--input stream)")
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
    p.add_argument("--input", default="auto", choices=("auto", "cache", "stream"),
                   help="cache: decode every image once into a uint8 cache of S×S images (small images); stream: "
                        "decode JPEGs as batches are prepared, random-resized crop at decode time (ImageNet: no "
                        f"193 GB cache). auto (default): stream from {STREAM_FROM_SIZE} px up")
    p.add_argument("--out", default="runs/latest", help="run directory: checkpoint.npz, metrics.jsonl. A folder "
                   "that already holds a run is only used with --resume")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint. The "
                   "options that define the run (--arch, --width, --image-size, --lr, …) come from the checkpoint "
                   "and may be repeated but not changed; --data (the same classes and images, moved), --cache-dir, "
                   "--epochs, --checkpoint-every, --threads, --workers, --input and --sync-bn may change (each is "
                   "the run's own unless given), and so may the number of MPI ranks")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps (0: per epoch)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--cache-dir", default=None, help="where Imagenette and the preprocessing cache live "
                   "(default $MINILAB_CACHE or ~/.cache/minilab)")
    p.add_argument("--synthetic-size", type=int, nargs=2, default=(2000, 500), metavar=("TRAIN", "VAL"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    g = p.add_argument_group("data-parallel training (under mpiexec / srun; --batch-size is the global batch)")
    g.add_argument("--mpi", default="auto", choices=("auto", "on", "off"),
                   help="auto (default): use MPI when an MPI launcher started several ranks; on: always; off: never")
    g.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=False,
                   help="BatchNorm statistics over the whole global batch (default: per rank, over B/N images, "
                        "which needs B/N ≥ 2)")
    g.add_argument("--check-replicas", action="store_true",
                   help="at every checkpoint, verify that all ranks hold bit-identical weights and optimizer state")
    return p


def train_step(model, optimizer, x, y, world=None):
    """One gradient step; returns (loss, number of correct top-1 predictions), over the global batch when `world`
    has several ranks: the loss is then the global mean, and the gradients are averaged (each rank's weighed by
    its share of the batch) while the backward runs, so every rank takes the same step."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    hits = int((logits.data.argmax(axis=1) == y).sum())
    if world is None or world.size == 1:
        value = loss.item()
        count = len(y)
    else:
        loss_sum, hits, count = world.sum([loss.item() * len(y), hits, len(y)])
        value, hits = loss_sum / count, int(hits)
    if not math.isfinite(value):
        raise FloatingPointError(f"the loss became {value}")
    optimizer.zero_grad()
    if world is None or world.size == 1:
        loss.backward()
    else:
        buckets = world.gradient_buckets(optimizer.params, len(y) / count)
        loss.backward(on_leaf=buckets.on_leaf)
        buckets.finish(optimizer.params)
    optimizer.step()
    return value, hits


class Interrupted(Exception):
    pass


def _write_metrics(path, rows):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            for row in rows:
                f.write(strict_json(row) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise RunDirError(f"could not write {path}: {error.strerror or error}; the previous {os.path.basename(path)}"
                          " was kept") from None


def _read_metrics(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(loads_strict(line))
            except ValueError as error:
                raise ValueError(f"{path}, line {number}, is not valid JSON ({error}); fix or remove that line") \
                    from None
            if not isinstance(rows[-1], dict) or "epoch" not in rows[-1]:
                raise ValueError(f"{path}, line {number}, is not a metrics row (no 'epoch')")
    return rows


class Session:
    """Everything a run holds between steps: its options, model, optimizer, loaders, learning-rate schedule,
    where it stands (epoch, batch within the epoch, global step) and the metrics rows written so far."""

    def __init__(self, args, world, model, model_config, optimizer, train_set, val_set, train_loader, val_loader,
                 schedule):
        self.args, self.world, self.model, self.model_config, self.optimizer = args, world, model, model_config, \
            optimizer
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

    def say(self, message):
        """Print on rank 0 only."""
        if self.world.is_root:
            print(message, flush=True)


def check_options(args):
    """Parse-time checks of every numeric option, each with what is allowed (ValueError).  The image size is
    checked against the architecture in `set_up`, once --resume has said which architecture it is."""
    cores = os.cpu_count() or 1
    problems = []
    if args.epochs is not None and args.epochs < 1:
        problems.append(f"--epochs must be at least 1, got {args.epochs}")
    if not (math.isfinite(args.width) and 0 < args.width <= MAX_WIDTH):
        problems.append(f"--width must be a positive number, at most {MAX_WIDTH} (1.0 is the paper's network), "
                        f"got {args.width}")
    if not IMAGE_SIZES[0] <= args.image_size <= IMAGE_SIZES[1]:
        problems.append(f"--image-size must be between {IMAGE_SIZES[0]} and {IMAGE_SIZES[1]} px, got "
                        f"{args.image_size}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        problems.append(f"--lr must be a positive number, got {args.lr}")
    if not 2 <= args.batch_size <= MAX_BATCH:
        problems.append(f"--batch-size must be at least 2 (batch norm needs two images) and at most {MAX_BATCH}, "
                        f"got {args.batch_size}")
    if args.threads is not None and not 1 <= args.threads <= cores:
        problems.append(f"--threads must be between 1 and {cores} (this machine's cores), got {args.threads}")
    if not 0 <= args.workers <= 4 * cores:
        problems.append(f"--workers must be between 0 (load in the main process) and {4 * cores}, got {args.workers}")
    if args.max_steps is not None and args.max_steps < 1:
        problems.append(f"--max-steps must be at least 1, got {args.max_steps}")
    if args.checkpoint_every < 0:
        problems.append(f"--checkpoint-every must be 0 (once per epoch) or a positive number of steps, got "
                        f"{args.checkpoint_every}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        problems.append(f"--weight-decay must be 0 or positive, got {args.weight_decay}")
    if not (math.isfinite(args.warmup_epochs) and args.warmup_epochs >= 0):
        problems.append(f"--warmup-epochs must be 0 or positive, got {args.warmup_epochs}")
    if args.binarizer_k is not None and not math.isfinite(args.binarizer_k):
        problems.append(f"--binarizer-k must be a finite number, got {args.binarizer_k}")
    n_train, n_val = args.synthetic_size
    if n_train < 2 or n_val < 1:
        problems.append(f"--synthetic-size needs at least 2 training and 1 validation image, got {n_train} {n_val}")
    if problems:
        raise ValueError("; ".join(problems))
    if args.data == "synthetic":   # generated in memory: its size is known before it is made
        check_allocation((n_train + n_val) * args.image_size ** 2 * 3, f"{n_train + n_val:,} generated images of "
                         f"{args.image_size} px", "--synthetic-size")


def is_folder_spec(data):
    return data is not None and data != "synthetic" and not data.startswith("imagenette")


def restore_options(args):
    """With --resume: read the run's checkpoint, put the options that define the run back into `args` (a given
    one must match), keep the changeable ones given on the command line and say which changed.
    Returns (model state, optimizer state, record), or None for a fresh run.  Rank 0 alone calls it."""
    from .checkpoint import check_resumable, read_checkpoint

    if not args.resume:
        return None
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    if not os.path.exists(ckpt_path):
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    model_state, optim_state, record = read_checkpoint(ckpt_path)
    check_resumable(ckpt_path, record)
    # the data position is global: a run may resume on another number of ranks
    changes = apply_resume_options(args, record["args"], given_options(args))
    if changes:
        print(f"resuming with {', '.join(changes)}")
    return model_state, optim_state, record


def given_options(args):
    """The options given on the command line (main records them); without that record, the ones whose value
    differs from the default."""
    if getattr(args, "given", None) is not None:
        return set(args.given)
    defaults = vars(build_parser().parse_args([]))
    return {k for k, v in vars(args).items() if k in defaults and v != defaults[k]}


def resume_everywhere(args, world):
    """Rank 0 reads the checkpoint (only rank 0 needs to see --out) and sends the restored options to every rank;
    returns what `restore_options` returned on rank 0 (None elsewhere: the weights follow by broadcast)."""
    resumed = restore_options(args) if world.is_root else None
    if world.size > 1:
        restored = world.broadcast(vars(args) if world.is_root else None)
        vars(args).update(restored)
    return resumed


def make_loaders(args, world, train_set, val_set):
    """Training loader (rank r prepares its slice of each global batch) and validation loader (whole batches of
    100, split across ranks)."""
    from .data import Loader

    if args.batch_size % world.size:
        raise ValueError(f"--batch-size {args.batch_size} is the global batch: it must be divisible by the "
                         f"{world.size} ranks (each takes batch-size / ranks images)")
    # BatchNorm needs two images: per rank with per-rank statistics, in all with --sync-bn.  An epoch leaves out a
    # last batch with fewer, so a smaller global batch would leave out every batch
    min_batch = 1 if args.sync_bn and world.size > 1 else 2
    if args.batch_size // world.size < min_batch:
        raise ValueError(f"--batch-size {args.batch_size} over {world.size} ranks gives each rank "
                         f"{args.batch_size // world.size} image per step, and BatchNorm with per-rank statistics "
                         f"needs at least 2: use --batch-size {2 * world.size} or more, or --sync-bn (statistics "
                         "over the whole global batch)")
    train_loader = Loader(train_set, args.batch_size, shuffle=True, augmentation=args.augment, seed=args.seed,
                          workers=args.workers, min_batch=min_batch, rank=world.rank, ranks=world.size)
    val_loader = Loader(val_set, 100, shuffle=False, rank=world.rank, ranks=world.size, split_batches=False)
    return train_loader, val_loader


def share_initial_state(session, resumed):
    """Load a resumed run's state on rank 0, then send rank 0's weights, buffers and optimizer state to all."""
    model, optimizer, world = session.model, session.optimizer, session.world
    if resumed is not None:
        model_state, optim_state, record = resumed
        try:
            model.load_state_dict(model_state)
            optimizer.load_state_dict(optim_state)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{session.ckpt_path}: the saved weights or optimizer state do not fit the run's "
                             f"model ({str(error).strip(chr(39))}); the file is damaged or from another run") \
                from None
        session.epoch, session.batch, session.step = record["epoch"], record["batch"], record["step"]
    if world.size > 1:
        world.broadcast_arrays([p.data for p in model.parameters()] + [b for _, b in model.named_buffers()])
        state = world.broadcast(optimizer.state_dict())
        if not world.is_root:
            optimizer.load_state_dict(state)
        session.epoch, session.batch, session.step = world.broadcast((session.epoch, session.batch, session.step))
    if session.args.resume:   # (on every rank: the options were broadcast)
        args = session.args
        session.saved_step = session.step
        session.say(f"resuming {args.out} at epoch {session.epoch + 1}, batch {session.batch} (step {session.step})"
                    f"{f' on {world.size} ranks' if world.size > 1 else ''}; data {args.data}, epochs {args.epochs}, "
                    f"checkpoint every {args.checkpoint_every or 'epoch'}{' steps' if args.checkpoint_every else ''}, "
                    f"threads {args.threads or 'default'}, workers {args.workers}")


def set_up(args, world):
    """Set-up and resume: threads, data, model, optimizer, loaders and schedule; with --resume, the saved weights,
    optimizer state and position, and the metrics of the epochs already finished."""
    run_lock = open_run_dir(args.out, args.resume) if world.is_root else None   # rank 0 alone writes --out
    try:
        return _make_session(args, world, run_lock)
    except BaseException:
        if run_lock is not None:
            run_lock.close()
        raise


def _make_session(args, world, run_lock):
    from .data import load_datasets
    from .memory import keep_freed_memory
    from .nn import init

    if is_folder_spec(args.data):   # a relative path would break a resume from another directory
        args.data = os.path.abspath(args.data)
    if args.cache_dir is not None:
        args.cache_dir = os.path.abspath(args.cache_dir)
    resumed = resume_everywhere(args, world)
    if args.threads:   # first: the thread pools are set up before anything loads the compiled kernels
        from .threads import set_threads
        set_threads(args.threads)
    from .models.image_sizes import check_image_size
    check_image_size(args.arch, args.image_size)
    keep_freed_memory()   # every step frees and reallocates the same arrays: keep them in the process
    args.epochs = args.epochs or PAPER_EPOCHS[args.arch]
    args.binarizer = args.binarizer or default_binarizer(args.arch)

    if args.input == "auto":
        args.input = "stream" if args.image_size >= STREAM_FROM_SIZE else "cache"
    if not world.is_root:
        world.barrier()   # rank 0 builds (or downloads) the data first; the others then find it complete
    train_set, val_set = load_datasets(args.data, args.image_size, args.cache_dir, tuple(args.synthetic_size),
                                       args.seed, world.is_root and not args.no_progress, args.input)
    if world.is_root:
        world.barrier()
    if resumed is not None:
        check_same_data(resumed[2], train_set, val_set, args.data)
    model_config = {"arch": args.arch, "num_classes": len(train_set.classes), "image_size": args.image_size,
                    "width": args.width, "binarizer": args.binarizer, "lab_blocks": args.lab_blocks,
                    "lab_bits": args.lab_bits, "binarizer_k": args.binarizer_k}
    init.seed(args.seed)
    model = create_model(**model_config)
    if args.sync_bn and world.size > 1:
        from .nn.sync import convert_sync_batchnorm
        convert_sync_batchnorm(model, world)
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_loader, val_loader = make_loaders(args, world, train_set, val_set)
    steps = len(train_loader)
    schedule = make_schedule(args.schedule, args.lr, steps * args.epochs, int(args.warmup_epochs * steps))
    session = Session(args, world, model, model_config, optimizer, train_set, val_set, train_loader, val_loader,
                      schedule)
    session.run_lock, session.saved_step = run_lock, None
    share_initial_state(session, resumed)
    if world.is_root:
        session.metrics = [m for m in _read_metrics(session.metrics_path) if m["epoch"] < session.epoch + 1]
        _write_metrics(session.metrics_path, session.metrics)
    return session


def save(session):
    """Checkpointing: the weights, the optimizer state and the run's position, written atomically by rank 0.
    Every rank calls it at the same step: per-rank BatchNorm running statistics are first averaged over the ranks
    (so that evaluation and the checkpoint describe the whole data), and --check-replicas compares the ranks."""
    from .distributed import check_replicas

    args, world = session.args, session.world
    if world.size > 1:
        if not args.sync_bn:
            world.average_arrays([b for _, b in session.model.named_buffers()])
        if args.check_replicas:
            check_replicas(world, session.model, session.optimizer, f"at step {session.step}")
    if world.is_root:
        write_checkpoint(session)
    session.saved_step = session.step


def write_checkpoint(session):
    """Rank 0's part of `save`: the checkpoint file, with a clear error when it cannot be written."""
    from .checkpoint import save_checkpoint
    from .data.classnames import class_record

    data = {"classes": list(session.train_set.classes), "train_images": len(session.train_set),
            "val_images": len(session.val_set)}
    try:
        save_checkpoint(session.ckpt_path, session.model, session.optimizer, {
            "epoch": session.epoch, "batch": session.batch, "step": session.step, "model": session.model_config,
            "data": data, **class_record(session.train_set.classes),
            "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(session.args).items()
                     if k != "given"}})
    except OSError as error:
        kept = f"the checkpoint of step {session.saved_step} was kept" if session.saved_step is not None \
            else "no checkpoint of this run exists yet"
        raise RunDirError(f"could not write {session.ckpt_path}: {error.strerror or error}; {kept}") from None


def global_batch_size(session):
    """Images in the global batch at the session's position (the last one of an epoch may be smaller)."""
    return min(session.args.batch_size, len(session.train_set) - session.batch * session.args.batch_size)


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
               disable=args.no_progress or not session.world.is_root, dynamic_ncols=True)
    try:
        # one process: a signal may end a wait on the loader; under MPI every rank must stop at the same step,
        # which the per-step vote below decides
        waiting_stops = None if session.world.size > 1 else (lambda: stop["signal"] is not None)
        for x, y in session.train_loader.batches(session.epoch, session.batch, stop=waiting_stops):
            optimizer.lr = session.schedule(session.step)
            try:
                loss, hits = train_step(session.model, optimizer, x, y, session.world)
            except FloatingPointError as error:
                kept = f"The last good checkpoint ({session.ckpt_path}, step {session.saved_step}) was kept" \
                    if session.saved_step is not None else "No checkpoint had been saved yet"
                raise FloatingPointError(f"{error} at epoch {session.epoch + 1}, step {session.step}; stopping. "
                                         f"{kept} — try a lower --lr") from None
            images = len(y) if session.world.size == 1 else global_batch_size(session)
            session.batch, session.step = session.batch + 1, session.step + 1
            seen, correct, loss_sum = seen + images, correct + hits, loss_sum + loss * images
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen / (time.time() - t0):.0f}")
            bar.update(1)
            if args.checkpoint_every and session.step % args.checkpoint_every == 0:
                save(session)
            if session.world.any(stop["signal"] is not None):   # every rank stops after the same step
                raise Interrupted()
            if session.max_steps_reached():
                break
        if session.world.any(stop["signal"] is not None):   # a signal arrived during the last step or a wait
            raise Interrupted()
    finally:
        bar.close()
    return {"seen": seen, "correct": correct, "loss_sum": loss_sum, "started": t0, "seconds": time.time() - t0}


def finish_epoch(session, stats):
    """Evaluation and the end-of-epoch record: validation top-1/top-5, one metrics.jsonl row, a checkpoint at the
    start of the next epoch, one log line."""
    from .evaluate import evaluate
    from .plot import write_run_curves

    if session.world.size > 1 and not session.args.sync_bn:
        session.world.average_arrays([b for _, b in session.model.named_buffers()])
    result = evaluate(session.model, session.val_loader, session.world.is_root and not session.args.no_progress,
                      session.world)
    session.epoch, session.batch = session.epoch + 1, 0
    seen = max(stats["seen"], 1)
    row = {"epoch": session.epoch, "step": session.step, "lr": session.optimizer.lr,
           "train_loss": stats["loss_sum"] / seen, "train_acc": stats["correct"] / seen, "val_top1": result["top1"],
           "val_top5": result["top5"], "val_loss": result["loss"],
           "images_per_s": stats["seen"] / max(stats["seconds"], 1e-9), "epoch_seconds": time.time() - stats["started"]}
    session.metrics.append(row)
    if session.world.is_root:
        _write_metrics(session.metrics_path, session.metrics)
    save(session)
    if session.world.is_root:
        write_run_curves(session.args.out)   # the run's own curves.png (skipped, said once, without matplotlib)
    session.say(f"epoch {session.epoch}/{session.args.epochs}: loss {row['train_loss']:.3f} train "
          f"{100 * row['train_acc']:.1f}% val top-1 {100 * row['val_top1']:.2f}% top-5 {100 * row['val_top5']:.2f}% "
          f"({row['images_per_s']:.0f} img/s)")


def run(args, world=None):
    """Train until --epochs (or --max-steps); SIGINT/SIGTERM save a checkpoint and return 130."""
    from .distributed import SingleProcess

    world = world or SingleProcess()
    session = set_up(args, world)
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    start_time = time.time()
    ranks = f" on {world.size} ranks ({args.batch_size // world.size} images each per step" \
            f"{', synchronised BatchNorm' if args.sync_bn else ''})" if world.size > 1 else ""
    session.say(f"training {args.arch} ({args.binarizer}, lab_blocks {args.lab_blocks}, width {args.width}) on "
                f"{session.train_set.name}: {len(session.train_set)} train / {len(session.val_set)} val images at "
                f"{args.image_size}px, {session.model.num_parameters():,} parameters, {args.epochs} epochs × "
                f"{session.steps_per_epoch} steps{ranks}")
    try:
        while session.epoch < args.epochs:
            if session.world.any(stop["signal"] is not None):
                raise Interrupted()
            if session.max_steps_reached():   # a resumed run already there, or --max-steps at an epoch's end
                session.say(f"stopped at step {session.step} (--max-steps {args.max_steps}): nothing more to train")
                break
            stats = train_epoch(session, stop)
            if session.max_steps_reached() and session.batch < session.steps_per_epoch:
                save(session)
                session.say(f"stopped after --max-steps {args.max_steps}")
                break
            finish_epoch(session, stats)
    except Interrupted:
        save(session)
        session.say(f"\ninterrupted: saved {session.ckpt_path} at epoch {session.epoch + 1}, batch {session.batch}; "
                    f"continue with `python -m minilab.train --resume --out {args.out}`")
        return 130
    except WorkerDied as error:
        if world.size > 1:   # the other ranks are not saving: the job ends (Abort), the last checkpoint stays
            raise
        save(session)
        raise WorkerDied(f"{error}. Progress was saved in {session.ckpt_path} (epoch {session.epoch + 1}, batch "
                         f"{session.batch}); continue with `python -m minilab.train --resume --out {args.out}`") \
            from None
    finally:
        session.train_loader.close()
        if session.run_lock is not None:
            session.run_lock.close()   # releases the run folder's lock
        for s, h in old_handlers.items():
            signal.signal(s, h)
    if session.metrics:
        last = session.metrics[-1]
        session.say(f"done: {args.arch} {args.binarizer} val top-1 {100 * last['val_top1']:.2f}% top-5 "
                    f"{100 * last['val_top5']:.2f}% after {session.epoch} epochs ({time.time() - start_time:.0f} s"
                    f"{' since the resume' if args.resume else ''}); checkpoint {session.ckpt_path}")
    return 0


def main(argv=None):
    """Exit codes: 0 done, 2 bad option or data, 3 the loss diverged or a loader worker died, 130 interrupted
    (saved).  Under MPI an error on any rank ends every rank (after the failing rank's message), so none is left
    waiting in a collective."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = sorted(options_on_command_line(argv))
    from .data import DataError
    from .distributed import connect

    try:
        check_options(args)
    except ValueError as error:
        parser.error(str(error))
    try:
        world = connect(args.mpi)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return run(args, world)
    except FloatingPointError as error:   # the loss is the global one: every rank stops here together
        if world.is_root:
            print(f"error: {error}", file=sys.stderr)
        return 3
    except (DataError, ValueError, FileNotFoundError, RunDirError, WorkerDied) as error:
        return world.fail(f"error: {error}", 2 if not isinstance(error, WorkerDied) else 3)
    except KeyboardInterrupt:
        return world.fail("\ninterrupted before training started; nothing to save", 130)
    except OSError as error:   # the environment: a full disk, a read-only or vanished folder
        where = f" ({error.filename})" if error.filename else ""
        return world.fail(f"error: {error.strerror or error}{where}; checkpoints already in {args.out} were kept",
                          2)
    except BaseException as error:
        if world.size == 1:
            raise
        world.fail("".join(traceback.format_exception(error)).rstrip(), 1)


def options_on_command_line(argv):
    """The destinations of the options given in `argv`: the same parser with every default suppressed."""
    quiet = build_parser()
    for action in quiet._actions:   # argparse offers no public way to suppress the defaults it already holds
        action.default = argparse.SUPPRESS
    return set(vars(quiet.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
