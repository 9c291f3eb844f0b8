"""The training loop: set-up and resume, one step, one epoch, the end-of-epoch record and checkpoints.

Every run has a world (`minilab.distributed.world`): one process, or the ranks of an MPI job.  The loop calls the
world's methods at the few places data parallelism touches — the gradient average in `train_step`, each rank's
shard of the data in the loaders, BatchNorm statistics before evaluation and checkpoints, what rank 0 alone
writes — and reads the same as a single-machine loop."""
import math
import os
import signal
import time

from .. import ops as F
from ..data.loader import WorkerDied
from ..distributed.world import ONE_PROCESS
from ..models import create_model, default_binarizer
from ..optim import OPTIMIZERS, make_schedule
from .metrics import read_metrics, write_metrics
from .run_dir import RunDirError, apply_resume_options, check_same_data, open_run_dir

STREAM_FROM_SIZE = 160   # --input auto: a cache of S×S×3 bytes per image grows with S², decoding barely does
PAPER_EPOCHS = {"labbnn": 100, "birealnet18": 150, "quicknet": 120, "quicknet_small": 120, "quicknet_large": 120,
                "reactnet_a": 75, "xnornet": 60}


def train_step(model, optimizer, x, y, world=ONE_PROCESS):
    """One gradient step; returns (loss, number of correct top-1 predictions) of the global batch.

    In one process the world changes nothing.  Under MPI `batch_totals` makes the loss the global batch's mean,
    and `backward` averages the gradients (each rank's weighed by its share of the batch) while the backward runs,
    so every rank takes the same step."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    hits = int((logits.data.argmax(axis=1) == y).sum())
    value, hits, share = world.batch_totals(loss.item(), hits, len(y))
    if not math.isfinite(value):
        raise FloatingPointError(f"the loss became {value}")
    optimizer.zero_grad()
    world.backward(loss, optimizer.params, share)
    optimizer.step()
    return value, hits


class Interrupted(Exception):
    pass


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
        self.statistics_step = None   # the step at which the ranks' BatchNorm statistics were last made one
        self.metrics = []
        self.governor = None   # the thread count's ThreadGovernor when it follows the machine's load
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
    # the data position is global: a run may resume on another number of ranks; `main` records the options given
    # on its command line in args.given
    changes = apply_resume_options(args, record["args"], set(args.given))
    if changes:
        print(f"resuming with {', '.join(changes)}")
    return model_state, optim_state, record


def resume_everywhere(args, world):
    """Rank 0 reads the checkpoint (only rank 0 needs to see --out) and sends the restored options to every rank;
    returns what `restore_options` returned on rank 0 (None elsewhere: the weights follow by broadcast)."""
    resumed = world.on_root(restore_options, args)
    vars(args).update(world.broadcast(vars(args)))
    return resumed


def make_loaders(args, world, train_set, val_set):
    """Training loader (rank r prepares its slice of each global batch) and validation loader (whole batches of
    100, split across ranks)."""
    from ..data import Loader

    min_batch = world.min_batch(args.batch_size, args.sync_bn)
    train_loader = Loader(train_set, args.batch_size, shuffle=True, augmentation=args.augment, seed=args.seed,
                          workers=args.workers, min_batch=min_batch, **world.shard())
    val_loader = Loader(val_set, 100, shuffle=False, split_batches=False, **world.shard())
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
    session.epoch, session.batch, session.step = world.share_state(model, optimizer,
                                                                   (session.epoch, session.batch, session.step))
    if session.args.resume:   # (on every rank: the options were broadcast)
        args = session.args
        session.saved_step = session.step
        session.say(f"resuming {args.out} at epoch {session.epoch + 1}, batch {session.batch} (step {session.step})"
                    f"{world.describe()}; data {args.data}, epochs {args.epochs}, "
                    f"checkpoint every {args.checkpoint_every or 'epoch'}{' steps' if args.checkpoint_every else ''}, "
                    f"threads {args.threads or 'default'}, workers {args.workers}")


def set_up(args, world):
    """Set-up and resume: threads, data, model, optimizer, loaders and schedule; with --resume, the saved weights,
    optimizer state and position, and the metrics of the epochs already finished."""
    run_lock = world.on_root(open_run_dir, args.out, args.resume)   # rank 0 alone writes --out
    try:
        return make_session(args, world, run_lock)
    except BaseException:
        if run_lock is not None:
            run_lock.close()   # a set-up that fails releases the run folder it locked
        raise


def choose_threads(args, world):
    """Set the thread count: --threads, or the cores this process may use, shared by the ranks on this node and
    the loader workers.  That count is the most: where it can, the count then follows other programs' load below
    it (`core.adaptive_threads`), unless --fixed-threads.  Returns that governor, or None."""
    from ..core.adaptive_threads import ThreadGovernor, can_adapt
    from ..core.machine import default_threads, usable_cores
    from ..core.threads import set_threads

    if args.threads:
        threads, line = args.threads, f"threads {args.threads} (--threads)"
    else:
        threads, line = default_threads(world.ranks_on_node(), args.workers)
    set_threads(threads)
    adapt = threads > 1 and not args.fixed_threads and can_adapt(world.ranks_on_node())
    if adapt:
        line = line[:-1] + "; fewer while other programs take cores, --fixed-threads keeps the count)"
    if adapt or not args.threads:
        world.on_root(print, line, flush=True)
    return ThreadGovernor(threads, usable_cores()[0], set_threads) if adapt else None


def make_session(args, world, run_lock):
    """The body of `set_up`, once the run folder is locked (`run_lock`, None on ranks other than 0)."""
    from ..data import load_datasets
    from .memory import keep_freed_memory
    from ..nn import init

    if is_folder_spec(args.data):   # a relative path would break a resume from another directory
        args.data = os.path.abspath(args.data)
    if args.cache_dir is not None:
        args.cache_dir = os.path.abspath(args.cache_dir)
    resumed = resume_everywhere(args, world)
    governor = choose_threads(args, world)   # first: the thread pools are set up before the kernels load
    from ..models.image_sizes import check_image_size
    check_image_size(args.arch, args.image_size)
    keep_freed_memory()   # every step frees and reallocates the same arrays: keep them in the process
    args.epochs = args.epochs or PAPER_EPOCHS[args.arch]
    args.binarizer = args.binarizer or default_binarizer(args.arch)

    if args.input == "auto":
        args.input = "stream" if args.image_size >= STREAM_FROM_SIZE else "cache"
    with world.root_first():   # rank 0 builds (or downloads) the data first; the others then find it complete
        train_set, val_set = load_datasets(args.data, args.image_size, args.cache_dir, tuple(args.synthetic_size),
                                           args.seed, world.is_root and not args.no_progress, args.input)
    if resumed is not None:
        check_same_data(resumed[2], train_set, val_set, args.data)
    model_config = {"arch": args.arch, "num_classes": len(train_set.classes), "image_size": args.image_size,
                    "width": args.width, "binarizer": args.binarizer, "lab_blocks": args.lab_blocks,
                    "lab_bits": args.lab_bits, "binarizer_k": args.binarizer_k}
    init.seed(args.seed)
    model = world.prepare_model(create_model(**model_config), args.sync_bn)
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_loader, val_loader = make_loaders(args, world, train_set, val_set)
    steps = len(train_loader)
    schedule = make_schedule(args.schedule, args.lr, steps * args.epochs, int(args.warmup_epochs * steps))
    session = Session(args, world, model, model_config, optimizer, train_set, val_set, train_loader, val_loader,
                      schedule)
    session.run_lock, session.saved_step, session.governor = run_lock, None, governor
    share_initial_state(session, resumed)
    world.on_root(restore_metrics, session)
    return session


def restore_metrics(session):
    """Rank 0's metrics rows of the epochs already finished (a resumed run's later rows are dropped)."""
    session.metrics = [m for m in read_metrics(session.metrics_path) if m["epoch"] < session.epoch + 1]
    write_metrics(session.metrics_path, session.metrics)


def save(session):
    """Checkpointing: the weights, the optimizer state and the run's position, written atomically by rank 0.
    Every rank calls it at the same step: the ranks' BatchNorm running statistics are first made one (so that the
    checkpoint describes the whole data), and --check-replicas compares the ranks."""
    args, world = session.args, session.world
    average_running_statistics(session)
    if args.check_replicas:
        world.check_replicas(session.model, session.optimizer, f"at step {session.step}")
    world.on_root(write_checkpoint, session)
    session.saved_step = session.step


def average_running_statistics(session):
    """The ranks' BatchNorm running statistics made one, once per step (evaluation and the checkpoint that
    follows it at the end of an epoch share them)."""
    if session.statistics_step != session.step:
        session.world.average_running_statistics(session.model, session.args.sync_bn)
        session.statistics_step = session.step


def write_checkpoint(session):
    """Rank 0's part of `save`: the checkpoint file, with a clear error when it cannot be written."""
    from .checkpoint import save_checkpoint
    from ..data.classnames import class_record

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
        waiting_stops = (lambda: stop["signal"] is not None) if session.world.acts_alone else None
        for x, y in session.train_loader.batches(session.epoch, session.batch, stop=waiting_stops):
            optimizer.lr = session.schedule(session.step)
            try:
                loss, hits = train_step(session.model, optimizer, x, y, session.world)
            except FloatingPointError as error:
                kept = f"The last good checkpoint ({session.ckpt_path}, step {session.saved_step}) was kept" \
                    if session.saved_step is not None else "No checkpoint had been saved yet"
                raise FloatingPointError(f"{error} at epoch {session.epoch + 1}, step {session.step}; stopping. "
                                         f"{kept} — try a lower --lr") from None
            images = global_batch_size(session)
            session.batch, session.step = session.batch + 1, session.step + 1
            seen, correct, loss_sum = seen + images, correct + hits, loss_sum + loss * images
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen / (time.time() - t0):.0f}")
            bar.update(1)
            if session.governor is not None and (change := session.governor.after_step()):
                session.say(change) if bar.disable else bar.write(change)
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
    from .evaluation import evaluate
    from .metrics import write_run_curves

    average_running_statistics(session)
    result = evaluate(session.model, session.val_loader, session.world.is_root and not session.args.no_progress,
                      session.world)
    session.epoch, session.batch = session.epoch + 1, 0
    seen = max(stats["seen"], 1)
    row = {"epoch": session.epoch, "step": session.step, "lr": session.optimizer.lr,
           "train_loss": stats["loss_sum"] / seen, "train_acc": stats["correct"] / seen, "val_top1": result["top1"],
           "val_top5": result["top5"], "val_loss": result["loss"],
           "images_per_s": stats["seen"] / max(stats["seconds"], 1e-9), "epoch_seconds": time.time() - stats["started"]}
    session.metrics.append(row)
    session.world.on_root(write_metrics, session.metrics_path, session.metrics)
    save(session)
    session.world.on_root(write_run_curves, session.args.out)   # curves.png (without matplotlib: skipped, said once)
    session.say(f"epoch {session.epoch}/{session.args.epochs}: loss {row['train_loss']:.3f} train "
          f"{100 * row['train_acc']:.1f}% val top-1 {100 * row['val_top1']:.2f}% top-5 {100 * row['val_top5']:.2f}% "
          f"({row['images_per_s']:.0f} img/s)")


def run(args, world=None):
    """Train until --epochs (or --max-steps); SIGINT/SIGTERM save a checkpoint and return 130."""
    world = world or ONE_PROCESS
    session = set_up(args, world)
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    start_time = time.time()
    ranks = world.describe(args.batch_size, args.sync_bn)
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
        if not world.acts_alone:   # the other ranks are not saving: the job ends (Abort), the last checkpoint stays
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
