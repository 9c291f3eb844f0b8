"""
06 — The uniqueness bottleneck: how many different maps can a binary layer make?
================================================================================

**What you will learn:** the LAB paper's argument against a global sign, made measurable: the uniqueness ratio
:math:`\\eta` of a binary map, where it is really low (flat maps, regular patterns, small maps), what the map
size alone allows, and what :math:`\\eta` looks like inside a network *before* any training — the control
against which tutorial 07's trained networks are read.

**What you need:** tutorials 03 (binary convolutions on packed bits) and 05 (LAB).
"""

# %%
# The uniqueness ratio
# --------------------
# A binary conv layer receives a :math:`\pm 1` map :math:`A` and can only output what a binary 3×3 kernel and
# a sign make of it.  Convolve :math:`A` with every one of the :math:`2^9 = 512` binary kernels, binarize each
# result, and count the *distinct* maps:
#
# .. math::
#
#    \eta(A) = \frac{\#\,\text{distinct}\;\{\mathrm{sign}(A * k) : k \in \{-1, +1\}^{3\times 3}\}}{512} .
#
# :math:`\eta = 1` means every kernel makes something different of :math:`A`; a small :math:`\eta` means most
# kernels are interchangeable — the layer has few distinct things it can compute.  (The 512 convolutions run on
# the XNOR-popcount kernel of tutorial 03.)
#
# Where η is low: four kinds of map
# ---------------------------------
# A constant map, a half-plane (an edge), a checkerboard and a random map, all 16×16, zero-padded as Larq pads:
import numpy as np
from common import OUT, SMOKE, Timer, imagenette_root, machine, shows

from minilab.analysis import plotting
from minilab.analysis import capture, layer_uniqueness, plus_one_fraction, uniqueness_ratio
from minilab.analysis.figures import to_gray
from minilab.analysis.report import load_images
from minilab.data import make_synthetic
from minilab.data.augment import normalize
from minilab.models import create_model
from minilab import nn

