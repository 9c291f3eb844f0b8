"""`python -m minilab.train`: train a BNN from scratch, with resumable, crash-safe checkpoints — in one process,
or data-parallel over MPI (`mpiexec -n N python -m minilab.train ...`, see minilab.distributed).

This module is the command line: its options, their checks and the exit codes.  The training itself is
`minilab.training.loop`."""
import argparse
import math
import os
import sys
import traceback

from .data.loader import WorkerDied
from .models import MODELS
from .ops.binarizers import ALL_BINARIZERS
from .optim import OPTIMIZERS, SCHEDULES
from .training.loop import STREAM_FROM_SIZE, run
from .training.run_dir import RunDirError
from .core.validate import IMAGE_SIZES, MAX_BATCH, MAX_WIDTH, check_allocation


# long because: one declarative list of every option, each with its --help text
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
                        "the conv GEMMs; on the pure-NumPy path, the BLAS library's threads (default: the cores "
                        "this process may use, shared among the MPI ranks on this node and the --workers, "
                        "printed). Either way it is the most: the run uses fewer while other programs keep cores "
                        "busy and returns when they stop, printing each change; the run's numbers are the same "
                        "bits whichever count it ran on)")
    p.add_argument("--fixed-threads", action="store_true",
                   help="keep exactly --threads (or the default) whatever else the machine runs: for timing a "
                        "thread count. The run's numbers are the same bits either way")
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
                   "--epochs, --checkpoint-every, --threads, --fixed-threads, --workers, --input and --sync-bn may "
                   "change (each is the run's own unless given), and so may the number of MPI ranks")
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


def main(argv=None):
    """Exit codes: 0 done, 2 bad option or data, 3 the loss diverged or a loader worker died, 130 interrupted
    (saved).  Under MPI an error on any rank ends every rank (after the failing rank's message), so none is left
    waiting in a collective."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = sorted(options_on_command_line(argv))
    from .data import DataError
    from .distributed.world import connect

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
        if world.acts_alone:
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
