r"""
06 — Where to apply LAB: the `lab_blocks` trade-off and what LAB costs at inference
===================================================================================

**What you learn:** how the packed engine runs a BNN (bit-packed weights, binarize-and-pack, XNOR-popcount
GEMM with BatchNorm folded into its output transform), and the latency each LAB placement costs — the latency
half of the paper's Table 9 (the accuracy half needs one training run per mask: `--lab-blocks`).
"""

# %%
import os
import tempfile

import numpy as np
from common import OUT, SMOKE, machine, shows

from minilab import plotting
from minilab.engine import convert, save_packed
from minilab.engine.profile import breakdown, time_runs
from minilab.models import create_model

size = 64 if SMOKE else 224
masks = ["0000", "1111"] if SMOKE else ["0000", "1000", "0100", "0010", "0001", "1111"]
x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
print(f"Bi-RealNet-18 (1000 classes) at {size} px, batch 1, 1 thread, {machine()}")
print(f"{'lab_blocks':>10s} {'latency ms':>11s} {'LAB part ms':>12s} {'size MB':>8s}")
rows = {}
for mask in masks:
    config = dict(arch="birealnet18", num_classes=1000, image_size=size, binarizer="lab", lab_blocks=mask)
    packed = convert(create_model(**config), config)
    t = time_runs(lambda: packed(x), runs=3 if SMOKE else 15)
    parts, _ = breakdown(packed, x, runs=2 if SMOKE else 5)
    with tempfile.TemporaryDirectory() as d:
        mb = save_packed(packed, os.path.join(d, "m.npz")) / 1e6
    lab_ms = parts['LAB binarize + pack']
    rows[mask] = (t["median_ms"], lab_ms, t["p10_ms"], t["p90_ms"])
    print(f"{mask:>10s} {t['median_ms']:11.2f} {lab_ms:12.2f} {mb:8.3f}")


def latency_bars(fig):
    ax = fig.add_subplot()
    masks = list(rows)
    median = np.array([rows[m][0] for m in masks])
    lab = np.array([min(rows[m][1], rows[m][0]) for m in masks])
    spread = np.array([[rows[m][0] - rows[m][2], rows[m][3] - rows[m][0]] for m in masks]).T
    ax.bar(masks, median - lab, color=plotting.COLOURS[0], label="everything else")
    ax.bar(masks, lab, bottom=median - lab, color=plotting.COLOURS[1], label="LAB (fused depthwise, comparison and packing)")
    ax.errorbar(masks, median, yerr=spread, fmt="none", ecolor="black", capsize=4, lw=1,
                label="10th–90th percentile of the runs")
    ax.set(xlabel="lab_blocks (LAB on / off per stage)", ylabel="latency per image (ms)",
           title=f"Bi-RealNet-18 packed engine, {size} px, batch 1, 1 thread\n{plotting.cpu_name()}")
    plotting.legend_below(ax)


shows(plotting.draw(f"{OUT}/06_lab_blocks_latency.png", latency_bars, (6.4, 5.0)))

# %%
# The figure stacks each mask's median latency: LAB's share on top (profiled runs), everything else below, with
# the spread of the timed runs as whiskers.  Look at how little the LAB part grows from one stage to all four,
# and compare it with the whiskers: differences smaller than them are noise.
#
# Measured by this script (x86_64, 2 cores, AVX-512 build, one thread, 3.5 s in all):
#
# .. list-table::
#    :header-rows: 1
#
#    * - lab_blocks
#      - latency ms
#      - LAB part ms
#      - size MB
#    * - 0000
#      - 6.80
#      - 0.00
#      - 4.280
#    * - 1000
#      - 6.97
#      - 0.41
#      - 4.305
#    * - 0100
#      - 6.86
#      - 0.24
#      - 4.320
#    * - 0010
#      - 6.79
#      - 0.14
#      - 4.356
#    * - 0001
#      - 6.44
#      - 0.09
#      - 4.428
#    * - 1111
#      - 7.16
#      - 0.84
#      - 4.567
#
#
# The engine runs a LAB layer as one fused kernel: for 16 pixels at a time it computes each channel's two 3×3
# depthwise responses, compares their difference with β's sign and ORs the bit into the packed words, so no
# float map is ever written.  Its cost is proportional to the map area times the channels, so the first stage
# (56×56) costs most and all four 0.84 ms; part of it replaces the sign-and-pack pass it takes the place of,
# which is why 1111 is only ~0.4 ms (5 %) slower than 0000 here.  Differences below ~0.3 ms between
# single stages are within run-to-run noise.  The size grows with the channel count instead (LAB: 20·C + 1
# parameters), so 0001 is the largest single stage.  The paper's Table 9 (Jetson, LCE) shows LAB costing far
# more (54.6 → 83.7 ms for 0000 → 1111).  `python -m minilab.bench model --arch labbnn --plot f.png`
# draws the full per-operator breakdown (Fig. 6).
#
# Exercises
# ---------
# 1. Store LAB's kernels in INT8 (`lab_bits=8` in the config): does the latency change?  The file size?
# 2. Use `threads=2` in `convert(...)`: which operators speed up?
