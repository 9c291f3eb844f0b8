"""Shared by the tutorials: smoke mode, where the real data is, where figures go.  The figures themselves are
drawn with matplotlib in minilab's style (minilab.analysis.plotting)."""
import os
import time

import numpy as np

from minilab import config

# MINILAB_TUTORIAL_SMOKE=1 shrinks data, epochs and sizes so that every tutorial runs in seconds (the test suite
# runs them this way so that none can rot).
SMOKE = config.tutorial_smoke
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = config.tutorial_out or os.path.join(HERE, "output")
os.makedirs(OUT, exist_ok=True)


def imagenette_root():
    """The real Imagenette split: $MINILAB_IMAGENETTE, the copy beside this repository, or the cache's download."""
    from minilab.data import find_local_imagenette

    candidates = [config.imagenette,
                  os.path.join(HERE, "..", "..", "shared", "data", "imagenette2-224"), find_local_imagenette()]
    for path in candidates:
        if path and os.path.isdir(os.path.join(path, "val")):
            return os.path.abspath(path)
    return None


def machine():
    """The CPU the numbers were measured on (the same caption the figures carry)."""
    from minilab.analysis.plotting import cpu_name
    return cpu_name()


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def shows(path):
    """Say where a figure went and show it: the PNG, drawn in minilab's style, opened as a pyplot figure of the
    same pixel size, which a notebook displays (sphinx-gallery puts the PNG itself on the page).  Figure
    functions return None when matplotlib is missing: then nothing to say.  Returns nothing, so that a cell
    ending with it shows the figure, not a path of this machine."""
    if path is None:
        return None
    print(f"-> figure written to {os.path.relpath(path)}")
    import matplotlib.pyplot as plt

    from minilab.analysis.plotting import DPI

    image = plt.imread(path)
    height, width = image.shape[:2]
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="none")
    ax.set_axis_off()
    if "agg" not in plt.get_backend().lower():       # a notebook or a window: show it now; Agg shows nothing
        plt.show()


def binary_map_statistics(maps, width=10):
    """{name: (+1 fraction, mean SSIM between the channels' maps)} for {name: ±1 maps (N, C, H, W)}, printed as a
    table (tutorials 04 and 05 read these two numbers)."""
    from minilab.analysis import layer_dissimilarity, plus_one_fraction

    stats = {}
    print(f"{'binarizer':{width}s} {'+1 fraction':>11s} {'SSIM between channels':>22s}")
    for name, b in maps.items():
        ssim, _ = layer_dissimilarity(b, encoding="pm1", window="uniform")
        stats[name] = (plus_one_fraction(b)[0], ssim)
        print(f"{name:{width}s} {stats[name][0]:11.3f} {ssim:22.3f}")
    return stats


def seconds(timer, what):
    """One line with a time measured by this run and the CPU it ran on."""
    print(f"{what}: {timer.seconds:.2f} s on {machine()}")


__all__ = ["SMOKE", "OUT", "binary_map_statistics", "imagenette_root", "machine", "Timer", "seconds", "shows", "np"]
