"""Draw the figure the README and the docs' front page open with: docs/_static/lab_vs_sign.png.

One photo, binarized twice: by sign with one global threshold, and by LAB (minilab.F.lab) with its two 3×3
kernels set by hand — k1 picks the pixel itself, k0 the mean of its 3×3 neighbourhood, with a small bias on k0 —
so a pixel is +1 where it is brighter than its surroundings by that margin: a local threshold, the kind of map
LAB can learn and sign, with its one global threshold, cannot express.

    python tools/readme_figure.py [--image PATH] [--out docs/_static/lab_vs_sign.png]

Without --image it takes the first validation photo of the Imagenette copy the tutorials use
(MINILAB_IMAGENETTE, the data beside the repository, or the download cache), else a generated test pattern.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)          # the checkout's minilab, installed or not


def find_photo():
    sys.path.insert(0, os.path.join(ROOT, "tutorials"))
    from common import imagenette_root

    root = imagenette_root()
    if root is None:
        return None
    val = os.path.join(root, "val")
    for wnid in sorted(os.listdir(val)):
        files = sorted(f for f in os.listdir(os.path.join(val, wnid)) if not f.startswith("."))
        if files:
            return os.path.join(val, wnid, files[0])
    return None


def load_grey(path, size):
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("L")
        im = ImageOps.fit(im, (size, size), Image.Resampling.BICUBIC)
        return np.asarray(im, dtype=np.float32) / 255.0


def test_pattern(size):
    yy, xx = np.mgrid[0:size, 0:size] / size
    return (0.5 + 0.25 * np.sin(12 * xx) * np.cos(9 * yy) + 0.4 * (xx - 0.5)).astype(np.float32)


def binarize(grey):
    import minilab as ml
    from minilab import F

    x = grey[None, None] - grey.mean()                              # (1, 1, H, W), centred
    pixel = np.zeros((3, 3), np.float32)
    pixel[1, 1] = 1.0
    box = np.full((3, 3), 1 / 9, np.float32)
    weight = np.stack([box, pixel])[:, None]                        # (2C, 1, 3, 3): k0 = box mean, k1 = pixel
    with ml.no_grad():
        bias = np.array([0.02, 0.0], np.float32)                    # b0: brighter than the mean by a margin
        lab = F.lab(ml.tensor(x), ml.tensor(weight), ml.tensor(bias),
                    ml.tensor(np.float32(1.0)))
        sign = F.sign_ste(ml.tensor(x))
    return sign.data[0, 0], lab.data[0, 0]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python tools/readme_figure.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=None, help="a photo to binarize (default: an Imagenette validation photo)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "_static", "lab_vs_sign.png"))
    p.add_argument("--size", type=int, default=160, help="pixels per side of each panel (default 160)")
    args = p.parse_args(argv)
    try:
        import matplotlib
    except ImportError:
        print('error: drawing the figure needs matplotlib: pip install -e ".[plot]"', file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import UnidentifiedImageError

    path = args.image or find_photo()
    try:
        grey = load_grey(path, args.size) if path else test_pattern(args.size)
    except (OSError, UnidentifiedImageError) as error:
        print(f"error: --image {path}: {error}", file=sys.stderr)
        return 2
    sign, lab = binarize(grey)
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8), layout="constrained")
    panels = [(grey, "input (one channel)"), (sign, "sign: one global threshold"),
              (lab, "LAB: a local threshold")]
    for ax, (image, title) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=image.min(), vmax=image.max(), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {os.path.relpath(args.out)} ({os.path.getsize(args.out) // 1024} kB) from "
          f"{os.path.basename(path) if path else 'a generated test pattern'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
