"""
07 — Training a small BNN: the loop, the architecture, sign vs LAB over seeds
=============================================================================

**What you will learn:** the training loop of a BNN written out line by line (forward, loss, backward, Adam,
latent-weight clipping), the LAB-BNN architecture, how to compare two binarizers honestly (several seeds, the
spread printed next to the difference), what training does to the uniqueness ratio of tutorial 06, and the
command-line tool that wraps the same loop with checkpoints, resuming and metrics.

**What you need:** tutorials 02 (latent weights and clipping), 05 (LAB) and 06 (:math:`\\eta` and its control
at initialisation).
"""

# %%
# The architecture: LAB-BNN
# -------------------------
# LAB-BNN is Bi-Real Net-18 with three changes the LAB paper makes: QuickNet's stem, a PReLU after every
# residual addition, and LAB as the binarizer of all 16 binary convolutions.  A **stem** of float convolutions
# shrinks the image by 4; **four stages** of four residual blocks follow (widths 64, 128, 256, 512, times the
# ``width`` factor; the first block of stages 2–4 halves the map); a global average pool and one dense layer
# classify.  Every block is
#
# .. math::
#
#    \mathrm{out} = \mathrm{PReLU}\left(\mathrm{BN}(\mathrm{BinaryConv}_{3\times 3}(\mathrm{LAB}(x))) +
#    \mathrm{shortcut}(x)\right),
#
# where the shortcut is :math:`x` itself, or an average pool, a 1×1 float convolution and BN where the block
# changes the map size or width.  The float shortcut carries information around every binarization.
import os
import shutil

import numpy as np
from common import OUT, SMOKE, Timer, imagenette_root, machine, shows

import minilab as ml
from minilab import F, nn
from minilab.analysis import plotting
from minilab.analysis import capture, layer_uniqueness
from minilab.data import load_datasets
from minilab.data.augment import normalize
from minilab.models import create_model
from minilab.optim import Adam
from minilab.training.metrics import read_run
from minilab.train import main as train_cli


def architecture(fig):
    from matplotlib.patches import FancyBboxPatch

    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set(xlim=(0, 14.2), ylim=(0, 6.3))

    def box(x, y, w, h, text, face, edge, size=8):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", facecolor=face, edgecolor=edge))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1))

    float_face, binary_face = "#DCEBF5", "#FBE3D0"
    box(0.1, 4.3, 1.3, 1.2, "image\n3×S×S", "white", plotting.GREY)
    box(1.8, 4.3, 2.0, 1.2, "stem (float)\nconv 3×3/2, BN, ReLU\ndw 3×3/2, BN\nconv 1×1, BN", float_face,
        plotting.COLOURS[0], 7)
    arrow(1.4, 4.9, 1.8, 4.9)
    x = 4.2
    for stage, (width, scale) in enumerate(zip((64, 128, 256, 512), (4, 8, 16, 32))):
        box(x, 4.3, 1.75, 1.2, f"stage {stage + 1}\n4 blocks\n{width}·width ch\nS/{scale} × S/{scale}", binary_face,
            plotting.COLOURS[1], 7)
        arrow(x - 0.4, 4.9, x, 4.9)
        x += 2.1
    box(x, 4.3, 1.2, 1.2, "avg pool\ndense\n→ classes", float_face, plotting.COLOURS[0], 7)
    arrow(x - 0.4, 4.9, x, 4.9)
    # one block, enlarged
    ax.text(0.1, 3.35, "one residual block:", fontsize=9, weight="bold")
    steps = [("x", "white", plotting.GREY), ("LAB\n(±1)", binary_face, plotting.COLOURS[1]),
             ("binary conv 3×3\nXNOR-popcount", binary_face, plotting.COLOURS[1]),
             ("BN", float_face, plotting.COLOURS[0]), ("+", "white", plotting.GREY),
             ("PReLU", float_face, plotting.COLOURS[0]), ("out", "white", plotting.GREY)]
    xs = [0.4, 2.0, 4.0, 6.6, 8.2, 9.6, 11.4]
    widths = [0.9, 1.4, 2.2, 0.9, 0.7, 1.2, 0.9]
    for (text, face, edge), bx, bw in zip(steps, xs, widths):
        box(bx, 1.5, bw, 1.0, text, face, edge, 8)
    for (bx, bw), nx in zip(zip(xs, widths), xs[1:]):
        arrow(bx + bw, 2.0, nx, 2.0)
    ax.annotate("", xy=(8.55, 1.45), xytext=(0.85, 1.45),
                arrowprops=dict(arrowstyle="-|>", color=plotting.COLOURS[0], lw=1.2,
                                connectionstyle="arc,angleA=-90,angleB=-90,armA=25,armB=25,rad=6"))
    ax.text(4.7, 0.75, "shortcut: x, or avg pool + conv 1×1 + BN when the map halves (float)", ha="center",
            fontsize=8, color=plotting.COLOURS[0])
    ax.text(14.1, 0.0, "orange: binary (1 bit per weight and activation)   blue: float", ha="right", fontsize=8,
            color=plotting.GREY)


