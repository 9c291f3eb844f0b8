"""Feature-map figures (the paper's Fig. 1 / 4): grids of pre- and post-binarization maps — the grids are images
built with NumPy and Pillow, matplotlib draws the titles and labels around them."""
import numpy as np

from . import plotting


def to_gray(m):
    """A map as 0–255 grey: a ±1 map as black (−1) / white (+1) — even when it holds one value only — and a float
    map scaled per map, min → black, max → white (a constant float map is mid-grey)."""
    m = np.asarray(m, dtype=np.float64)
    if np.all(np.abs(m) == 1):
        return np.where(m > 0, 255, 0).astype(np.uint8)
    lo, hi = m.min(), m.max()
    return np.full(m.shape, 128, np.uint8) if hi == lo else ((m - lo) / (hi - lo) * 255).astype(np.uint8)


def grid(maps, columns=8, cell=64, gap=2, background=140):
    """(K, H, W) maps → one uint8 image: `columns` per row, each upscaled to `cell` px (nearest neighbour), on a
    grey background so that an all-white or all-black map still shows its edges."""
    from PIL import Image

    k = len(maps)
    rows = -(-k // columns)
    out = np.full((rows * (cell + gap) + gap, columns * (cell + gap) + gap), background, np.uint8)
    for i, m in enumerate(maps):
        tile = np.asarray(Image.fromarray(to_gray(m)).resize((cell, cell), Image.NEAREST))
        r, c = divmod(i, columns)
        out[gap + r * (cell + gap):gap + r * (cell + gap) + cell, gap + c * (cell + gap):gap + c * (cell + gap) + cell] = tile
    return out


def feature_figure(panels, path, channels=8, cell=64):
    """panels: [(title, float maps (C, H, W), binary maps (C, H, W))], e.g. sign vs LAB model, same layer, same
    image: for each, the float input to the binarizer and its ±1 output (white = +1).  When every panel has the
    same input (several binarizers applied to one image) the figure is a table instead: one row per channel, the
    input in the first column and one column per binarizer.  Maps are images (each scaled to its own grey range,
    upscaled without smoothing so each pixel stays a square); matplotlib draws the titles and labels around them.
    Returns the path, or None without matplotlib."""
    shown = min(channels, len(panels[0][1]))
    if all(np.array_equal(panels[0][1][:shown], f[:shown]) for _, f, _ in panels):
        return _binarizer_table(panels, path, shown)
    rows = []
    for title, float_maps, binary_maps in panels:
        rows += [(f"{title}: input", grid(float_maps[:shown], shown, cell)),
                 (f"{title}: ±1 output (white = +1)", grid(binary_maps[:shown], shown, cell))]

    def fill(fig):
        for ax, (title, image) in zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows):
            _show(ax, image, title)
            ax.set_xticks([2 + (cell + 2) * c + cell / 2 for c in range(shown)],
                          [f"channel {c}" if shown <= 4 else f"ch {c}" for c in range(shown)], fontsize=8)

    width = max(4.0, 0.9 * shown + 0.6)
    height = len(rows) * ((width - 0.3) / shown + 0.55) + 0.2      # each grid is about `shown` times wider than tall
    return plotting.draw(path, fill, (width, height))


def _binarizer_table(panels, path, shown):
    columns = [("input", panels[0][1])] + [(f"{title}", b) for title, _, b in panels]

    def fill(fig):
        axes = fig.subplots(shown, len(columns), squeeze=False)
        for c in range(shown):
            for j, (title, maps) in enumerate(columns):
                _show(axes[c, j], to_gray(maps[c]), title if c == 0 else None)
                axes[c, j].set_xticks([])
            axes[c, 0].set_ylabel(f"channel {c}")
        fig.supxlabel("grey: the float map (its own range); black / white: −1 / +1", fontsize=9)

    return plotting.draw(path, fill, (0.4 + 1.6 * len(columns), 0.6 + 1.65 * shown))


def _show(ax, image, title=None):
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if title:
        ax.set_title(title, loc="left" if ax.get_subplotspec().get_gridspec().ncols == 1 else "center", fontsize=9)
    ax.set_yticks([])
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():        # a thin frame: an all-white map still shows its edge
        spine.set_visible(True)
        spine.set_color(plotting.GREY)
        spine.set_linewidth(0.6)
