"""Shared by the tutorials: smoke mode, where the real data is, where figures go, and a tiny line plot."""
import os
import platform
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
    return f"{platform.machine()}, {os.cpu_count()} cores"


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def line_plot(series: dict, path, title, xlabel="epoch", ylabel=""):
    """A minimal line chart with Pillow (matplotlib is optional in minilab)."""
    from PIL import Image, ImageDraw

    w, h, m = 640, 400, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    ys = [v for vals in series.values() for v in vals]
    lo, hi = min(ys), max(ys)
    hi = hi if hi > lo else lo + 1
    n = max(len(v) for v in series.values())
    colours = [(200, 60, 60), (50, 90, 200), (40, 150, 60), (150, 80, 160)]
    d.rectangle([m, m, w - m, h - m], outline="black")
    d.text((m, 15), title, fill="black")
    d.text((w // 2 - 20, h - 30), xlabel, fill="black")
    d.text((5, m - 15), f"{ylabel} {hi:.3g}", fill="black")
    d.text((5, h - m - 5), f"{lo:.3g}", fill="black")
    for k, (name, vals) in enumerate(series.items()):
        pts = [(m + (w - 2 * m) * i / max(n - 1, 1), h - m - (h - 2 * m) * (v - lo) / (hi - lo))
               for i, v in enumerate(vals)]
        colour = colours[k % len(colours)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        for x, y in pts:
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        d.text((w - m - 120, m + 10 + 15 * k), name, fill=colour)
    img.save(path)
    return path


def shows(path):
    print(f"-> figure written to {os.path.relpath(path)}")
    return path


__all__ = ["SMOKE", "OUT", "imagenette_root", "machine", "Timer", "line_plot", "shows", "np"]
