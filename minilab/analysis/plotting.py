"""Every figure minilab draws goes through here: one style (colour-blind-safe colours, sizes, DPI), one way to get
matplotlib, one way to save a PNG — plus the small figure functions the command-line tools share.

matplotlib is optional (`pip install -e ".[plot]"`).  Without it a figure function prints one line saying how to
get it and returns None, so the computation around it still runs and prints its numbers.

Figures are drawn with matplotlib's object-oriented API (a `Figure` saved through the Agg renderer), never
through pyplot: drawing a figure changes no global state of the process, and no display is needed."""
import sys

from ..core.machine import cpu_name  # noqa: F401  (every timing figure names the CPU)

# Okabe & Ito's palette: distinguishable with every common colour-vision deficiency and in greyscale print
# (blue, vermillion, bluish green, orange, reddish purple, sky blue, black).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
GREY = "#7F7F7F"
DPI = 150                       # 960 × 600 px for a single figure: sharp on a laptop, 6.4 in wide in print
SIZES = {"single": (6.4, 4.0), "wide": (10.0, 4.0), "tall": (6.4, 6.4), "square": (7.0, 6.0)}
STYLE = {
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
    "legend.fontsize": 9, "legend.frameon": False, "figure.titlesize": 12,
    "lines.linewidth": 1.8, "lines.markersize": 5,
    "font.family": "DejaVu Sans",  # ships with matplotlib and has β, −, ∂, η, ₀, ₁
    "mathtext.fontset": "dejavusans",
}
HOW_TO_GET = 'pip install -e ".[plot]"  (or: pip install matplotlib)'


def require_matplotlib(path):
    """matplotlib's Figure class, or None after one line on stderr naming the figure that was not drawn."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print(f"note: {path} not drawn: figures need matplotlib, which is not installed — {HOW_TO_GET}",
              file=sys.stderr)
        return None
    return Figure


def _style():
    import matplotlib
    from cycler import cycler

    return matplotlib.rc_context({**STYLE, "axes.prop_cycle": cycler(color=COLOURS)})


def draw(path, draw_fn, size="single", title=None):
    """Create a figure in minilab's style, let `draw_fn(fig)` fill it, save it as a PNG at `path` (exactly
    size × DPI pixels: constrained layout, no tight-bbox cropping).  Returns `path`, or None without matplotlib."""
    Figure = require_matplotlib(path)
    if Figure is None:
        return None
    width, height = SIZES[size] if isinstance(size, str) else size
    with _style():
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        draw_fn(fig)
        if title:
            fig.suptitle(title)
        fig.savefig(path, dpi=DPI, metadata={"Title": title or ""})
    return path


def outside_legend(fig, ax=None, title=None):
    """The legend beside the axes (right, centred: clear of the data and of a figure title)."""
    handles, labels = (ax or fig.axes[0]).get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside right center", title=title)


def break_at_jumps(x, y, jump=0.5):
    """Copies of (x, y) with NaN between neighbours whose values differ by more than `jump`, so a line plot
    lifts the pen at a discontinuity instead of drawing a steep segment that the function does not have."""
    import numpy as np

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cuts = np.flatnonzero(np.abs(np.diff(y)) > jump) + 1
    return np.insert(x, cuts, np.nan), np.insert(y, cuts, np.nan)


def legend_below(ax, ncols=1):
    """The axes' legend under its x-axis label, never on the data."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=ncols)


def mark_jump(ax, x, closed, open_, colour):
    """A closed dot where a step function takes its value at the jump and an open one where it does not."""
    ax.plot([x], [closed], "o", color=colour, zorder=3)
    ax.plot([x], [open_], "o", markerfacecolor="white", markeredgecolor=colour, zorder=3)


def bar_chart(values: dict, path, title, xlabel, fmt="{:.2f}", series=None):
    """Horizontal bars, one row per key, labelled with their values; `series` ({label: {key: value}}) instead of
    `values` draws grouped bars, one colour per series, with a legend."""
    import numpy as np

    groups = series if series is not None else {"": values}
    keys = list(next(iter(groups.values())))

    def fill(fig):
        ax = fig.add_subplot()
        height = 0.8 / len(groups)
        rows = np.arange(len(keys))
        for g, (label, group) in enumerate(groups.items()):
            offsets = rows - 0.4 + height * (g + 0.5)
            bars = ax.barh(offsets, [group[k] for k in keys], height, label=label or None, color=COLOURS[g])
            ax.bar_label(bars, [fmt.format(group[k]) for k in keys], padding=3, fontsize=8)
        ax.set_yticks(rows, keys)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.margins(x=0.15)
        ax.grid(axis="y", visible=False)
        if series is not None:
            outside_legend(fig, ax)

    rows_high = max(4.0, 1.2 + 0.32 * len(keys) * max(1, len(groups) ** 0.5))
    return draw(path, fill, (SIZES["single"][0] + (1.4 if series else 0), rows_high), title)


def breakdown_figure(parts_ms: dict, path, title):
    """`bench model`'s per-operator breakdown of one packed forward (the paper's Fig. 6): milliseconds per
    operator type, largest first, categories that took no time left out."""
    items = dict(sorted(((k, v) for k, v in parts_ms.items() if v > 0), key=lambda kv: -kv[1]))
    return bar_chart(items, path, title, "time per profiled forward pass (ms)", fmt="{:.2f} ms")


def confusion_figure(matrix, names, path, title):
    """A confusion matrix: row = true class, column = predicted class, each cell the fraction of the row's images
    (so the diagonal is each class's accuracy), with the image count written in the cell when it fits."""
    import numpy as np

    counts = np.asarray(matrix, np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(names)

    def fill(fig):
        ax = fig.add_subplot()
        image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, label="fraction of the true class's images", shrink=0.8)
        named = k <= 40                  # past that, names would overlap: the axes count class indices
        if named:
            ax.set_xticks(np.arange(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
            ax.set_yticks(np.arange(k), names)
        ax.set_xlabel("predicted class" + ("" if named else " (index)"))
        ax.set_ylabel("true class" + ("" if named else " (index)"))
        ax.grid(False)
        ax.tick_params(length=0)
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8 if k <= 12 else 6,
                            color="white" if rates[i, j] > 0.5 else "black")

    side = min(4.0 + 0.45 * k, 14.0)
    return draw(path, fill, (side + 1.2, side), title)


__all__ = ["COLOURS", "DPI", "SIZES", "HOW_TO_GET", "cpu_name", "require_matplotlib", "draw", "outside_legend", "break_at_jumps", "legend_below",
           "mark_jump", "bar_chart", "breakdown_figure", "confusion_figure"]