shows(plotting.draw(f"{OUT}/07_labbnn_architecture.png", architecture, (10.0, 4.6), "LAB-BNN"))

# %%
# The data
# --------
# Imagenette (10 ImageNet classes) at 32×32 px when it is found — small enough that a CPU trains a network in
# minutes — and generated textures otherwise (and in the test suite's smoke mode).  The same ``load_datasets``
# serves the command-line tool; real images go through a preprocessing cache once.
root = imagenette_root()
size = 32
if root is None or SMOKE:
    train_set, val_set = load_datasets("synthetic", size, synthetic_size=(128, 64), progress=False)
else:
    train_set, val_set = load_datasets(root, size, progress=False)
print(f"{train_set.name}: {len(train_set)} training and {len(val_set)} validation images, {size}×{size} px, "
      f"{len(train_set.classes)} classes")

# %%
# The loop, written out
# ---------------------
# One step is five lines: the **forward** (``model(x)``), the **loss** (cross-entropy of the logits), the
# **backward** (after ``zero_grad``, since gradients accumulate — tutorial 01), the **Adam** update of every
# parameter and, inside ``opt.step()``, the **latent-weight clip**: every binary conv's weight declares
# ``clip = 1``, and the optimizer ends each update with :math:`w \leftarrow \mathrm{clip}(w, -1, 1)` (tutorial
# 02).  The check after each step makes that visible.  Evaluation runs the model in ``eval()`` mode
# (BatchNorm's running statistics) without recording a graph.


def evaluate(model, dataset, batch=256):
    model.eval()
    hits = 0
    with ml.no_grad():
        for start in range(0, len(dataset), batch):
            logits = model(ml.tensor(normalize(dataset.images[start:start + batch])))
            hits += int((logits.data.argmax(axis=1) == dataset.labels[start:start + batch]).sum())
    model.train()
    return hits / len(dataset)


def train(binarizer, seed, epochs, batch=64, lr=2.5e-3):
    nn.init.seed(seed)
    rng = np.random.default_rng(seed)
    model = create_model("labbnn", num_classes=len(train_set.classes), image_size=size, width=0.25,
                         binarizer=binarizer)
    opt = Adam(model.parameters(), lr=lr)
    binary_weights = [p for p in model.parameters() if getattr(p, "binary", False)]
    curve = []
    for epoch in range(epochs):
        order = rng.permutation(len(train_set))
        for start in range(0, len(order) - batch + 1, batch):
            idx = np.sort(order[start:start + batch])
            x = ml.tensor(normalize(train_set.images[idx]))
            logits = model(x)                                     # forward
            loss = F.cross_entropy(logits, train_set.labels[idx])  # loss
            opt.zero_grad()
            loss.backward()                                       # backward
            opt.step()                                            # Adam, then w ← clip(w, −1, 1)
            assert all(np.abs(p.data).max() <= 1 for p in binary_weights)
        curve.append(evaluate(model, val_set))
    at_bound = np.mean(np.concatenate([np.abs(p.data).ravel() for p in binary_weights]) == 1)
    return model, curve, at_bound


