"""
04 — Local thresholds: Niblack and Sauvola
==========================================

**What you will learn:** the classic document-binarization rules that compare every pixel with its own
neighbourhood instead of with 0, what they keep that a global sign loses, which changes of an image they ignore
(a property you can prove and check), and how little two popular summary numbers — the +1 fraction and the
SSIM between channels — say about them.  These are the baselines the LAB paper compares with.

**What you need:** tutorial 02 (sign and the STE).
"""

# %%
# The rules
# ---------
# For every pixel, the mean and the spread of its 3×3 neighbourhood:
#
# .. math::
#
#    m = \mathrm{AvgPool}_{3\times 3}(x), \qquad s = \sqrt{\mathrm{AvgPool}_{3\times 3}\left((x - m)^2\right)
#    + 10^{-9}} .
#
# **Niblack** thresholds at :math:`t = m + k s` (here :math:`k = -0.2`); **Sauvola** at
# :math:`t = m\,\left(1 + k\,(s / R - 1)\right)` with :math:`k = 0.5` and :math:`R` the largest :math:`s` in the
# batch.  Both output :math:`y = \mathrm{sign}(x - t)` and train with the STE of tutorial 02, whose gradient
# flows through :math:`m` and :math:`s` too.  We apply them to real images (Imagenette's validation split when
# it is found, generated textures otherwise), one colour channel at a time.
import numpy as np
from common import OUT, SMOKE, binary_map_statistics, imagenette_root, shows

import minilab as ml
from minilab import F
from minilab.analysis import plotting
from minilab.analysis.figures import to_gray
from minilab.analysis.report import load_images
from minilab.data import make_synthetic
from minilab.data.augment import normalize
from minilab.ops.binarizers import local_stats

root = imagenette_root()
size, count = (32, 4) if SMOKE else (64, 20)
if root is None:
    images = normalize(make_synthetic(count, size)[0])
    print("Imagenette not found: generated textures (set MINILAB_IMAGENETTE to the real split)")
else:
    images = load_images(f"{root}/val", size, count)
    print(f"{len(images)} validation images from {root}, {size}×{size}")
x = ml.tensor(images)
with ml.no_grad():
    m, s = (t.data for t in local_stats(x))
    maps = {"sign": F.sign_ste(x).data, "Niblack": F.niblack(x).data, "Sauvola": F.sauvola(x).data}
channel = images[0, 0]
niblack_threshold = m[0, 0] - 0.2 * s[0, 0]


