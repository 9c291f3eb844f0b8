# %% [markdown]
# # 08 — Scaling to ImageNet: data layout, the cache, what an epoch costs on CPU, and what to change next
#
# **What you learn:** how minilab's data path scales (one decode per image into a memory-mapped uint8 cache),
# what one epoch of Bi-Real / LAB-BNN at 224 px costs on this CPU — measured, then extrapolated honestly — and
# where a data-parallel version plugs in.
#
# **Layout.**  ImageNet as an image folder: `root/train/<wnid>/*.JPEG`, `root/val/<wnid>/*.JPEG` (the validation
# images sorted into class folders).  `python -m minilab.train --data root ...` builds the cache once:
# N × S × S × 3 bytes per split — at S = 224 that is 1,281,167 × 150,528 B ≈ 193 GB for ImageNet's train split
# (at 112 px: 48 GB; at 64 px: 16 GB).  Plan the disk for it, or train at lower resolution first.

# %%
import numpy as np
from common import SMOKE, Timer, machine

import minilab as ml
from minilab import F
from minilab.models import create_model
from minilab.optim import Adam
from minilab.threads import set_threads

set_threads(2)
size, batch = (32, 8) if SMOKE else (224, 32)
for arch in ("birealnet18", "labbnn"):
    model = create_model(arch, num_classes=1000, image_size=size)
    opt = Adam(model.parameters())
    x = ml.tensor(np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32))
    y = np.random.default_rng(1).integers(0, 1000, batch)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    with Timer() as t:
        for _ in range(1 if SMOKE else 3):
            step()
    ips = batch * (1 if SMOKE else 3) / t.seconds
    hours = 1_281_167 / ips / 3600
    print(f"{arch:12s} {size}px batch {batch}: {ips:.1f} img/s -> one ImageNet epoch ≈ {hours:.1f} h, "
          f"100 epochs ≈ {100 * hours / 24:.0f} days on {machine()}")

# %% [markdown]
# Measured by this script (x86_64, 2 cores, 224 px, batch 32, full width, about 30 s in all): Bi-RealNet-18
# 13.7 img/s, LAB-BNN 11.1 img/s for forward + backward + Adam — one ImageNet epoch ≈ 26–32 hours, 100 epochs
# ≈ 110–130 days.  (Before the chunked conv and fused training kernels it was 9 img/s, ≈ 40 hours an epoch.)
#
# That is the honest answer: a 2-core CPU trains Imagenette-scale problems (the README's 30-epoch runs take about
# an hour), but ImageNet at 224 px needs many machines.  What to change when one machine is not enough:
#
# 1. **Data-parallel training over MPI** (mpi4py): every rank runs `minilab.train.train_step` on its shard; between
#    `loss.backward()` and `optimizer.step()` an all-reduce averages the gradients — `train_step` is the one
#    function to change.  The shard is `Loader`'s permutation `epoch_order(n, seed, epoch)` sliced by rank, so every
#    rank agrees on the order without talking.  Only rank 0 calls `save_checkpoint` and writes `metrics.jsonl`.
#    BatchNorm statistics stay per rank, as in the released code (MirroredStrategy did not synchronise them).
# 2. **Lower resolution first:** 112 or 128 px costs ~3–4× less per image; fine-tune at 224 px at the end.
# 3. **Cache on a fast local disk** per machine (the memory-mapped cache is read sequentially per batch).
#
# ## Exercises
# 1. Estimate the cache size and one epoch's time for ImageNet at 128 px from the numbers above.
# 2. Sketch the 10 lines of `train_step` with an `MPI.COMM_WORLD.Allreduce` over every parameter's gradient.