epochs = 1 if SMOKE else 3
seeds = (0, 1) if SMOKE else (0, 1, 2)
runs, models = {}, {}
with Timer() as total:
    for binarizer in ("sign", "lab"):
        for seed in seeds:
            with Timer() as t:
                model, curve, at_bound = train(binarizer, seed, epochs)
            runs[binarizer, seed] = curve
            models[binarizer, seed] = model
            print(f"{binarizer:4s} seed {seed}: val top-1 per epoch {[round(100 * c, 1) for c in curve]} %, "
                  f"{100 * at_bound:.1f} % of latent binary weights at the clip bound, {t.seconds:.0f} s")
print(f"{len(runs)} runs in {total.seconds:.0f} s on {machine()}")

# %%
# Sign vs LAB, with the seed spread
# ---------------------------------
# One run per binarizer is an anecdote: two seeds of the *same* setting differ too.  The run prints the mean
# and spread of the final accuracy per binarizer and says whether the difference exceeds the spread.
final = {b: np.array([runs[b, s][-1] for s in seeds]) for b in ("sign", "lab")}
for b, values in final.items():
    print(f"{b:4s}: final val top-1 {100 * values.mean():.1f} % ± {100 * values.std():.1f} (over {len(seeds)} seeds)")
gap = final["lab"].mean() - final["sign"].mean()
spread = max(final["lab"].std(), final["sign"].std(), 1e-9)
verdict = "larger than" if abs(gap) > 2 * spread else "within"
print(f"LAB − sign = {100 * gap:+.1f} points: {verdict} twice the larger seed spread ({100 * 2 * spread:.1f} points)")


def accuracy_curves(fig):
    ax = fig.add_subplot()
    for colour, b in zip(plotting.COLOURS, ("sign", "lab")):
        for i, seed in enumerate(seeds):
            ax.plot(range(1, epochs + 1), [100 * c for c in runs[b, seed]], "o-", color=colour, alpha=0.8,
                    label=b if i == 0 else None)
    ax.axhline(100 / len(train_set.classes), ls=":", color=plotting.GREY, label="chance")
    ax.set(xlabel="epoch", ylabel="validation top-1 (%)", xticks=range(1, epochs + 1),
           title=f"LAB-BNN (width 0.25, {size} px), one line per seed\n{train_set.name}")
    plotting.outside_legend(fig, ax, title="binarizer")


shows(plotting.draw(f"{OUT}/07_sign_vs_lab_seeds.png", accuracy_curves))

# %%
# Look at the gap between the colours against the spread within each colour.  In smoke mode (two batches of
# generated textures) nothing can be concluded; on Imagenette the run above decides.
#
# What training did to η
# ----------------------
# Tutorial 06 measured :math:`\eta` per binary layer of *untrained* networks and found the sign network's maps
# constant in most layers.  The same measurement on the trained seed-0 networks, on validation images
# (and, as the control, on the same networks before training: rebuilt from seed 0).
probe = normalize(val_set.images[:4 if SMOKE else 10])


def eta_per_layer(model):
    feats = capture(model, probe)
    return ({name: layer_uniqueness(f["binary"], max_channels=4 if SMOKE else 8)[0] for name, f in feats.items()},
            {name: f["binary"].shape[2] for name, f in feats.items()})


eta, eta_init = {}, {}
for b in ("sign", "lab"):
    eta[b], shapes = eta_per_layer(models[b, 0])
    nn.init.seed(0)
    eta_init[b], _ = eta_per_layer(create_model("labbnn", num_classes=len(train_set.classes), image_size=size,
                                                width=0.25, binarizer=b))
