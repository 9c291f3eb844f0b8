"""
08 — Where LAB goes and what it costs at inference
==================================================

**What you will learn:** how Bi-RealNet-18's binary layers are grouped into four stages, how a mask such as
``1000`` says in which stages LAB replaces sign, how minilab's packed inference engine runs a BNN (at the level
of what it does with the bits, not of its C code), and what each LAB placement costs in latency and model size
on this machine — the latency half of the LAB paper's Table 9.

**What you need:** tutorials 03 (XNOR-popcount), 05 (LAB) and 07 (the LAB-BNN architecture).
"""

# %%
# Stages and masks
# ----------------
# Bi-RealNet-18 (and LAB-BNN, tutorial 07) has 16 binary convolutions in **four stages** of four blocks.  At
# 224 px the stages see maps of 56×56, 28×28, 14×14 and 7×7 pixels with 64, 128, 256 and 512 channels: early
# stages have large maps and few channels, late stages small maps and many channels.
#
# A **LAB mask** is four digits, one per stage: ``1`` puts LAB before every binary conv of that stage, ``0``
# keeps sign.  ``1111`` is LAB everywhere, ``0000`` is plain Bi-RealNet, ``1000`` LAB in the first stage only.
# Training takes it as ``--lab-blocks``; the model builder as ``lab_blocks=``.
import os
import tempfile

import numpy as np
from common import HERE, OUT, SMOKE, machine, shows

from minilab import nn
from minilab.analysis import plotting
from minilab.engine import convert, save_packed
from minilab.benchmarks.profile import breakdown, time_runs
from minilab.models import create_model
from minilab.plot import main as plot_cli

model = create_model("birealnet18", num_classes=1000, image_size=224, binarizer="lab", lab_blocks="1000")
binary = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.BinaryConv2d)]
print(f"{len(binary)} binary convolutions; with lab_blocks='1000' their binarizers are:")
for stage in range(4):
    names = [m.binarizer_name for _, m in binary[4 * stage:4 * stage + 4]]
    print(f"  stage {stage + 1} ({binary[4 * stage][1].weight.shape[1]:>3d} input channels): {names}")
assert [m.binarizer_name for _, m in binary].count("lab") == 4

# %%
# The packed engine, in four ideas
# --------------------------------
# Training keeps float latent weights and runs every op with its NumPy or compiled twin.  For inference minilab
# converts a trained model into a **packed** model (``minilab.engine.convert``) that does four things:
#
# 1. **Weights packed once.**  Each binary conv's weights are replaced by their signs, packed 64 to a machine
#    word (tutorial 03), plus the per-channel scale :math:`\alpha_o`: the binary part of the model shrinks about
#    32 times.
# 2. **Binarize and pack in one pass.**  The activations are compared with the threshold (sign) — or, for LAB,
#    each pixel's two 3×3 depthwise responses are computed and compared (tutorial 05) — and the resulting bit
#    goes straight into the packed words.  No ±1 float map is ever written.
# 3. **XNOR-popcount GEMM.**  The convolution becomes, for every output pixel and channel,
#    :math:`K - 2\,\mathrm{popcount}(a \oplus w)` over the packed words.
# 4. **BatchNorm folded.**  The integer result is scaled by :math:`\alpha_o` and normalised by BatchNorm's
#    fixed statistics in the same output pass.
#
# LAB's extra cost is therefore only idea 2: two 3×3 depthwise filters per channel instead of one comparison
# with zero.  Its cost grows with map area × channels, which is largest in the first stage.
#
# Timing the masks
# ----------------
# The run converts Bi-RealNet-18 (1000 classes) with each mask, times a batch-1 forward on one thread,
# profiles how much of it LAB takes, and saves the packed file to measure its size.
size = 64 if SMOKE else 224
masks = ["0000", "1000", "1111"] if SMOKE else ["0000", "1000", "0100", "0010", "0001", "1111"]
x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
print(f"Bi-RealNet-18 (1000 classes) at {size} px, batch 1, 1 thread, on {machine()}")
print(f"{'lab_blocks':>10s} {'latency ms':>11s} {'LAB part ms':>12s} {'size MB':>8s}")
rows, sizes = {}, {}
for mask in masks:
    config = dict(arch="birealnet18", num_classes=1000, image_size=size, binarizer="lab", lab_blocks=mask)
    packed = convert(create_model(**config), config)
    t = time_runs(lambda: packed(x), runs=3 if SMOKE else 15)
    parts, _ = breakdown(packed, x, runs=2 if SMOKE else 5)
    with tempfile.TemporaryDirectory() as d:
        sizes[mask] = save_packed(packed, os.path.join(d, "m.npz")) / 1e6
    lab_ms = parts["LAB binarize + pack"]
    rows[mask] = (t["median_ms"], lab_ms, t["p10_ms"], t["p90_ms"])
    print(f"{mask:>10s} {t['median_ms']:11.2f} {lab_ms:12.2f} {sizes[mask]:8.3f}")
