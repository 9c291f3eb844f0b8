"""Training curves: loss and validation top-1 / top-5 against epoch, one colour per run (`python -m minilab.plot`),
and each run's own curves.png, drawn by the training loop after every epoch."""
import os

from ..training.metrics import read_metrics
from . import plotting


CURVES_FILE = "curves.png"


_missing_said = False


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
