"""metrics.jsonl: one JSON row per finished epoch of a run, rewritten atomically after every epoch, and read
back by a resumed run, `python -m minilab.plot` and the run's curves.png."""
import json
import os

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
