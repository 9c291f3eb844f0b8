"""metrics.jsonl: one JSON row per finished epoch of a run, rewritten atomically after every epoch."""
import json
import os

from .run_dir import RunDirError


def _write_metrics(path, rows):
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


def _read_metrics(path):
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


def read_metrics(path):
    """(run name, rows) of a run directory or a metrics.jsonl file; the name is the run directory's name."""
    file = os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{path}: no metrics.jsonl (expected a run directory written by minilab.train "
                                "or a metrics.jsonl file)")
    rows = []
    with open(file) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{file}, line {number}: not a JSON record ({error.msg})") from None
    name = os.path.basename(os.path.dirname(os.path.abspath(file))) or "run"
    return name, rows
