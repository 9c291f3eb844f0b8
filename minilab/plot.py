"""`python -m minilab.plot`: training curves of one or more runs on one picture — loss and validation
top-1 / top-5 against epoch, one colour per run, labelled by the run's name — so a LAB run and a sign run can be
compared at a glance.  The training CLI draws each run's own curves.png with the same function after every epoch."""
import argparse
import json
import os
import sys

from . import plotting

CURVES_FILE = "curves.png"
_missing_said = False


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
            loss_ax.plot(epochs, [r["train_loss"] for r in rows], "-", color=colour, marker=marker)
            loss_ax.plot(epochs, [r["val_loss"] for r in rows], "--", color=colour, marker=marker)
            acc_ax.plot(epochs, [100 * r["val_top1"] for r in rows], "-", color=colour, marker=marker, label=name)
            acc_ax.plot(epochs, [100 * r["val_top5"] for r in rows], "--", color=colour, marker=marker)
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
        acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy", ylim=(0, 100))
        for ax in (loss_ax, acc_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
        styles = [Line2D([], [], color="black", ls="-", label="train loss / top-1"),
                  Line2D([], [], color="black", ls="--", label="val loss / top-5")]
        handles, _ = acc_ax.get_legend_handles_labels()
        fig.legend(handles + styles, list(runs) + [s.get_label() for s in styles], loc="outside right center")

    return plotting.draw(path, fill, "wide", title)


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
        best = max(r["val_top1"] for r in rows)
        print(f"{name:24s} {last['epoch']:6d} {last['train_loss']:10.3f} {last['val_loss']:9.3f} "
              f"{100 * last['val_top1']:8.2f} {100 * last['val_top5']:8.2f} {100 * best:12.2f}")


def build_parser():
    """The command line of `python -m minilab.plot` (the docs render their page from it)."""
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
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        loaded = [read_metrics(path) for path in args.runs]
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    empty = [path for path, (_, rows) in zip(args.runs, loaded) if not rows]
    if empty:
        print(f"error: no finished epoch yet in {', '.join(empty)}", file=sys.stderr)
        return 2
    runs = dict(zip(unique_names([name for name, _ in loaded]), [rows for _, rows in loaded]))
    try:
        print_summary(runs)
    except KeyError as error:
        print(f"error: a metrics record has no {error} field (not written by minilab.train?)", file=sys.stderr)
        return 2
    if curves_figure(runs, args.out, args.title) is None:
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
