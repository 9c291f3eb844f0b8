r"""
08 — Scaling to ImageNet: streaming input, data-parallel training over MPI, and what a cluster buys
===================================================================================================

**What you learn:** ImageNet's folder layouts and why a 224 px ImageNet is streamed rather than cached; what
one epoch of Bi-RealNet-18 costs on this CPU (measured, then extrapolated honestly); how `mpiexec -n N python
-m minilab.train` splits every global batch over N processes and keeps them in lock-step; and what N machines
would buy, from a stated model of the network.

**Layouts.**  ImageNet as distributed: `root/train/<wnid>/*.JPEG` (1,281,167 images, 1000 class folders) and
`root/val/` either sorted into class folders or flat (50,000 images) with a labels file — Kaggle's
`LOC_val_solution.csv` (`ImageId,PredictionString`, the wnid first) or a plain `filename wnid` list.  Classes are
the sorted wnids, so label 0 is `n01440764` (tench) in every layout, and Imagenette keeps ImageNet's names.

**Cache or stream.**  The preprocessing cache stores N × S × S × 3 bytes per split: at S = 224 that is
1,281,167 × 150,528 B ≈ 193 GB for ImageNet's train split.  `--input stream` (the default from 160 px up)
decodes each JPEG when its batch is prepared instead: Pillow's `draft` lets the JPEG decoder scale by ½, ¼ or ⅛
while decoding, the random-resized crop and flip happen at decode time, and each rank decodes only its images.
"""

# %%
import json
import os
import shutil
import subprocess
import sys

from common import OUT, SMOKE, Timer, machine, np

import minilab as ml
from minilab import F
from minilab.data.imagenet import scan_imagenet, write_sample_tree
from minilab.models import create_model
from minilab.optim import Adam
from minilab.scaling import decode_rates, projection, print_projection
from minilab.threads import set_threads

root = write_sample_tree(os.path.join(OUT, "imagenet-sample"), classes=("n02102040", "n01440764", "n03000684"),
                         per_class=4 if SMOKE else 16, val_per_class=2 if SMOKE else 4, val_layout="csv")
train_paths, train_labels, val_paths, val_labels, classes = scan_imagenet(root)
print(f"sample tree: {len(train_paths)} train JPEGs (500×375, quality 90), {len(val_paths)} flat val JPEGs "
      f"labelled by LOC_val_solution.csv; classes {classes}")
rates = decode_rates(count=8 if SMOKE else 48, sizes=(224,), seconds=0.5 if SMOKE else 4)
print(f"decode, one worker: {rates[('rrc', 224)]:.0f} img/s for training crops, {rates[('none', 224)]:.0f} img/s "
      f"for validation at 224 px")

# %%
# One machine: what an epoch costs
# --------------------------------
# Forward + backward + Adam for a batch at 224 px on this machine's two cores (in smoke mode: 32 px, so the
# numbers below are only a smoke test).

# %%
set_threads(2)
size, batch = (32, 8) if SMOKE else (224, 32)
model = create_model("birealnet18", num_classes=1000, image_size=size)
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
seconds_per_image = t.seconds / (batch * (1 if SMOKE else 3))
hours = 1_281_167 * seconds_per_image / 3600
gradient_bytes = sum(p.data.nbytes for p in model.parameters())
print(f"birealnet18 {size}px batch {batch}: {1 / seconds_per_image:.1f} img/s -> one ImageNet epoch ≈ {hours:.1f} h, "
      f"100 epochs ≈ {100 * hours / 24:.0f} days on {machine()}")
print(f"decoding costs {100 / rates[('rrc', 224)] / seconds_per_image:.1f} % of a worker's time per trained image: "
      f"the loader is not the bottleneck")

# %%
# A 2-core CPU trains Imagenette-scale problems (the 30-epoch runs take about an hour), but ImageNet at 224 px
# takes more than a day per epoch.  That needs more machines.
#
# Data-parallel training over MPI
# -------------------------------
# `mpiexec -n N python -m minilab.train ...` starts N processes ("ranks"); `--batch-size` stays the *global*
# batch B and each rank takes B/N of every batch.  The epoch's order is a function of (seed, epoch) and each
# image's augmentation of (seed, epoch, batch, place in the batch), so the ranks together see exactly the batches
# one process would.  Rank 0's initial weights are broadcast; in every step each rank's gradients go into a few
# contiguous float32 buckets, summed across ranks (`Iallreduce`, started for the last layers' bucket while the
# backward is still busy with the first layers), so every rank takes the same Adam step and the weights never
# need sending again.  Rank 0 alone prints, writes `metrics.jsonl` and the checkpoint; validation is split
# across the ranks and summed.  BatchNorm normalises over each rank's B/N images unless `--sync-bn` sums the
# statistics across ranks.  Here: 2 ranks on this machine, streaming the sample tree.

