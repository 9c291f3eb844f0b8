"""
10 — Scaling out: ImageNet arithmetic, data-parallel training over MPI, SyncBN
==============================================================================

**What you will learn:** why a 224 px ImageNet is streamed rather than cached (the arithmetic), what one epoch
of Bi-RealNet-18 costs on this CPU (measured, then extrapolated), how ``mpiexec -n N python -m minilab.train``
splits every batch over N processes and keeps them in lock-step, why BatchNorm then needs synchronising
(SyncBN), and what N machines would buy, from a stated model of the network.

**What you need:** tutorial 07 (the training loop and the command-line tool).
"""

# %%
# Layouts, and the arithmetic of caching
# --------------------------------------
# ImageNet as distributed: ``root/train/<wnid>/*.JPEG`` (1,281,167 images in 1000 class folders) and
# ``root/val/`` either sorted into class folders or flat (50,000 images) with a labels file — Kaggle's
# ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the wnid first) or a plain ``filename wnid`` list.
# Classes are the sorted wnids, so label 0 is ``n01440764`` (tench) in every layout; Imagenette keeps ImageNet's
# names.
#
# The preprocessing cache of tutorial 07 stores :math:`N \cdot S^2 \cdot 3` bytes per split.  ``--input
# stream`` (the default from 160 px up) decodes each JPEG when its batch is prepared instead: Pillow's
# ``draft`` lets the JPEG decoder scale by ½, ¼ or ⅛ while decoding, the random-resized crop and flip happen at
# decode time, and each process decodes only its own images.  The run builds a small tree in ImageNet's layout
# and measures how fast one worker decodes.
import json
import os
import shutil
import subprocess
import sys

from common import OUT, SMOKE, Timer, machine, np, shows

import minilab as ml
from minilab import F
from minilab.analysis import plotting
from minilab.data.imagenet import scan_imagenet, write_sample_tree
from minilab.models import create_model
from minilab.optim import Adam
from minilab.benchmarks.scaling import decode_rates, projection, print_projection
from minilab.core.threads import set_threads

IMAGENET_TRAIN = 1_281_167
for s in (64, 160, 224):
    print(f"cache of ImageNet's train split at {s} px: {IMAGENET_TRAIN * s * s * 3 / 1e9:.0f} GB")
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
# Forward, backward and Adam for a batch at 224 px on this machine's cores (in smoke mode at 32 px, so the
# numbers are only a smoke test), then the arithmetic for a whole ImageNet epoch.
threads = min(2, os.cpu_count() or 1)
set_threads(threads)
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
steps = 1 if SMOKE else 3
with Timer() as t:
    for _ in range(steps):
        step()
seconds_per_image = t.seconds / (batch * steps)
hours = IMAGENET_TRAIN * seconds_per_image / 3600
gradient_bytes = sum(p.data.nbytes for p in model.parameters())
print(f"birealnet18 {size}px batch {batch}, {threads} threads: {1 / seconds_per_image:.1f} img/s -> one ImageNet "
      f"epoch ≈ {hours:.1f} h, 100 epochs ≈ {100 * hours / 24:.0f} days on {machine()}")
print(f"decoding takes {100 / rates[('rrc', 224)] / seconds_per_image:.1f} % of a worker's time per trained image")

# %%
# Compare the epoch time with the hours a student can wait: an Imagenette-sized problem fits one machine, an
# ImageNet-sized one needs several.
#
# Data-parallel training over MPI
# -------------------------------
# ``mpiexec -n N python -m minilab.train ...`` starts N processes ("ranks").  ``--batch-size`` stays the
# *global* batch :math:`B` and each rank takes :math:`B/N` of every batch.  The epoch's order is a function of
# (seed, epoch) and each image's augmentation of (seed, epoch, batch, place in the batch), so the ranks together
# see exactly the batches one process would.  Rank 0's initial weights are broadcast; in every step each rank's
# gradients go into a few contiguous float32 buckets that are summed across ranks (``Iallreduce``, started for
# the last layers' bucket while the backward is still busy with the first layers), so every rank takes the same
# Adam step and the weights never need sending again.  Rank 0 alone prints and writes ``metrics.jsonl`` and the
# checkpoint; validation is split across the ranks and summed.  Here: 2 ranks on this machine, streaming the
# sample tree.
launcher = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401  (only to say whether the 2-rank run can happen)
    have_mpi = launcher is not None
