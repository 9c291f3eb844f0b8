"""`python -m minilab.plot`: training curves of one or more runs on one picture — loss and validation
top-1 / top-5 against epoch, one colour per run, labelled by the run's name — so a LAB run and a sign run can be
compared at a glance.  The training CLI draws each run's own curves.png with the same function after every epoch."""
import argparse
import sys

from .analysis.curves import curves_figure
from .core.validate import Refused, check_output_file
from .training.metrics import read_run


def unique_names(names):
    """Run labels, with a suffix where two runs share a directory name."""
    seen, out = {}, []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def number(value, scale=1, width=8, digits=2):
    return f"{'—':>{width}s}" if value is None else f"{scale * value:{width}.{digits}f}"


def print_summary(runs):
    print(f"{'run':24s} {'epochs':>6s} {'train loss':>10s} {'val loss':>9s} {'top-1 %':>8s} {'top-5 %':>8s} "
          f"{'best top-1 %':>12s}")
    for name, rows in runs.items():
        last = rows[-1]
        best = max((r["val_top1"] for r in rows if r["val_top1"] is not None), default=None)
        print(f"{name:24s} {last['epoch']:6d} {number(last['train_loss'], 1, 10, 3)} "
              f"{number(last['val_loss'], 1, 9, 3)} {number(last['val_top1'], 100)} {number(last['val_top5'], 100)} "
              f"{number(best, 100, 12)}")


def build_parser():
    """The command line of `python -m minilab.plot` (the docs render their page from it)."""
    p = argparse.ArgumentParser(
        prog="python -m minilab.plot",
        description="Draw the training curves of one or more runs on one PNG: loss, and validation top-1 / top-5 "
                    "against epoch, one colour per run (labelled by the run directory's name). Also prints each "
                    "run's last and best numbers. Needs matplotlib (pip install -e \".[plot]\").",
        epilog="Examples:\n  python -m minilab.plot runs/lab runs/sign --out lab_vs_sign.png\n"
               "  python -m minilab.plot --placement docs/table9 --out where_lab_goes.png   # Table 9: accuracy "
               "against latency per LAB mask",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="run directories (holding metrics.jsonl) or metrics.jsonl files")
    p.add_argument("--placement", metavar="DIR", default=None,
                   help="instead of curves: where LAB goes (the paper's Table 9) from DIR's runs lab-MASK-sSEED "
                        "(.jsonl files or run directories) and DIR/latency.json; prints the Markdown table and "
                        "draws accuracy against latency per mask, the Pareto front marked, beside the paper's "
                        "ImageNet points")
    p.add_argument("--out", default="curves.png", help="the PNG to write (default curves.png)")
    p.add_argument("--title", default=None, help="a title above both panels")
    return p


def read_placement(folder):
    """(rows, latency record) of `--placement DIR`: minilab.analysis.placement's summary of the runs kept in DIR."""
    import os

    from .analysis import placement as where

    runs = {}
    for name in sorted(os.listdir(folder)):
        key = where.run_key(name)
        if key is not None:
            rows = read_run(os.path.join(folder, name))[1]
            if rows:
                runs.setdefault(key[0], {})[key[1]] = rows
    if not runs:
        raise FileNotFoundError(f"{folder}: no run named lab-MASK-sSEED (.jsonl or a run directory) with a "
                                "finished epoch")
    record = where.read_latency(folder)
    return where.summarize(runs, record), record


def placement(folder, out):
    """`--placement DIR`: print the table, draw the figure (its path, or None without matplotlib)."""
    from .analysis import placement as where

    rows, record = read_placement(folder)
    print(where.markdown_table(rows, record))
    return where.placement_figure(rows, out, record)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:   # before any work: an unwritable figure is said at once
        check_output_file(args.out, "--out")
    except Refused as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.placement is not None:
        try:
            drawn = placement(args.placement, args.out)
        except (OSError, ValueError, KeyError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if drawn is None:
            return 1
        print(f"wrote {args.out}")
        return 0
    if not args.runs:
        parser.error("give run directories (or metrics.jsonl files), or --placement DIR")
    try:
        loaded = [read_run(path) for path in args.runs]
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