print(f"{'layer':16s} {'map':>5s} {'η sign':>7s} {'η LAB':>7s}   before training: {'sign':>6s} {'LAB':>6s}")
for name in eta["sign"]:
    print(f"{name:16s} {shapes[name]:>3d}px {eta['sign'][name]:7.3f} {eta['lab'][name]:7.3f}"
          f"                    {eta_init['sign'][name]:6.3f} {eta_init['lab'][name]:6.3f}")
large = [n for n in eta["sign"] if shapes[n] >= 4]          # below 4×4 the map size caps η (tutorial 06)
mean_eta = {b: np.mean([eta[b][n] for n in large]) for b in eta}
mean_init = {b: np.mean([eta_init[b][n] for n in large]) for b in eta}
print(f"mean η over the layers with maps of 4×4 or more: sign {mean_eta['sign']:.3f} (before training "
      f"{mean_init['sign']:.3f}), LAB {mean_eta['lab']:.3f} (before training {mean_init['lab']:.3f})")
if not SMOKE:       # the paper's claim, checked where it is meant to hold: trained on real images
    assert mean_eta["lab"] > mean_eta["sign"], "LAB's η should exceed sign's on the larger maps after training"


def eta_trained(fig):
    ax = fig.add_subplot()
    layers = list(eta["sign"])
    for colour, b in zip(plotting.COLOURS, ("sign", "lab")):
        ax.plot(range(len(layers)), [eta[b][n] for n in layers], "o-", color=colour, label=f"{b}, trained")
        ax.plot(range(len(layers)), [eta_init[b][n] for n in layers], ":", color=colour, label=f"{b}, untrained")
    ax.set_xticks(range(len(layers)), [f"{i}\n{shapes[n]}×{shapes[n]}" for i, n in enumerate(layers)], fontsize=7)
    ax.set(xlabel="binary layer (index, map size)", ylabel="η", ylim=(0, 1.05),
           title="η per binary layer, trained (seed 0) and untrained")
    plotting.outside_legend(fig, ax, title="binarizer")


shows(plotting.draw(f"{OUT}/07_eta_trained.png", eta_trained))

# %%
# Read the solid lines against the dotted ones: part of LAB's advantage in :math:`\eta` is there before any
# training (sign starts from constant maps), and training moves both.  The claim checked above — LAB's
# :math:`\eta` above sign's on the larger maps after training on real images — is the paper's Table 1 in
# miniature; how much of it training adds is the difference between the solid and the dotted lines.

# %%
# The command-line tool
# ---------------------
# ``python -m minilab.train`` runs this loop (through ``minilab.train.train_step``, which also handles several
# processes — tutorial 10) and adds what a long run needs: a run directory with ``metrics.jsonl`` after every
# epoch, a checkpoint, ``--resume``, learning-rate schedules, augmentation, progress bars and ``curves.png``.
# The same small setting, one epoch:
out = os.path.join(OUT, "07_cli_run")
shutil.rmtree(out, ignore_errors=True)        # a rerun starts afresh: training refuses a folder holding a run
args = ["--arch", "labbnn", "--data", "synthetic" if (root is None or SMOKE) else root, "--image-size", str(size),
        "--width", "0.25", "--epochs", "1", "--batch-size", "64", "--out", os.path.relpath(out), "--no-progress"]
if root is None or SMOKE:
    args += ["--synthetic-size", "128", "64"]
