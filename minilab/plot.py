"""`python -m minilab.plot`: training curves of one or more runs on one picture — loss and validation
top-1 / top-5 against epoch, one colour per run, labelled by the run's name — so a LAB run and a sign run can be
compared at a glance.  The training CLI draws each run's own curves.png with the same function after every epoch."""
import argparse
import math
import os
import sys

from . import plotting
from .validate import check_output_file, loads_strict

CURVES_FILE = "curves.png"
_missing_said = False


def read_metrics(path):
    """(run name, rows) of a run directory or a metrics.jsonl file; the name is the run directory's name."""
    file = os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{path}: no metrics.jsonl (expected a run directory written by minilab.train "
                                "or a metrics.jsonl file)")
    rows = []
    try:
        with open(file, encoding="utf-8") as f:
            lines = list(f)
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{file}: cannot be read as text ({getattr(error, 'strerror', None) or error})") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = loads_strict(line)
            except ValueError as error:
                raise ValueError(f"{file}, line {number}: not a JSON record ({getattr(error, 'msg', error)})") \
                    from None
            rows.append(check_row(row, f"{file}, line {number}"))
    name = os.path.basename(os.path.dirname(os.path.abspath(file))) or "run"
    return name, rows


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


def unique_names(names):
    """Run labels, with a suffix where two runs share a directory name."""
    seen, out = {}, []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def curves_figure(runs: dict, path, title=None):
    """runs: {name: metrics rows}.  Left: training loss (solid) and validation loss (dashed); right: validation
    top-1 (solid) and top-5 (dashed), in %.  Colour = run, line style = which quantity."""
    def fill(fig):
        from matplotlib.lines import Line2D

        loss_ax, acc_ax = fig.subplots(1, 2)
        for colour, (name, rows) in zip(plotting.COLOURS * 4, runs.items()):
            epochs = [r["epoch"] for r in rows]
            marker = "o" if len(rows) < 30 else None
            loss_ax.plot(epochs, _values(rows, "train_loss"), "-", color=colour, marker=marker)
            loss_ax.plot(epochs, _values(rows, "val_loss"), "--", color=colour, marker=marker)
            acc_ax.plot(epochs, _values(rows, "val_top1", 100), "-", color=colour, marker=marker, label=name)
            acc_ax.plot(epochs, _values(rows, "val_top5", 100), "--", color=colour, marker=marker)
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
        acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy", ylim=(0, 100))
        for ax in (loss_ax, acc_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
        styles = [Line2D([], [], color="black", ls="-", label="train loss / top-1"),
                  Line2D([], [], color="black", ls="--", label="val loss / top-5")]
        handles, _ = acc_ax.get_legend_handles_labels()
        fig.legend(handles + styles, list(runs) + [s.get_label() for s in styles], loc="outside right center")

    return plotting.draw(path, fill, "wide", title)


def _values(rows, field, scale=1):
    """A field of every row as floats; null (a value that was not finite) is NaN, a gap in the line."""
    return [math.nan if r[field] is None else scale * r[field] for r in rows]


def _number(value, scale=1, width=8, digits=2):
    return f"{'—':>{width}s}" if value is None else f"{scale * value:{width}.{digits}f}"


def write_run_curves(out_dir):
    """Draw <out_dir>/curves.png from <out_dir>/metrics.jsonl (the training CLI calls this after every epoch);
    returns its path, or None when there is nothing to draw yet or matplotlib is missing."""
    _, rows = read_metrics(out_dir) if os.path.exists(os.path.join(out_dir, "metrics.jsonl")) else ("", [])
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


def print_summary(runs):
    print(f"{'run':24s} {'epochs':>6s} {'train loss':>10s} {'val loss':>9s} {'top-1 %':>8s} {'top-5 %':>8s} "
          f"{'best top-1 %':>12s}")
    for name, rows in runs.items():
        last = rows[-1]
        best = max((r["val_top1"] for r in rows if r["val_top1"] is not None), default=None)
        print(f"{name:24s} {last['epoch']:6d} {_number(last['train_loss'], 1, 10, 3)} "
              f"{_number(last['val_loss'], 1, 9, 3)} {_number(last['val_top1'], 100)} {_number(last['val_top5'], 100)} "
              f"{_number(best, 100, 12)}")


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m minilab.plot",
        description="Draw the training curves of one or more runs on one PNG: loss, and validation top-1 / top-5 "
                    "against epoch, one colour per run (labelled by the run directory's name). Also prints each "
                    "run's last and best numbers. Needs matplotlib (pip install -e \".[plot]\").",
        epilog="Example:\n  python -m minilab.plot runs/lab runs/sign --out lab_vs_sign.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (holding metrics.jsonl) or metrics.jsonl files")
    p.add_argument("--out", default="curves.png", help="the PNG to write (default curves.png)")
    p.add_argument("--title", default=None, help="a title above both panels")
    args = p.parse_args(argv)
    try:
        check_output_file(args.out, "--out")
        loaded = [read_metrics(path) for path in args.runs]
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    empty = [path for path, (_, rows) in zip(args.runs, loaded) if not rows]
    if empty:
        print(f"error: no finished epoch yet in {', '.join(empty)}", file=sys.stderr)
        return 2
    runs = dict(zip(unique_names([name for name, _ in loaded]), [rows for _, rows in loaded]))
    print_summary(runs)
    if curves_figure(runs, args.out, args.title) is None:
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
