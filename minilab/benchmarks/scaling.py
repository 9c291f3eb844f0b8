"""`python -m minilab.bench scaling` and `python -m minilab.bench decode`: what data-parallel training costs.

scaling  Run under `mpiexec -n N` it times this world's training steps at a fixed global batch: compute (forward +
         backward, including the gradient copies into the buckets), the wait for the gradient sums that the
         backward did not hide, the optimizer step, and a blocking Allreduce of the same bytes on its own; hidden
         fraction = 1 − wait / blocking allreduce.  Run as a plain process it measures 1 process × T threads, then
         starts `mpiexec -n 2` × 1 thread itself, so both configurations are timed in one sitting, and prints
         their ratio.  Then a *projection* to N nodes from a stated model:
             ring allreduce of S bytes ≈ 2(N−1)/N · S / bandwidth + 2(N−1) · latency,
             step(N) = compute + (1 − hidden) · allreduce(N),   images/s = N · (images per node) / step(N).
decode   images/s per loader worker for ImageNet-sized JPEGs (500×375, quality 90, written by
         minilab.data.imagenet.write_sample_tree): the streaming loader's training and validation decodes."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from ..distributed.measure import measure_world

from ..core.validate import CORES, IMAGE_SIZES, MAX_BATCH, MAX_WIDTH, WIDTH, float_range, int_range, strict_json

LATENCY_S = 20e-6   # per ring hop on a cluster network (Ethernet with a kernel TCP stack: tens of µs)


def ring_allreduce_s(nbytes, nodes, bits_per_s, latency_s=LATENCY_S):
    """The ring model: 2(N−1)/N · S / bandwidth + 2(N−1) · latency."""
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes * 8 / bits_per_s + 2 * (nodes - 1) * latency_s


def projection(compute_s, images_per_node, nbytes, hidden, nodes=(1, 2, 4, 8, 16, 64), gbits=(10, 100)):
    """Rows of the projection table (see the module docstring): weak scaling, `images_per_node` per step."""
    rows = []
    for n in nodes:
        row = {"nodes": n}
        for g in gbits:
            ar = ring_allreduce_s(nbytes, n, g * 1e9)
            step = compute_s + (1 - hidden) * ar
            row[f"{g}G"] = {"allreduce_ms": 1e3 * ar, "images_per_s": n * images_per_node / step,
                            "efficiency": compute_s / step}
        rows.append(row)
    return rows


def print_rows(rows):
    print(f"{'ranks × threads':>15s} {'img/s':>7s} {'/rank':>6s} {'step ms':>8s} {'compute':>8s} {'wait':>6s} "
          f"{'update':>7s} {'allreduce':>9s} {'hidden':>6s}")
    for r in rows:
        print(f"{r['ranks']:>9d} × {r['threads']:<3d} {r['images_per_s']:7.1f} {r['images_per_s_per_rank']:6.1f} "
              f"{1e3 * r['step_s']:8.1f} {1e3 * r['compute_s']:8.1f} {1e3 * r['wait_s']:6.1f} "
              f"{1e3 * r['update_s']:7.1f} {1e3 * r['allreduce_s']:9.1f} {100 * r['hidden']:5.0f}%")


def print_projection(rows, compute_s, images_per_node, nbytes, hidden):
    print(f"\nPROJECTION (a model, not a measurement): every node computes {images_per_node} images in "
          f"{1e3 * compute_s:.0f} ms; ring allreduce of {nbytes / 1e6:.1f} MB at 10 and 100 Gbit/s, "
          f"{1e6 * LATENCY_S:.0f} µs per hop, {100 * hidden:.0f}% of it hidden behind the backward")
    print(f"{'nodes':>5s} {'10G allreduce ms':>16s} {'img/s':>8s} {'eff':>5s} {'100G allreduce ms':>17s} "
          f"{'img/s':>8s} {'eff':>5s}")
    for r in rows:
        a, b = r["10G"], r["100G"]
        print(f"{r['nodes']:5d} {a['allreduce_ms']:16.1f} {a['images_per_s']:8.1f} {a['efficiency']:5.2f} "
              f"{b['allreduce_ms']:17.1f} {b['images_per_s']:8.1f} {b['efficiency']:5.2f}")


def mpiexec_path():
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


def measure_ranks(args):
    """The row of `args.ranks` ranks × 1 thread, measured by an `mpiexec` this process starts (None without one)."""
    launcher = mpiexec_path()
    if launcher is None:
        return None
    cmd = [launcher, "-n", str(args.ranks), sys.executable, "-m", "minilab.bench", "scaling", "--worker",
           "--threads", "1", "--arch", args.arch, "--image-size", str(args.image_size), "--batch-size",
           str(args.batch_size), "--width", str(args.width), "--steps", str(args.steps)] + \
        (["--sync-bn"] if args.sync_bn else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the {args.ranks}-rank measurement failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_scaling(args):
    """The `scaling` command (see the module docstring).  With --rounds R, the two configurations alternate R
    times and the round with the median ratio is reported, so one busy minute does not decide the comparison."""
    world, row = measure_world(args)
    if row["ranks"] > 1 or args.worker:   # a rank of an mpiexec job: rank 0 reports the world's row
        if world.is_root:
            print(strict_json(row)) if args.json or args.worker else print_rows([row])
        return 0
    rounds = []
    for r in range(args.rounds if args.ranks > 1 else 1):
        one = row if r == 0 else measure_world(args)[1]
        many = measure_ranks(args) if args.ranks > 1 else None
        rounds.append((one, many))
        if many is None:
            break
    if rounds[0][1] is None and args.ranks > 1:
        print("(no mpiexec found: only the one-process row; install the mpi extra for the rest)")
    rounds.sort(key=lambda pair: 0 if pair[1] is None else pair[1]["images_per_s"] / pair[0]["images_per_s"])
    row, mpi = rounds[len(rounds) // 2]
    rows = [row] + ([mpi] if mpi else [])
    mpi = rows[-1]
    hidden = mpi["hidden"] if mpi["ranks"] > 1 else 0.0
    proj = projection(mpi["compute_s"] + mpi["update_s"], mpi["local_batch"], mpi["gradient_bytes"], hidden)
    ratios = [m["images_per_s"] / o["images_per_s"] for o, m in rounds if m is not None]
    if args.json:
        print(strict_json({"rows": rows, "ratios": ratios, "projection": proj}, indent=1))
        return 0
    print(f"{args.arch} at {args.image_size} px, width {args.width}, global batch {args.batch_size}, "
          f"{row['parameters'] / 1e6:.1f} M parameters ({row['gradient_bytes'] / 1e6:.1f} MB of float32 gradients)")
    print_rows(rows)
    if ratios:
        print(f"\n{mpi['ranks']} ranks × 1 thread / 1 process × {row['threads']} threads: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}× the images/s (round{'s' if len(ratios) > 1 else ''}; "
              f"the median round is shown)")
    print_projection(proj, mpi["compute_s"] + mpi["update_s"], mpi["local_batch"], mpi["gradient_bytes"], hidden)
    return 0


def decode_rates(count=48, sizes=(64, 128, 224), seconds=2.0, drafts=(True,)):
    """{(mode, S[, 'full'])): images/s} of one process decoding 500×375 quality-90 JPEGs (one loader worker);
    keys ending in 'full' are training crops decoded at full size (no draft).  Validation ('none') always
    decodes at full size: it is the cache's preprocessing, pixel for pixel."""
    from ..data.imagenet import write_sample_tree
    from ..data.loader import image_rng
    from ..data.stream import open_stream_datasets

    rates = {}
    with tempfile.TemporaryDirectory() as root:
        write_sample_tree(root, classes=("n01440764", "n02102040"), per_class=count // 2, val_per_class=count // 4)
        for size in sizes:
            for draft in drafts:
                train, val = open_stream_datasets(root, size, "sample")
                for mode, data in (("rrc", train), ("none", val)) if draft else (("rrc", train),):
                    data.draft = draft
                    n, start = 0, time.perf_counter()
                    while time.perf_counter() - start < seconds / 2 / len(sizes) / len(drafts):
                        data.example(n % len(data), image_rng(0, 0, 0, n), mode)
                        n += 1
                    rates[(mode, size) if draft else (mode, size, "full")] = n / (time.perf_counter() - start)
    return rates


def run_decode(args):
    from PIL import Image

    rates = decode_rates(seconds=args.seconds, drafts=(True, False))
    print(f"streaming decode, one worker process, 500×375 JPEG quality 90 (Pillow {Image.__version__}), images/s "
          f"of training crops with draft (DCT-scaled) decoding and with full-size decoding, and of validation "
          f"images (always full-size):")
    print(f"{'size':>5s} {'train RRC+flip':>15s} {'(full decode)':>14s} {'val resize+crop':>16s}")
    for size in sorted({k[1] for k in rates}):
        print(f"{size:5d} {rates[('rrc', size)]:15.0f} {rates[('rrc', size, 'full')]:14.0f} "
              f"{rates[('none', size)]:16.0f}")
    return 0


def add_arguments(sub):
    from ..models import MODELS

    s = sub.add_parser("scaling", help="data-parallel step costs for 1 and N ranks, and a projection to N nodes "
                                       "(run plain, or under mpiexec)",
                       description="Run plain: times 1 process × --threads threads, then starts `mpiexec -n "
                                   "--ranks` × 1 thread at the same global batch, and prints both, their ratio and "
                                   "a ring-allreduce projection to N nodes. Run under mpiexec: times that world "
                                   "only (e.g. mpiexec -n 4 python -m minilab.bench scaling --threads 1).")
    s.add_argument("--arch", default="birealnet18", choices=sorted(MODELS), help="(default birealnet18)")
    s.add_argument("--image-size", type=int_range(*IMAGE_SIZES), default=64,
                   help=f"{IMAGE_SIZES[0]}-{IMAGE_SIZES[1]} px (default 64)")
    s.add_argument("--batch-size", type=int_range(2, MAX_BATCH), default=64,
                   help=f"the global batch, 2-{MAX_BATCH} (default 64)")
    s.add_argument("--width", type=WIDTH, default=1.0,
                   help=f"width multiplier, above 0 and at most {MAX_WIDTH} (default 1.0)")
    s.add_argument("--threads", type=int_range(1, CORES), default=2, help="threads of the one-process run (default 2)")
    s.add_argument("--ranks", type=int_range(1, 4096), default=2, help="ranks of the MPI run started from a plain run")
    s.add_argument("--steps", type=int_range(1, 10_000), default=5, help="timed steps (the median counts)")
    s.add_argument("--rounds", type=int_range(1, 100), default=1,
                   help="alternate the two configurations this many times")
    s.add_argument("--sync-bn", action="store_true", help="the ranks synchronise BatchNorm statistics")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)   # the mpiexec run a plain run starts
    d = sub.add_parser("decode", help="streaming loader: JPEG decode images/s per worker at 64/128/224 px")
    d.add_argument("--seconds", type=float_range(0, 3600, lo_open=True), default=6.0,
                   help="time spent measuring, above 0 and at most 3600 (default 6)")