n = 16
rows, cols = np.mgrid[0:n, 0:n]
patterns = {
    "constant": np.ones((n, n)),
    "half-plane": np.where(cols < n // 2, -1.0, 1.0),
    "checkerboard": np.where((rows + cols) % 2 == 0, 1.0, -1.0),
    "random": np.where(np.random.default_rng(0).random((n, n)) < 0.5, -1.0, 1.0),
}
eta = {name: uniqueness_ratio(m) for name, m in patterns.items()}
for name, value in eta.items():
    print(f"η({name:12s}) = {value:.3f}  ({round(value * 512)} distinct maps of 512)")
assert eta["constant"] < eta["half-plane"] <= eta["random"] and eta["checkerboard"] < eta["random"]

# %%
# The map size caps η
# -------------------
# An :math:`H \times W` map has only :math:`2^{HW}` possible binary outputs, so
# :math:`\eta \le \min(1, 2^{HW}/512)`: a 1×1 map allows 2 of 512, a 2×2 map 16.  Deep in a network running at
# 32 px the maps *are* 2×2 and 1×1, whatever the binarizer.  The run measures random, checkerboard and constant
# maps of each size against that cap:
sizes = [1, 2, 3, 4, 5, 6, 8, 12, 16]
rng = np.random.default_rng(1)
by_size = {"random": [], "checkerboard": [], "constant": []}
for s in sizes:
    r, c = np.mgrid[0:s, 0:s]
    by_size["random"].append(np.mean([uniqueness_ratio(np.where(rng.random((s, s)) < 0.5, -1.0, 1.0))
                                      for _ in range(3 if SMOKE else 10)]))
    by_size["checkerboard"].append(uniqueness_ratio(np.where((r + c) % 2 == 0, 1.0, -1.0)))
    by_size["constant"].append(uniqueness_ratio(np.ones((s, s))))
cap = [min(1.0, 2.0 ** (s * s) / 512) for s in sizes]
for s, value, limit in zip(sizes, by_size["random"], cap):
    assert value <= limit
print("size :", " ".join(f"{s:>5d}" for s in sizes))
for name, values in by_size.items():
    print(f"{name:13s}", " ".join(f"{v:5.3f}" for v in values))
print("cap          ", " ".join(f"{v:5.3f}" for v in cap))


def eta_figure(fig):
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.6))
    for i, (name, m) in enumerate(patterns.items()):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(to_gray(m), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{name}: η = {eta[name]:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():          # a frame, so that a white map shows its edges
            spine.set_visible(True)
            spine.set_color(plotting.GREY)
    ax = fig.add_subplot(grid[1, :])
    ax.plot(sizes, cap, color="black", ls=":", label="cap: min(1, $2^{HW}$/512)")
    for colour, (name, values) in zip(plotting.COLOURS, by_size.items()):
        ax.plot(sizes, values, "o-", color=colour, label=name)
    ax.set(xlabel="map size (H = W)", ylabel="uniqueness ratio η", ylim=(0, 1.05), xticks=sizes)
    plotting.outside_legend(fig, ax)


shows(plotting.draw(f"{OUT}/06_eta_patterns_and_sizes.png", eta_figure, (9.0, 6.0),
                    "where η is low: flat or regular maps, and small maps"))

# %%
# Two causes of a low :math:`\eta`, then: **content** (a flat map gives the 512 kernels little to tell apart; a
# regular pattern only a little more) and **size** (below 3×3 the cap dominates).  A binarizer can only help
# with the first — a global sign produces large flat regions on shaded images (tutorial 04), a local or learned
# threshold keeps texture.  The second is geometry: comparisons of binarizers on 2×2 or 1×1 maps say nothing.
#
# η inside a network at initialisation: the control
# -------------------------------------------------
# Before asking what training does (tutorial 07), measure :math:`\eta` in *untrained* networks.  LAB-BNN is a
# ResNet-like BNN: a float stem shrinks the image by 4, then 16 residual blocks, each with one binary 3×3
# convolution, in four stages that halve the map (tutorial 07 draws it).  ``minilab.analysis.capture`` records
# the ±1 map each binary convolution receives.  Two networks built from the same seed — one binarizing with
# sign, one with LAB — on the same images:  Any difference here comes from the
# binarizer and the random weights alone, not from learning.
root = imagenette_root()
count = 2 if SMOKE else 10
images = normalize(make_synthetic(count, 32, seed=7)[0]) if root is None else load_images(f"{root}/val", 32, count)
table, shapes, plus = {}, {}, {}
with Timer() as t:
    for binarizer in ("sign", "lab"):
        nn.init.seed(0)
        model = create_model("labbnn", num_classes=10, image_size=32, width=0.25, binarizer=binarizer)
        feats = capture(model, images)
        table[binarizer] = {name: layer_uniqueness(f["binary"], max_channels=4 if SMOKE else 8)[0]
                            for name, f in feats.items()}
        shapes = {name: f["binary"].shape[2] for name, f in feats.items()}
        plus[binarizer] = {name: plus_one_fraction(f["binary"])[0] for name, f in feats.items()}
print(f"{'layer':16s} {'map':>5s} {'η sign':>7s} {'η LAB':>7s} {'+1 sign':>8s} {'+1 LAB':>7s}   (untrained)")
for name in table["sign"]:
    print(f"{name:16s} {shapes[name]:>3d}px {table['sign'][name]:7.3f} {table['lab'][name]:7.3f} "
          f"{plus['sign'][name]:8.3f} {plus['lab'][name]:7.3f}")
flat = [name for name in table["sign"] if shapes[name] >= 3 and plus["sign"][name] in (0.0, 1.0)]
large = [name for name in table["sign"] if shapes[name] >= 3]
print(f"{len(flat)} of the {len(large)} binary layers with maps of 3×3 or more in the untrained sign network "
      "receive maps that are all one value (η of the constant map)")
print(f"measured in {t.seconds:.1f} s on {machine()}")
for name, size in shapes.items():
    assert table["sign"][name] <= min(1.0, 2.0 ** (size * size) / 512) + 1e-9


def untrained(fig):
    ax = fig.add_subplot()
    layers = list(table["sign"])
    for colour, (binarizer, etas) in zip(plotting.COLOURS, table.items()):
        ax.plot(range(len(layers)), [etas[n] for n in layers], "o-", color=colour, label=binarizer)
    ax.plot(range(len(layers)), [min(1.0, 2.0 ** (shapes[n] ** 2) / 512) for n in layers], ":", color="black",
            label="size cap")
    ax.set_xticks(range(len(layers)), [f"{i}\n{shapes[n]}×{shapes[n]}" for i, n in enumerate(layers)], fontsize=7)
    ax.set(xlabel="binary layer (index, map size)", ylabel="η", ylim=(0, 1.05),
           title="η per binary layer of an untrained LAB-BNN at 32 px")
    plotting.outside_legend(fig, ax, title="binarizer")


shows(plotting.draw(f"{OUT}/06_eta_untrained.png", untrained))

# %%
# Where the two lines sit on the dotted cap, the map size decides and the binarizer cannot matter.  Where they
# sit below it on larger maps, compare them.  Look also at the +1 columns: a layer whose sign-binarized maps are
# all +1 has exactly the constant map's :math:`\eta` — a freshly initialised network (positive BatchNorm and
# PReLU outputs on the residual path) can feed sign nothing but constants, while LAB's comparison of two filters
# does not depend on where zero is.  Keep this picture — and keep this picture for tutorial 07, which draws the same plot
# after training.
#
# Exercises
# ---------
# 1. **Predict, then run.**  With ``pad_value=1`` (padding with +1 instead of 0) a constant map's 512 responses
#    are constant maps too.  What is :math:`\eta`?
# 2. **Predict, then run.**  Does :math:`\eta(-A) = \eta(A)` for every map :math:`A`?  Check on random maps.
# 3. **Predict, then run.**  Does transposing the map change :math:`\eta`?
# 4. Find a 4×4 map with :math:`\eta` as low as you can, other than a constant one.  What do the lowest ones
#    look like?
#
# Answers
# -------
# **1.**  Every response is constant, so its sign is the all-+1 or the all-−1 map: 2 distinct, :math:`\eta =
# 2/512`.
assert uniqueness_ratio(np.ones((8, 8)), pad_value=1) == 2 / 512
print("1. η =", uniqueness_ratio(np.ones((8, 8)), pad_value=1))

# %%
# **2.**  Yes: :math:`(-A) * k = A * (-k)`, and the 512 kernels are closed under negation, so the set of
# responses is the same set.
for seed in range(5):
    A = np.where(np.random.default_rng(seed).random((5, 5)) < 0.5, -1.0, 1.0)
    assert uniqueness_ratio(-A) == uniqueness_ratio(A)
print("2. η(−A) = η(A) on five random 5×5 maps")

# %%
# **3.**  No: :math:`A^\top * k^\top = (A * k)^\top`, and transposing the kernels permutes the 512 kernels.
for seed in range(5):
    A = np.where(np.random.default_rng(seed).random((4, 6)) < 0.5, -1.0, 1.0)
    assert uniqueness_ratio(A.T) == uniqueness_ratio(A)
print("3. η(Aᵀ) = η(A) on five random 4×6 maps")

# %%
# **4.**  A search over random 4×4 maps; the lowest are the most regular ones (large blocks of one value).
best = min((np.where(np.random.default_rng(s).random((4, 4)) < 0.5, -1.0, 1.0) for s in range(200 if not SMOKE
            else 40)), key=lambda A: (np.all(A == A.flat[0]), uniqueness_ratio(A)))
print(f"4. lowest η found: {uniqueness_ratio(best):.3f} for\n{best.astype(int)}")
assert uniqueness_ratio(best) < by_size["random"][sizes.index(4)]
