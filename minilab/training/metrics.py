"""metrics.jsonl: one JSON row per finished epoch of a run, rewritten atomically after every epoch, and read
back by a resumed run and `python -m minilab.plot`; curves.png, the run's own picture of it."""
import os

from ..analysis.curves import curves_figure
from ..core.validate import loads_strict, strict_json
from .run_dir import RunDirError


def write_metrics(path, rows):
    """All rows, written to a temporary file that then replaces `path` (a crash keeps the previous file)."""
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


# what every metrics row must hold for the curves and the summary: epoch ≥ 1, and each quantity a number or null
# (null: it was not finite, and the writer said so in the row's "non_finite" list)
ROW_FIELDS = ("train_loss", "val_loss", "val_top1", "val_top5")


def check_row(row, where):
    """A metrics row as the curves need it, or ValueError naming the line and the entry."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: not a metrics record (a JSON object), but {type(row).__name__}")
    epoch = row.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise ValueError(f"{where}: 'epoch' must be a whole number ≥ 1, found {epoch!r}")
    for field in ROW_FIELDS:
        if field not in row:
            raise ValueError(f"{where}: no {field!r} entry (not written by minilab.train?)")
        value = row[field]
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ValueError(f"{where}: {field!r} must be a number or null, found {value!r}")
        if field.startswith("val_top") and value is not None and not 0 <= value <= 1:
            raise ValueError(f"{where}: {field!r} must be a fraction between 0 and 1, found {value!r}")
    return row


def read_metrics(path):
    """The rows of the metrics.jsonl file `path` ([] when there is none yet); ValueError naming the line and the
    entry that is not a metrics row (strict JSON: a bare NaN is refused, null is a value that was not finite)."""
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as text ({getattr(error, 'strerror', None) or error})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = loads_strict(line)
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: not a JSON record ({getattr(error, 'msg', error)}); fix or "
                             "remove that line") from None
        rows.append(check_row(row, f"{path}, line {number}"))
    return rows


def read_run(path):
    """(run name, rows) of a run directory or a metrics.jsonl file; the name is the run directory's name."""
    file = os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{path}: no metrics.jsonl (expected a run directory written by minilab.train "
                                "or a metrics.jsonl file)")
    name = os.path.basename(os.path.dirname(os.path.abspath(file))) or "run"
    return name, read_metrics(file)


CURVES_FILE = "curves.png"
_missing_said = False   # without matplotlib: said once per process, not after every epoch


def write_run_curves(out_dir):
    """Draw <out_dir>/curves.png from <out_dir>/metrics.jsonl (the training CLI calls this after every epoch);
    returns its path, or None when there is nothing to draw yet or matplotlib is missing."""
    rows = read_metrics(os.path.join(out_dir, "metrics.jsonl"))
    global _missing_said
    if not rows or _missing_said:    # without matplotlib: said once per process, not after every epoch
        return None
    path = os.path.join(out_dir, CURVES_FILE)
    try:
        written = curves_figure({os.path.basename(os.path.abspath(out_dir)): rows}, path)
    except OSError as error:   # matplotlib's own error may not name the file: the caller's message should
        raise OSError(error.errno, error.strerror or str(error), path) from None
    _missing_said = written is None
    return written
