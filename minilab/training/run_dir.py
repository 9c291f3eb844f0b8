"""Run directories: a run's results are never destroyed, and a resumed run is the same run.

- A folder that already holds a run (checkpoint.npz or metrics.jsonl) is used only with `--resume`; otherwise
  training refuses to start and names both ways forward.  (Refusing, rather than silently picking a fresh
  numbered folder, keeps `--out` meaning exactly one place: scripts, `--resume --out DIR` and `evaluate` all find
  the run where they put it, and no forgotten runs pile up on disk.)
- One training at a time per folder: an exclusive lock on `DIR/.lock`, held for the whole run and released by the
  kernel however the process ends.  Holding it also means any `*.tmp.npz` / `*.tmp` in the folder is the leftover
  of a killed write, and is removed.
- `--resume` checks the options that define the run against its checkpoint (a difference is an error: it would
  be another run) and honours the ones that may change on resume, saying which it changed; one not given is
  the run's own."""
import fcntl
import glob
import os

RUN_FILES = ("checkpoint.npz", "metrics.jsonl")

# options whose value is part of what the run *is*: its model, its optimisation, its data order
RUN_DEFINING = ("arch", "image_size", "width", "binarizer", "binarizer_k", "lab_blocks", "lab_bits", "batch_size",
                "lr", "optimizer", "schedule", "weight_decay", "warmup_epochs", "augment", "seed", "synthetic_size")
# options a resume may change: where the data is, how often to save, how to use the machine, how long, and
# whether BatchNorm statistics span the ranks (which the number of ranks, also free to change, bears on)
CHANGEABLE = ("data", "cache_dir", "epochs", "checkpoint_every", "threads", "fixed_threads", "workers", "input",
              "sync_bn")


class RunDirError(Exception):
    """A run folder that cannot be used as asked; the message says why and what to do."""


def open_run_dir(out, resume):
    """Create or check the run folder `out`, lock it and clear leftovers of killed writes; returns the lock
    (keep it open for the whole run)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"--out {out} is a file, not a folder: choose a folder for the run's checkpoint and "
                          "metrics")
    try:
        os.makedirs(out, exist_ok=True)
        lock = open(os.path.join(out, ".lock"), "a")
    except OSError as error:
        raise RunDirError(f"cannot create the run folder {out}: {error.strerror or error}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise RunDirError(f"another training is running in {out}; wait for it to finish or choose another --out") \
            from None
    for stale in glob.glob(os.path.join(glob.escape(out), "*.tmp.npz")) + \
            glob.glob(os.path.join(glob.escape(out), "*.tmp")):
        os.unlink(stale)
    held = [name for name in RUN_FILES if _holds_data(os.path.join(out, name))]
    if held and not resume:
        lock.close()
        if "checkpoint.npz" not in held:
            raise RunDirError(f"{out} holds the metrics.jsonl of a run but no checkpoint to resume it from; choose "
                              f"another --out, or delete {os.path.join(out, 'metrics.jsonl')} to start over there")
        raise RunDirError(f"{out} already holds a run ({', '.join(held)}); continue it with "
                          f"`--resume --out {out}`, or start a new run with another --out (nothing was changed)")
    return lock


def _holds_data(path):
    """An existing, non-empty file (a run that stopped before its first epoch leaves an empty metrics.jsonl)."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _same(option, given, saved):
    if isinstance(saved, (list, tuple)):
        return list(given) == list(saved)
    if isinstance(saved, float) or isinstance(given, float):
        return given is not None and saved is not None and float(given) == float(saved)
    return given == saved


def flag(option):
    return "--" + option.replace("_", "-")


def apply_resume_options(args, saved, given):
    """Put the run's saved options into `args`.  `given`: the option names given on this command line.

    A given run-defining option must equal the saved value (ValueError otherwise); a given changeable option is
    kept and reported.  Returns the list of 'option value (was value)' changes."""
    conflicts = [f"{flag(k)} {getattr(args, k)} (the run has {saved.get(k)})" for k in RUN_DEFINING
                 if k in given and k in saved and not _same(k, getattr(args, k), saved[k])]
    if conflicts:
        raise ValueError("--resume continues the run as it was defined; these options differ from it: "
                         + "; ".join(conflicts) + ". Leave them out, or start a new run with another --out")
    for key in RUN_DEFINING:
        if key in saved:
            setattr(args, key, saved[key])
    changes = []
    for key in CHANGEABLE:
        if key in given and key in saved and not _same(key, getattr(args, key), saved[key]):
            changes.append(f"{flag(key)} {getattr(args, key)} (was {saved[key]})")
        elif key not in given and key in saved:
            setattr(args, key, saved[key])
    return changes


def check_same_data(record, train_set, val_set, data):
    """The data of a resumed run must be the run's data (the same classes and image counts), wherever it is."""
    saved = record.get("data")
    if not saved:
        return
    now = {"classes": list(train_set.classes), "train_images": len(train_set), "val_images": len(val_set)}
    differ = [k for k in now if k in saved and saved[k] != now[k]]
    if differ:
        detail = "; ".join(f"{k.replace('_', ' ')}: {_short(now[k])} instead of {_short(saved[k])}" for k in differ)
        raise ValueError(f"--resume: {data} is not the data this run was trained on ({detail})")


def _short(value):
    return f"{value[:4]}{'…' if len(value) > 4 else ''} ({len(value)})" if isinstance(value, list) else value