except ImportError:
    have_mpi = False
run_dir = os.path.relpath(os.path.join(OUT, "mpi-run"))   # beside the sample tree; afresh on each run
shutil.rmtree(run_dir, ignore_errors=True)
cmd = [launcher or "mpiexec", "-n", "2", sys.executable, "-m", "minilab.train", "--data", os.path.relpath(root),
       "--input", "stream",
       "--arch", "birealnet18", "--image-size", "32" if SMOKE else "64", "--width", "0.25" if SMOKE else "0.5",
       "--batch-size", "8", "--epochs", "1" if SMOKE else "3", "--threads", "1", "--no-progress", "--sync-bn",
       "--check-replicas", "--out", run_dir]
if have_mpi:
    print("$", " ".join(["mpiexec", "-n", "2", "python"] + cmd[4:]))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    print(done.stdout.strip())
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        print("metrics.jsonl rows (written by rank 0 only):", len(f.readlines()))
else:
    print("mpi4py or mpiexec is not installed (pip install -e \".[mpi]\"): the 2-rank run is skipped")

# %%
# SyncBN: one BatchNorm over all ranks
# ------------------------------------
# BatchNorm normalises with the mean and variance *of the batch*.  Split over N ranks, each rank sees only
# :math:`B/N` images, and plain BatchNorm would normalise every rank's share with its own, noisier statistics —
# a different computation from one process's.  ``--sync-bn`` (``SyncBatchNorm2d``) sums three numbers per
# channel across the ranks — the count :math:`n_r`, :math:`\sum x` and :math:`\sum x^2` — so that every rank
# normalises with the statistics of the whole batch:
#
# .. math::
#
#    \mu = \frac{\sum_r \sum x}{\sum_r n_r}, \qquad
#    \sigma^2 = \frac{\sum_r \sum x^2}{\sum_r n_r} - \mu^2 .
#
# The run checks the identity for a batch split in two, and shows how far the halves' own statistics are off:
features = np.random.default_rng(2).standard_normal((16, 4, 5, 5)) * 2 + 1
halves = np.split(features, 2)
n = sum(h.shape[0] * h.shape[2] * h.shape[3] for h in halves)
mean = sum(h.sum(axis=(0, 2, 3)) for h in halves) / n
var = sum((h ** 2).sum(axis=(0, 2, 3)) for h in halves) / n - mean ** 2
assert np.allclose(mean, features.mean(axis=(0, 2, 3))) and np.allclose(var, features.var(axis=(0, 2, 3)))
for r, h in enumerate(halves):
    print(f"rank {r} alone: channel means {np.round(h.mean(axis=(0, 2, 3)), 3)}")
print(f"synchronised:  channel means {np.round(mean, 3)} (= the whole batch's)")

# %%
# What 2 ranks cost on this machine
# ---------------------------------
# ``python -m minilab.bench scaling`` times one process with 2 threads and 2 ranks with 1 thread each at the same
# global batch, in one sitting: compute, the wait for the gradient sums that the backward did not hide, the
# optimizer step (every rank repeats it), and a blocking allreduce of the same bytes.  (Smoke mode: a tiny model.)
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
# What N machines would buy — a model, not a measurement
# -------------------------------------------------------
# A ring allreduce of :math:`S` bytes over :math:`N` nodes sends and receives :math:`2\frac{N-1}{N} S` bytes per
# node, so it takes about
#
# .. math::
#
#    t_\mathrm{allreduce} \approx 2\,\frac{N-1}{N}\,\frac{S}{\text{bandwidth}} + 2 (N - 1)\,\text{latency} .
#
# With the 224 px compute measured above, a local batch of 32 per node and Bi-RealNet-18's gradients:
compute_224 = seconds_per_image * 32
table = projection(compute_224, 32, gradient_bytes, hidden, nodes=(1, 2, 4, 8, 16, 64, 256, 1024))
print_projection(table, compute_224, 32, gradient_bytes, hidden)
row16 = next(row for row in table if row["nodes"] == 16)
sixteen = row16["10G"]["images_per_s"]
share = row16["10G"]["allreduce_ms"] / 1e3 / compute_224
print(f"\n16 nodes at 10 Gbit/s: the allreduce of {gradient_bytes / 1e6:.0f} MB is {100 * share:.1f} % of a step's "
      f"compute; one ImageNet epoch ≈ {IMAGENET_TRAIN / sixteen / 3600:.1f} h, 100 epochs ≈ "
      f"{100 * IMAGENET_TRAIN / sixteen / 86400:.1f} days (each node like this one)")