assert sizes["1111"] > sizes["1000"] > sizes["0000"]       # LAB adds 20·C + 1 parameters per binary conv
assert rows["0000"][1] == 0                                # no LAB, no LAB time
spread = {m: rows[m][3] - rows[m][2] for m in rows}
extra = rows["1111"][0] - rows["0000"][0]
print(f"LAB everywhere adds {extra:+.2f} ms to {rows['0000'][0]:.2f} ms ({100 * extra / rows['0000'][0]:+.1f} %); "
      f"the spread of the timed runs is {max(spread.values()):.2f} ms, so differences below that are noise")


def latency_bars(fig):
    ax = fig.add_subplot()
    names = list(rows)
    median = np.array([rows[m][0] for m in names])
    lab = np.array([min(rows[m][1], rows[m][0]) for m in names])
    whiskers = np.array([[rows[m][0] - rows[m][2], rows[m][3] - rows[m][0]] for m in names]).T
    ax.bar(names, median - lab, color=plotting.COLOURS[0], label="everything else")
    ax.bar(names, lab, bottom=median - lab, color=plotting.COLOURS[1],
           label="LAB (fused depthwise, comparison and packing)")
    ax.errorbar(names, median, yerr=whiskers, fmt="none", ecolor="black", capsize=4, lw=1,
                label="10th–90th percentile of the runs")
    ax.set(xlabel="lab_blocks (LAB on / off per stage)", ylabel="latency per image (ms)",
           title=f"Bi-RealNet-18 packed engine, {size} px, batch 1, 1 thread\n{plotting.cpu_name()}")
    plotting.legend_below(ax)


shows(plotting.draw(f"{OUT}/08_lab_blocks_latency.png", latency_bars, (6.4, 5.0)))

# %%
# Each bar is a mask's median latency, LAB's profiled share on top; the whiskers are the spread of the timed
# runs.  Look at how LAB's share changes from one stage to another (map area × channels) and compare every
# difference with the whiskers before believing it.  The size grows with the *channel count* instead (LAB has
# :math:`20C + 1` parameters), so a LAB in the last stage adds the most bytes.  On other hardware the balance
# differs — the LAB paper reports a much larger relative cost on a Jetson board with Larq Compute Engine —
# which is why the run prints the CPU next to its numbers.  ``python -m minilab.bench model --arch labbnn
# --plot f.png`` draws the full per-operator breakdown.

# %%
# What LAB buys, stage by stage
# -----------------------------
# Latency is one half of the paper's Table 9; the other is accuracy.  LAB-BNN was trained on the real Imagenette
# split once per mask — 64 px, width 0.5, 30 epochs, batch 32 (``tools/table9.sh``; a second seed for ``0000``,
# ``0111`` and ``1111`` to show how much two runs of one mask differ) — and the metrics of every run are kept in
# ``docs/table9/``, with the packed models' latencies measured in one sitting.  ``python -m minilab.plot
# --placement docs/table9`` prints the table and draws accuracy against latency, the Pareto front dashed, beside
# the paper's ImageNet points.  Look for which masks sit on the front, and compare each gap with the distance
# between the two seeds of one mask before reading it as LAB's doing.
table9 = os.path.join(HERE, "..", "docs", "table9")
if os.path.isdir(table9):
    figure = os.path.relpath(f"{OUT}/08_where_lab_goes.png")   # the command prints the path it was given
    plot_cli(["--placement", os.path.relpath(table9), "--out", figure])
    shows(figure)

# %%
# What the runs say
# -----------------
# Put each mask on one scale: the share of LAB's gain it keeps, 0 for sign everywhere (``0000``) and 1 for LAB
# everywhere (``1111``), and set it beside the noise — the widest gap between two seeds of one mask.  A
# difference smaller than that gap is not evidence of anything.
if os.path.isdir(table9):
    from minilab.analysis.placement import spread
    from minilab.plot import read_placement

    placed = {row["mask"]: row for row in read_placement(table9)[0]}
    none, every = placed["0000"]["top1_mean"], placed["1111"]["top1_mean"]
    noise = max(spread(row)[1] - spread(row)[0] for row in placed.values())
    share = {mask: (row["top1_mean"] - none) / (every - none) for mask, row in placed.items()}
    paper_none, paper_every = placed["0000"]["paper"][0], placed["1111"]["paper"][0]   # the paper's ImageNet top-1
    print(f"LAB everywhere over sign everywhere: {every - none:+.2f} points of top-1; widest seed gap {noise:.2f}")
    for mask, row in placed.items():
        print(f"  {mask}: top-1 {row['top1_mean']:.2f} %  keeps {share[mask]:5.0%} of the gain"
              f"  (paper, ImageNet: {(row['paper'][0] - paper_none) / (paper_every - paper_none):5.0%})")
    assert every - none > 5 * noise                                    # LAB's gain is far above the noise
    assert abs(placed["0111"]["top1_mean"] - every) < noise               # the first stage's LAB: no measurable gain
    assert abs(placed["1110"]["top1_mean"] - every) < noise               # nor the last stage's, at 64 px
    assert 0.55 < share["0011"] < 0.9 and every - placed["0011"]["top1_mean"] > 2 * noise
    assert all(0.15 < share[m] < 0.5 for m in ("0001", "1000"))
    assert abs(placed["0001"]["top1_mean"] - placed["1000"]["top1_mean"]) < noise

