"""metrics.jsonl: one JSON row per finished epoch of a run, rewritten atomically after every epoch, and read
back by a resumed run and `python -m minilab.plot`; curves.png, the run's own picture of it."""
import json
import os

from ..analysis.curves import curves_figure
from .run_dir import RunDirError


def write_metrics(path, rows):
    """All rows, written to a temporary file that then replaces `path` (a crash keeps the previous file)."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise RunDirError(f"could not write {path}: {error.strerror or error}; the previous {os.path.basename(path)}"
                          " was kept") from None


def read_metrics(path):
    """The rows of the metrics.jsonl file `path` ([] when there is none yet); ValueError naming the line that is
    not a metrics row."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                raise ValueError(f"{path}, line {number}, is not valid JSON ({error}); fix or remove that line") \
                    from None
            if not isinstance(rows[-1], dict) or "epoch" not in rows[-1]:
                raise ValueError(f"{path}, line {number}, is not a metrics row (no 'epoch')")
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