def scaling_figure(fig):
    ax = fig.add_subplot()
    nodes = [row["nodes"] for row in table]
    ax.axhline(1.0, ls=":", color="black", label="ideal: N nodes are N times one node")
    for colour, net in zip(plotting.COLOURS, ("10G", "100G")):
        ax.plot(nodes, [row[net]["efficiency"] for row in table], "o-", color=colour,
                label=f"{net.rstrip('G')} Gbit/s ring allreduce")
    ax.set(xscale="log", xlabel="nodes", ylabel="parallel efficiency (projected)", ylim=(0, 1.05), xticks=nodes,
           xticklabels=[str(n) for n in nodes],
           title=f"Bi-RealNet-18, 32 images per node per step, compute measured at {size} px\n{plotting.cpu_name()}")
    plotting.legend_below(ax)


shows(plotting.draw(f"{OUT}/10_projected_scaling.png", scaling_figure, (6.4, 5.0)))

# %%
# The projected parallel efficiency — throughput of N nodes divided by N times one node's — against the ideal
# (dotted).  As long as the allreduce is a small share of the compute, N nodes are nearly N times faster; the CPU time
# per image dominates.  Every node must see the data (a shared filesystem, or a copy on each); only rank 0 writes
# the run directory.
#
# Exercises
# ---------
# 1. **Predict, then run.**  As :math:`N` grows, what does the data each node sends in a ring allreduce tend to?
#    Check :math:`2(N-1)/N \cdot S` for :math:`N = 1000`.
# 2. From the model, at what :math:`N` would the 10 Gbit/s allreduce (bandwidth and latency terms) take as long
#    as one 224 px step of 32 images measured above?
# 3. How large is a cache of ImageNet's train split at 128 px?  Would it fit in this machine's memory?
# 4. **Predict, then run.**  Split a batch over 4 ranks instead of 2: do the synchronised statistics change?
#    ``assert`` it.
#
# Optional project (minutes): train ``--data synthetic --max-steps 1 --optimizer sgd`` once as one process and
# once under ``mpiexec -n 2`` with and without ``--sync-bn``, and compare the checkpoints' weights: which run
# matches the single process, and why does the other differ?
#
# Answers
# -------
# **1.**  :math:`2S`: every node sends almost twice the gradient size, however many nodes there are — which is
# why the ring allreduce scales.
S = gradient_bytes
assert abs(2 * 999 / 1000 * S - 2 * S) < 0.01 * S
print(f"1. N = 1000: {2 * 999 / 1000 * S / 1e6:.1f} MB per node for S = {S / 1e6:.1f} MB")

# %%
# **2.**  The latency term grows with :math:`N`; the bandwidth term stays near :math:`2S/\text{bandwidth}`.  A
# search over :math:`N`:
from minilab.benchmarks.scaling import ring_allreduce_s  # noqa: E402

N = 2
while ring_allreduce_s(S, N, 10e9) < compute_224 and N < 10 ** 7:
    N *= 2
print(f"2. the allreduce reaches one step's compute ({compute_224:.2f} s) between N = {N // 2} and N = {N}")

# %%
# **3.**
gigabytes = IMAGENET_TRAIN * 128 * 128 * 3 / 1e9
memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
print(f"3. {gigabytes:.0f} GB at 128 px; this machine has {memory:.0f} GB of memory")

# %%
# **4.**  No: the sums do not depend on how the batch is split.
quarters = np.split(features, 4)
mean4 = sum(q.sum(axis=(0, 2, 3)) for q in quarters) / n
assert np.allclose(mean4, mean)
print("4. four ranks, same synchronised means:", np.round(mean4, 3))
