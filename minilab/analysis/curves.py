"""Training curves: loss and validation top-1 / top-5 against epoch, one colour per run (`python -m minilab.plot`,
and each run's own curves.png, which the training loop draws after every epoch)."""
import math

from . import plotting


def curves_figure(runs: dict, path, title=None):
    """runs: {name: metrics rows}.  Left: training loss (solid) and validation loss (dashed); right: validation
    top-1 (solid) and top-5 (dashed), in %.  Colour = run, line style = which quantity."""
    def fill(fig):
        from matplotlib.lines import Line2D

        loss_ax, acc_ax = fig.subplots(1, 2)
        for colour, (name, rows) in zip(plotting.COLOURS * 4, runs.items()):
            epochs = [r["epoch"] for r in rows]
            marker = "o" if len(rows) < 30 else None
            loss_ax.plot(epochs, values(rows, "train_loss"), "-", color=colour, marker=marker)
            loss_ax.plot(epochs, values(rows, "val_loss"), "--", color=colour, marker=marker)
            acc_ax.plot(epochs, values(rows, "val_top1", 100), "-", color=colour, marker=marker, label=name)
            acc_ax.plot(epochs, values(rows, "val_top5", 100), "--", color=colour, marker=marker)
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
        acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy", ylim=(0, 100))
        for ax in (loss_ax, acc_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
        styles = [Line2D([], [], color="black", ls="-", label="train loss / top-1"),
                  Line2D([], [], color="black", ls="--", label="val loss / top-5")]
        handles, _ = acc_ax.get_legend_handles_labels()
        fig.legend(handles + styles, list(runs) + [s.get_label() for s in styles], loc="outside right center")

    return plotting.draw(path, fill, "wide", title)



def values(rows, field, scale=1):
    """A field of every row as floats; null (a value that was not finite) is NaN, a gap in the line."""
    return [math.nan if r[field] is None else scale * r[field] for r in rows]