# %%
launcher = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401  (only to say whether the 2-rank run can happen)
    have_mpi = launcher is not None
except ImportError:
    have_mpi = False
run_dir = os.path.join(OUT, "mpi-run")   # next to the sample tree; a fresh run each time the tutorial runs
shutil.rmtree(run_dir, ignore_errors=True)
cmd = [launcher or "mpiexec", "-n", "2", sys.executable, "-m", "minilab.train", "--data", root, "--input", "stream",
       "--arch", "birealnet18", "--image-size", "32" if SMOKE else "64", "--width", "0.25" if SMOKE else "0.5",
       "--batch-size", "8", "--epochs", "1" if SMOKE else "3", "--threads", "1", "--no-progress", "--sync-bn",
       "--check-replicas", "--out", run_dir]
if have_mpi:
    print("$", " ".join(cmd[:1] + ["-n", "2", "python"] + cmd[4:]))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    print(done.stdout.strip())
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        print("metrics.jsonl rows (written by rank 0 only):", len(f.readlines()))
else:
    print("mpi4py or mpiexec is not installed (pip install -e \".[mpi]\"): the 2-rank run is skipped")

# %%
# What 2 ranks cost on this machine, and what N machines would buy
# ----------------------------------------------------------------
# `python -m minilab.bench scaling` times one process with 2 threads and 2 ranks with 1 thread each at the same
# global batch, in one sitting: compute, the wait for the gradient sums that the backward did not hide, the
# optimizer step (every rank repeats it), and a blocking allreduce of the same bytes.  (Smoke mode: a tiny model.)

# %%
bench = [sys.executable, "-m", "minilab.bench", "scaling", "--json", "--steps", "1" if SMOKE else "3"]
bench += ["--image-size", "32", "--width", "0.25"] if SMOKE else []
if not have_mpi:
    bench += ["--ranks", "1"]
result = json.loads(subprocess.run(bench, capture_output=True, text=True, timeout=1800, check=True).stdout)
for row in result["rows"]:
    print(f"{row['ranks']} rank(s) × {row['threads']} thread(s): {row['images_per_s']:.1f} img/s, step "
          f"{1e3 * row['step_s']:.0f} ms (compute {1e3 * row['compute_s']:.0f}, waiting for gradients "
          f"{1e3 * row['wait_s']:.1f}, allreduce alone {1e3 * row['allreduce_s']:.1f} ms)")
hidden = result["rows"][-1]["hidden"]

# %%
# **Projection — a model, not a measurement.**  A ring allreduce of S bytes over N nodes moves 2(N−1)/N · S bytes
# per node: ≈ 2(N−1)/N · S / bandwidth + 2(N−1) · latency.  With the 224 px compute measured above, a local
# batch of 32 per node and Bi-RealNet-18's gradients:

# %%
compute_224 = seconds_per_image * 32
table = projection(compute_224, 32, gradient_bytes, hidden, nodes=(1, 2, 4, 8, 16))
print_projection(table, compute_224, 32, gradient_bytes, hidden)
sixteen = table[-1]["10G"]["images_per_s"]
print(f"\n16 nodes at 10 Gbit/s: one ImageNet epoch ≈ {1_281_167 / sixteen / 3600:.1f} h, 100 epochs ≈ "
      f"{100 * 1_281_167 / sixteen / 86400:.1f} days (each node like this one: 2 cores)")

# %%
# The allreduce of ~47 MB costs ~75 ms at 10 Gbit/s against seconds of compute per step at 224 px, so the
# network stays a small share until N is large — the CPU time per image is what dominates.  Every node must see
# the data (a shared filesystem, or a copy on each); only rank 0 writes the run directory.
#
# Exercises
# ---------
# 1. From the projection's formula, at what N does the 10 Gbit/s allreduce cost as much as a 224 px step?
# 2. Train `--data synthetic --max-steps 1 --optimizer sgd` once as one process and once under `mpiexec -n 2`
#    with and without `--sync-bn`, and compare the checkpoints' weights: which run matches the single process,
#    and why does the other one differ (hint: over how many images does each BatchNorm compute its mean)?
# 3. Estimate one epoch at 128 px on 16 nodes (compute scales roughly with the number of pixels).
