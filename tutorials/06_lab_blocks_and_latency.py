# %% [markdown]
# # 06 — Where to apply LAB: the `lab_blocks` trade-off and what LAB costs at inference
#
# **What you learn:** how the packed engine runs a BNN (bit-packed weights, binarize-and-pack, XNOR-popcount
# GEMM with BatchNorm folded into its output transform), and the latency each LAB placement costs — the latency
# half of the paper's Table 9 (the accuracy half needs one training run per mask: `--lab-blocks`).

# %%
import copy
import os
import tempfile

import numpy as np
from common import SMOKE, machine

from minilab.engine import convert, save_packed
from minilab.engine.profile import breakdown, time_runs
from minilab.models import create_model

size = 64 if SMOKE else 224
masks = ["0000", "1111"] if SMOKE else ["0000", "1000", "0100", "0010", "0001", "1111"]
x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
print(f"Bi-RealNet-18 (1000 classes) at {size} px, batch 1, 1 thread, {machine()}")
print(f"{'lab_blocks':>10s} {'latency ms':>11s} {'LAB part ms':>12s} {'size MB':>8s}")
for mask in masks:
    config = dict(arch="birealnet18", num_classes=1000, image_size=size, binarizer="lab", lab_blocks=mask)
    packed = convert(create_model(**config), config)
    t = time_runs(lambda: packed(x), runs=3 if SMOKE else 15)
    parts, _ = breakdown(packed, x, runs=2 if SMOKE else 5)
    with tempfile.TemporaryDirectory() as d:
        mb = save_packed(packed, os.path.join(d, "m.npz")) / 1e6
    print(f"{mask:>10s} {t['median_ms']:11.2f} {parts['LAB depthwise'] + parts['LAB argmax + pack']:12.2f} {mb:8.3f}")

# %% [markdown]
# Measured by this script (x86_64, 2 cores, AVX-512 build, one thread): MEASURED_06
#
# LAB's cost is its float depthwise conv, proportional to the map area it runs on, so LAB in the first stage
# (56×56) costs the most and in the last (7×7) almost nothing — the paper's Table 9 finds the same shape
# (0001 cheapest, 1111 dearest) on a Jetson board.  `python -m minilab.bench model --arch labbnn --plot f.png`
# draws the full per-operator breakdown (Fig. 6).
#
# ## Exercises
# 1. Store LAB's kernels in INT8 (`lab_bits=8` in the config): does the latency change?  The file size?
# 2. Use `threads=2` in `convert(...)`: which operators speed up?