print("$ python -m minilab.train", " ".join(args))
assert train_cli(args) == 0
_, rows = read_run(out)
print("metrics.jsonl, last row:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()})

# %%
# Exercises
# ---------
# 1. **Predict, then run.**  On its first step Adam moves every weight that has a gradient by
#    :math:`\mathrm{lr}\cdot g/(|g| + \epsilon)`, almost exactly ``lr``.  How far does the largest latent binary
#    weight move in that step, and about how many steps does a weight starting near 0.1 need to reach the clip
#    bound?  Measure the first.
# 2. **The loss before training.**  Predict the cross-entropy of logits that are all 0 over 10 classes.  Then
#    measure an untrained LAB-BNN's loss on one batch: is it above or below that value, and why?
# 3. **Frozen BatchNorm statistics.**  Predict whether ``evaluate`` gives the same accuracy twice in a row
#    (it runs in ``eval()`` mode); ``assert`` it.
# 4. **train_step.**  Replace the five lines of the loop by ``minilab.training.loop.train_step(model, opt, x, y)`` and
#    check that one step from the same seed gives the same loss.
#
# Optional projects (minutes to an hour of CPU each):
#
# * The full recipe at 64 px: ``python -m minilab.train --arch labbnn --data imagenette --image-size 64 --width
#   0.5 --epochs 30 --batch-size 32 --augment padcrop``, and the same with ``--binarizer sign``; compare with
#   ``python -m minilab.plot RUN_DIR RUN_DIR``.
# * Interrupt a run with Ctrl-C and continue it with ``--resume --out DIR``; check ``metrics.jsonl``.
# * ``--binarizer approxsign`` and ``--lab-blocks 0011`` (LAB only in the last two stages; tutorial 08).
#
# Answers
# -------
# **1.**  At most ``lr`` (:math:`2.5\cdot 10^{-3}`), so a weight needs at least about 360 steps to travel from
# 0.1 to 1 — which is why short runs leave (almost) no weight at the bound.
nn.init.seed(0)
model = create_model("labbnn", num_classes=len(train_set.classes), image_size=size, width=0.25, binarizer="sign")
binary_weights = [p for p in model.parameters() if getattr(p, "binary", False)]
before = [p.data.copy() for p in binary_weights]
opt = Adam(model.parameters(), lr=2.5e-3)
loss = F.cross_entropy(model(ml.tensor(normalize(train_set.images[:64]))), train_set.labels[:64])
opt.zero_grad()
loss.backward()
opt.step()
largest = max(np.abs(p.data - b).max() for p, b in zip(binary_weights, before))
print(f"1. largest move of a latent binary weight in the first step: {largest:.6f} (lr = 0.0025)")
assert largest <= 2.5e-3 * (1 + 1e-5)

# %%
# **2.**  All-zero logits are a uniform prediction: :math:`\ln 10 \approx 2.303`.  An untrained BNN's logits
# are not near zero — the binary convolutions sum hundreds of :math:`\pm\alpha` terms — so its confident, random
# predictions usually cost more than the uniform guess.
uniform = F.cross_entropy(ml.tensor(np.zeros((4, 10), np.float32)), np.arange(4)).item()
assert abs(uniform - np.log(10)) < 1e-6
nn.init.seed(0)
model = create_model("labbnn", num_classes=len(train_set.classes), image_size=size, width=0.25)
with ml.no_grad():
    loss = F.cross_entropy(model(ml.tensor(normalize(train_set.images[:64]))), train_set.labels[:64]).item()
print(f"2. zero logits: {uniform:.3f} = ln 10; untrained LAB-BNN: {loss:.3f}")

# %%
# **3.**  Yes: in ``eval()`` mode BatchNorm uses its stored statistics, and nothing is updated.
assert evaluate(models["lab", 0], val_set) == evaluate(models["lab", 0], val_set)
print("3. evaluate is deterministic")

# %%
# **4.**
from minilab.training.loop import train_step  # noqa: E402  (the library's version of the five lines)

losses = []
for use_library in (False, True):
    nn.init.seed(0)
    model = create_model("labbnn", num_classes=len(train_set.classes), image_size=size, width=0.25)
    opt = Adam(model.parameters())
    x, y = ml.tensor(normalize(train_set.images[:64])), train_set.labels[:64]
    if use_library:
        losses.append(train_step(model, opt, x, y)[0])
    else:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
assert losses[0] == losses[1]
print("4. the same loss:", losses)