# %%
# The middle stages carry LAB's gain.  Dropping the first stage's LAB (``0111``), the one with the largest maps
# and so the largest share of LAB's cost, keeps all of the gain within the noise — the paper's advice holds here
# too — and at 64 px the last stage's LAB can go as well (``1110``), where the paper loses a little.  Two middle
# stages (``0011``) keep about seven tenths; one stage alone, first or last, about a third, and those two
# cannot be told apart here although the paper ranks ``0001`` above ``1000``.  Why the last stage matters less
# here: at 64 px its maps are 2×2, so a 3×3 neighbourhood covers the whole map and LAB has no local context to
# threshold against (at the paper's 224 px they are 7×7).  And the whole gain, in points of top-1, is about
# twice the paper's: with ten classes and under ten thousand training images, what a binary network loses at
# each sign hurts more, and a better binarizer wins back more.

# %%
# Exercises
# ---------
# 1. **Predict, then run.**  How many LAB parameters does ``lab_blocks='0001'`` add to Bi-RealNet-18 (four
#    LABs over 256 or 512 input channels)?  Count them with ``num_parameters``.
# 2. **Predict, then run.**  Which stage's LAB handles the most pixel-channel pairs at 224 px: compute
#    :math:`H \cdot W \cdot C` for the input of each stage's binary convs.
# 3. **Threads.**  Convert with ``threads=2`` (``convert(model, config, threads=2)``) and time the ``1111``
#    model again: which part speeds up?
# 4. **INT8 LAB kernels.**  Add ``lab_bits=8`` to the config: does the file get smaller?  (Tutorial 09 asks
#    what that does to the outputs.)
#
# Answers
# -------
# **1.**  The first block of stage 4 binarizes 256 channels, the other three 512:
# :math:`(20\cdot 256 + 1) + 3\,(20\cdot 512 + 1) = 35\,844`.
with_lab = create_model("birealnet18", num_classes=1000, binarizer="lab", lab_blocks="0001").num_parameters()
without = create_model("birealnet18", num_classes=1000, binarizer="lab", lab_blocks="0000").num_parameters()
assert with_lab - without == (20 * 256 + 1) + 3 * (20 * 512 + 1)
print("1.", with_lab - without, "LAB parameters")

# %%
# **2.**  Per binary-conv input: the map of the stage's input (the first block of a stage still sees the
# previous, larger map) times its channels.  Stage 1: :math:`56^2 \cdot 64 = 200\,704` for each of its four
# convs; later stages halve that (a quarter of the area, twice the channels).
cost = {}
for stage, (hw, c) in enumerate([(56, 64), (28, 128), (14, 256), (7, 512)]):
    cost[stage + 1] = hw * hw * c
print("2. pixel-channel pairs per stage (one conv, after its first block):", cost)
assert max(cost, key=cost.get) == 1

# %%
# **3.**  Answered by running it (the parts that the engine splits over threads — the GEMMs and the packing —
# speed up; a two-core machine shared with other work may show little):
config = dict(arch="birealnet18", num_classes=1000, image_size=size, binarizer="lab", lab_blocks="1111")
two = convert(create_model(**config), config, threads=2)
print(f"3. 1111 on 2 threads: {time_runs(lambda: two(x), runs=3 if SMOKE else 15)['median_ms']:.2f} ms "
      f"(1 thread: {rows['1111'][0]:.2f} ms)")

# %%
# **4.**
config8 = dict(config, lab_bits=8)
with tempfile.TemporaryDirectory() as d:
    mb8 = save_packed(convert(create_model(**config8), config8), os.path.join(d, "m.npz")) / 1e6
print(f"4. 1111 with INT8 LAB kernels: {mb8:.3f} MB (float kernels: {sizes['1111']:.3f} MB)")