def pipeline(fig):
    axes = fig.subplots(2, 4)
    panels = [("input x (red channel)", channel), ("local mean m", m[0, 0]), ("local spread s", s[0, 0]),
              ("Niblack's threshold t = m − 0.2 s", niblack_threshold),
              ("sign(x)", maps["sign"][0, 0]), ("Niblack: sign(x − t)", maps["Niblack"][0, 0]),
              ("Sauvola", maps["Sauvola"][0, 0]), ("where Niblack ≠ sign", maps["Niblack"][0, 0] * maps["sign"][0, 0])]
    for ax, (title, image) in zip(axes.ravel(), panels):
        ax.imshow(to_gray(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()


shows(plotting.draw(f"{OUT}/04_local_thresholds.png", pipeline, (10.0, 5.4),
                    "one channel through a global and two local thresholds (white = +1)"))

# %%
# Look at the large bright or dark regions of the input: sign turns each into one solid block, while Niblack
# marks, inside them, which pixels are brighter than their neighbours — texture and edges survive.  (The last
# panel is black where Niblack and sign disagree.)
#
# What a local threshold ignores
# ------------------------------
# Brighten an image by a constant :math:`c` or scale its contrast by :math:`a > 0`: :math:`x \to a x + c`.  Then
# :math:`m \to a m + c` and :math:`s \to a s`, so Niblack's :math:`x - t \to a (x - t)` and its output does not
# change at all.  Sauvola's threshold is proportional to :math:`m`, so it ignores scaling but not an offset;
# sign ignores scaling but not an offset.  The run checks all six cases (up to the few pixels that sit exactly
# on a threshold, where float rounding decides):
changes = {"brighter (x + 0.5)": lambda v: v + 0.5, "less contrast (0.5·x)": lambda v: 0.5 * v}
flips = {}
for change, fn in changes.items():
    with ml.no_grad():
        y = ml.tensor(fn(images).astype(np.float32))
        changed = {"sign": F.sign_ste(y).data, "Niblack": F.niblack(y).data, "Sauvola": F.sauvola(y).data}
    for name in maps:
        flips[name, change] = float((changed[name] != maps[name]).mean())
        print(f"{name:8s} {change:22s}: {100 * flips[name, change]:5.1f} % of the pixels change")
assert flips["Niblack", "brighter (x + 0.5)"] < 0.01 and flips["Niblack", "less contrast (0.5·x)"] < 0.01
assert flips["Sauvola", "less contrast (0.5·x)"] < 0.01 and flips["sign", "less contrast (0.5·x)"] < 0.01
assert flips["sign", "brighter (x + 0.5)"] > 0.05 and flips["Sauvola", "brighter (x + 0.5)"] > 0.01

# %%
# Two summary numbers, read carefully
# -----------------------------------
# Papers often summarise binarized maps by the **fraction of +1** outputs (a map that is almost all +1 or all
# −1 carries little) and by the **SSIM between the channels' maps** (structural similarity, 1 for identical
# maps: if the three colour channels give the same map, two of them are wasted).  The run prints both:
stats = binary_map_statistics(maps)
for name in ("Niblack", "Sauvola"):
    d_frac = stats[name][0] - stats["sign"][0]
    d_ssim = stats[name][1] - stats["sign"][1]
    say = lambda d: "about the same as" if abs(d) < 0.05 else ("above" if d > 0 else "below")   # noqa: E731
    print(f"{name}: +1 fraction {say(d_frac)} sign's ({d_frac:+.3f}), SSIM between channels {say(d_ssim)} "
          f"sign's ({d_ssim:+.3f})")

# %%
# Read these numbers for what they are.  Niblack's threshold sits a little *below* the local mean
# (:math:`k < 0`), so it outputs +1 for somewhat more than half of the pixels wherever the image is locally
# symmetric — its +1 fraction says more about :math:`k` than about quality.  Sauvola's threshold scales with
# :math:`m`, which on normalised images is near 0 in mid-grey regions, so it often behaves much like sign.  And the
# three colour channels of a photograph have nearly the same edges, so a local threshold, which follows edges,
# need not make the channels' maps less alike: the SSIM column shows whether it does on these images — a
# difference below about 0.05 is no real difference.  Neither number shows what the figure shows — *where*
# detail is kept; tutorial 06 measures that with the uniqueness ratio.
#
# Exercises
# ---------
# 1. **Predict, then run.**  What does Niblack output on a constant image?  ``assert`` it.
# 2. **Batch dependence.**  Sauvola's :math:`R` is the largest spread in the *batch*.  Binarize image 0 alone
#    and together with a high-contrast image (``4 * images[1]``): predict whether image 0's map changes.
# 3. **The sign of k.**  Predict which gives more +1 outputs, Niblack with :math:`k = -0.2` or :math:`k = 0.2`,
#    and whether that holds for every image (not only on average); check with an ``assert``.
# 4. **Gradients.**  Check Niblack's backward (which flows through :math:`m` and :math:`s`) with
#    ``ml.gradcheck(..., surrogate=True)`` on a small float64 input.
#
# Answers
# -------
# **1.**  :math:`x = m` and :math:`s = \sqrt{10^{-9}}`, so :math:`x - t = 0.2 s > 0`: every pixel is +1.
with ml.no_grad():
    constant = F.niblack(ml.tensor(np.full((1, 1, 6, 6), 0.3, np.float32))).data
assert np.all(constant == 1)
print("1. Niblack on a constant image:", np.unique(constant))

# %%
# **2.**  It changes: the second image raises :math:`R`, which lowers :math:`s/R` and so Sauvola's threshold
# everywhere.  At inference with batch 1, :math:`R` comes from the image itself — the same image can be
# binarized differently depending on its batch mates.
with ml.no_grad():
    alone = F.sauvola(ml.tensor(images[:1])).data[0]
    together = F.sauvola(ml.tensor(np.stack([images[0], 4 * images[1]]))).data[0]
changed = float((alone != together).mean())
assert changed > 0
print(f"2. {100 * changed:.1f} % of image 0's Sauvola map changes when batched with a high-contrast image")

# %%
# **3.**  :math:`k = -0.2` lowers every threshold (:math:`s \ge 0`), so every pixel that is +1 with
# :math:`k = 0.2` is +1 with :math:`k = -0.2` too: more +1 outputs for every image, not only on average.
with ml.no_grad():
    low, high = F.niblack(x, k=-0.2).data, F.niblack(x, k=0.2).data
assert np.all(low >= high)
print(f"3. +1 fraction: k = −0.2 → {np.mean(low > 0):.3f}, k = 0.2 → {np.mean(high > 0):.3f}")

# %%
# **4.**
small = ml.Tensor(np.random.default_rng(0).standard_normal((1, 1, 4, 4)), requires_grad=True)
assert ml.gradcheck(lambda t: F.niblack(t), small, surrogate=True)
print("4. Niblack's backward matches its surrogate")
