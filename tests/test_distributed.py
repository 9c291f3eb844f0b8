"""Data-parallel training over MPI: launcher detection, sharding, the equivalence of N ranks with one process
(exact maths in float64; float32 within rounding), per-rank evaluation, resume on another number of ranks, and
a failing or killed rank ending the whole job.  MPI runs use 2 ranks and a timeout, so none can hang."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minilab import config
from minilab.training.checkpoint import read_checkpoint
from minilab.data.loader import ArrayDataset, Loader, make_batch, shard_batches
from minilab.data.synthetic import make_synthetic
from minilab.distributed.world import launched_ranks
from minilab.testing import rounding_tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="mpi4py or mpiexec is missing: install the mpi extra (pip install -e \".[mpi]\")")
TINY = ["--arch", "labbnn", "--data", "synthetic", "--synthetic-size", "384", "64", "--image-size", "24",
        "--width", "0.25", "--batch-size", "16", "--threads", "1", "--no-progress", "--workers", "0"]
ENV = dict(os.environ, MINILAB_CACHE="/nonexistent-cache", PYTHONPATH=ROOT)


def mpirun(args, ranks=2, timeout=300):
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=timeout)


def train(args, ranks=1, timeout=300):
    if ranks == 1:
        return subprocess.run([sys.executable, "-m", "minilab.train", *args], capture_output=True, text=True,
                              env=ENV, cwd=ROOT, timeout=timeout)
    return mpirun(["-m", "minilab.train", *args], ranks, timeout)


def checkpoint(out):
    return read_checkpoint(os.path.join(out, "checkpoint.npz"))


# ---- without MPI ----------------------------------------------------------------------------------------------

def test_launcher_detection():
    assert launched_ranks({}) == 1
    assert launched_ranks({"PMI_SIZE": "1"}) == 1              # `mpiexec -n 1` is one process
    assert launched_ranks({"PMI_SIZE": "4"}) == 4
    assert launched_ranks({"OMPI_COMM_WORLD_SIZE": "8"}) == 8
    assert launched_ranks({"SLURM_STEP_NUM_TASKS": "16"}) == 16


def test_one_process_never_imports_mpi4py(tmp_path):
    code = ("import sys; from minilab.train import main; "
            f"rc = main({TINY + ['--max-steps', '2', '--epochs', '1', '--out', str(tmp_path)]!r}); "
            "assert rc == 0, rc; assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    env = {k: v for k, v in ENV.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_rank_shards_make_up_the_global_batches():
    order = np.random.default_rng(0).permutation(70)
    whole = shard_batches(order, 16, 0, 1, True)
    halves = [shard_batches(order, 16, r, 2, True) for r in range(2)]
    assert len(halves[0]) == len(halves[1]) == len(whole) == 5        # 4 × 16 + 6: the last batch is split too
    for (b, indices, _), (b0, i0, f0), (b1, i1, f1) in zip(whole, *halves):
        assert b == b0 == b1 and f0 == 0 and f1 == len(i0)
        np.testing.assert_array_equal(np.concatenate([i0, i1]), indices)
    # evaluation: whole batches, alternately
    assert [b for b, _, _ in shard_batches(order, 16, 1, 2, False)] == [1, 3]
    # a last batch with fewer images than ranks is dropped rather than leaving a rank empty
    assert len(shard_batches(np.arange(33), 16, 0, 4, True)) == 2


def test_fewer_than_two_images_per_rank_is_refused_unless_batchnorm_is_synchronised():
    """Per-rank BatchNorm needs two images per rank: a global batch of 2 on 2 ranks would leave out every batch."""
    from types import SimpleNamespace

    from minilab.distributed.world import MPIWorld
    from minilab.train import build_parser
    from minilab.training.loop import make_loaders

    images, labels = make_synthetic(40, 8, seed=0)
    data = ArrayDataset(images, labels, list(range(10)))
    # rank 0 of two, as the loaders see it (no collective is called)
    rank0 = MPIWorld(SimpleNamespace(COMM_WORLD=SimpleNamespace(Get_rank=lambda: 0, Get_size=lambda: 2)))
    args = build_parser().parse_args(["--batch-size", "2", "--workers", "0"])
    with pytest.raises(ValueError, match=r"--batch-size 2 over 2 ranks gives each rank 1 image .* at least 2: use "
                                         r"--batch-size 4 or more, or --sync-bn"):
        make_loaders(args, rank0, data, data)
    args.sync_bn = True      # statistics over both ranks' images: one image each is enough
    train_loader, _ = make_loaders(args, rank0, data, data)
    assert len(train_loader) == 20 and all(len(y) == 1 for _, y in train_loader.batches(0))
    args.sync_bn, args.batch_size = False, 4
    assert len(make_loaders(args, rank0, data, data)[0]) == 10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_buckets_are_counted_in_bytes(dtype):
    """Each parameter holds a whole bucket's bytes in float64 (a bucket each), half of them in float32 (pairs)."""
    from minilab.core.autograd import Tensor
    from minilab.distributed.buckets import BUCKET_BYTES, GradientBuckets

    params = [Tensor(np.zeros(BUCKET_BYTES // 8, dtype)) for _ in range(4)]
    buckets = GradientBuckets(world=None, params=params, share=0.5)
    assert len(buckets.buckets) == (4 if dtype == np.float64 else 2)


def test_augmentation_does_not_depend_on_the_split():
    images, labels = make_synthetic(32, 24, seed=0)
    data = ArrayDataset(images, labels, list(range(10)))
    idx = np.arange(3, 19)
    x, y = make_batch(data, idx, "rrc", 5, 2, 7)
    x0, _ = make_batch(data, idx[:8], "rrc", 5, 2, 7, first=0)
    x1, _ = make_batch(data, idx[8:], "rrc", 5, 2, 7, first=8)
    np.testing.assert_array_equal(np.concatenate([x0, x1]), x)
    loader = Loader(data, 16, augmentation="rrc", seed=5, rank=1, ranks=2)
    (xr, yr), _ = list(loader.batches(0))
    assert xr.shape[0] == 8


def test_sync_batch_norm_on_one_rank_is_batch_norm_and_passes_gradcheck():
    import minilab as ml
    from minilab.distributed.world import SingleProcess
    from minilab.core.gradcheck import gradcheck
    from minilab.ops.norm import batch_norm
    from minilab.ops.sync_norm import sync_batch_norm

    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(3), rng.standard_normal(3)
    stats = [np.zeros(3), np.ones(3)], [np.zeros(3), np.ones(3)]
    a = sync_batch_norm(ml.tensor(x), *stats[0], ml.tensor(gamma), ml.tensor(beta), SingleProcess())
    b = batch_norm(ml.tensor(x), *stats[1], ml.tensor(gamma), ml.tensor(beta))
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats[0][1], stats[1][1], rtol=1e-12)     # the running variance, unbiased
    gradcheck(lambda x, g, b: sync_batch_norm(x, np.zeros(3), np.ones(3), g, b, SingleProcess()),
              ml.tensor(x, requires_grad=True), ml.tensor(gamma, requires_grad=True),
              ml.tensor(beta, requires_grad=True))


# ---- under mpiexec -n 2 ---------------------------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("program", ["sync_bn", "per_rank_bn", "evaluation", "diverged_replica"])
def test_mpi_program(program):
    """See tests/mpi_programs.py: sync-BN equals one process (float64, relative 1e-9), per-rank BN equals the
    average of half-batch gradients, split evaluation equals one process exactly, --check-replicas notices."""
    result = mpirun([os.path.join(ROOT, "tests", "mpi_programs.py"), program], timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_message():
    # a job left hanging would raise subprocess.TimeoutExpired (the rank's failure ends the job in seconds)
    result = mpirun([os.path.join(ROOT, "tests", "mpi_programs.py"), "failing_rank"], timeout=120)
    assert result.returncode != 0
    assert "[rank 1/2] error: rank one cannot read its images" in result.stderr


@needs_mpi
def test_global_batch_must_divide_over_the_ranks(tmp_path):
    result = train(TINY + ["--batch-size", "15", "--out", str(tmp_path / "run")], ranks=2, timeout=120)
    assert result.returncode == 2 and "must be divisible by the 2 ranks" in result.stderr, result.stderr[-2000:]


@needs_mpi
@pytest.mark.skipif(not config.available(), reason="the float32 comparison needs the compiled BatchNorm, which "
                    "accumulates its statistics in double precision as sync-BN does (the float64 programs above "
                    "check the maths on the NumPy path)")
def test_two_ranks_with_sync_bn_take_one_process_first_step(tmp_path):
    """float32, compiled kernels, one SGD step from the same weights on the same 16 images.  A weight's gradient
    is a sum over images and positions of terms far larger than the result, so summing it as two halves (2 ranks)
    instead of one moves it by up to ~1e-4 of the layer's largest gradient — one process with 1 and 2 threads
    differs as much.  Tolerance: 2e-3 of the largest update of each tensor, plus what float32 rounding allows the
    value itself (minilab.testing.rounding_tolerance).  Both sides must compute the batch
    statistics in double precision: the NumPy reference BatchNorm sums float32 in float32, ~1e-7 away from
    sync-BN's float64 sums, and that is enough to flip the sign of an activation sitting next to 0, which changes
    the features by a visible fraction of a step.  For the same reason later steps part further (sign() turns
    rounding into flipped activations; 1 and 2 threads in one process part as much), so the maths is checked in
    float64 by tests/mpi_programs.py."""
    args = TINY + ["--optimizer", "sgd", "--lr", "0.05", "--max-steps", "1", "--epochs", "1"]
    one = train(args + ["--out", str(tmp_path / "one")])
    two = train(args + ["--out", str(tmp_path / "two"), "--sync-bn", "--check-replicas"], ranks=2)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("stopped after --max-steps") == 1, two.stdout     # rank 0 alone speaks
    from minilab.models import create_model
    from minilab.nn import init
    a, _, ra = checkpoint(str(tmp_path / "one"))
    b, _, rb = checkpoint(str(tmp_path / "two"))
    assert ra["step"] == rb["step"] == 1
    init.seed(0)
    start = create_model(**ra["model"]).state_dict()
    longest_sum = 16 * 24 * 24      # the batch statistics of the first layer: 16 images of 24 × 24 positions
    m = 0.01                        # BatchNorm's Keras momentum 0.99: running = 0.99·running + 0.01·batch
    for name in start:
        update = np.abs(a[name] - start[name]).max()
        # the gradients' part (above) plus the rounding of the value itself: a float32 sum of up to `longest_sum`
        # terms, bounded by the size of its terms.  A running mean's terms cancel (a centred input gives ~1e-9
        # from terms of size ~1), so its terms' size is m·rms(x), rms² = batch variance + batch mean², both read
        # back from the running statistics after the one step.
        magnitude = np.abs(a[name]).astype(np.float64)
        if name.endswith("running_mean"):
            var = name[:-len("running_mean")] + "running_var"
            batch_var = np.maximum((a[var] - (1 - m) * start[var]) / m, 0.0)
            magnitude = m * np.sqrt(batch_var + (a[name] / m) ** 2)
        bound = 2e-3 * update + rounding_tolerance(magnitude, terms=longest_sum)
        assert np.all(np.abs(a[name] - b[name]) <= bound), name


@needs_mpi
def test_killed_rank_ends_the_job_and_resume_continues_on_one_rank(tmp_path):
    out = str(tmp_path / "run")
    args = TINY + ["--epochs", "2", "--checkpoint-every", "4", "--out", out]
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "minilab.train", *args], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = os.path.join(out, "checkpoint.npz")
    deadline, victim = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None and victim is None:
        if os.path.exists(ckpt):
            try:
                victim = rank_process(proc.pid, 1)
            except ValueError:
                pass
        time.sleep(0.02)
    assert victim is not None, "the run ended before a rank could be killed"
    os.kill(victim, signal.SIGKILL)
    try:   # the launcher ends the other rank in seconds; a job left hanging fails the test instead of the suite
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the job went on after one of its ranks was killed")
    assert proc.returncode != 0, (proc.returncode, stderr[-2000:])
    _, _, record = checkpoint(out)                       # the last good checkpoint survived
    assert record["step"] % 4 == 0 and record["step"] < 48
    resumed = train(["--resume", "--out", out, "--no-progress"], ranks=1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    _, _, final = checkpoint(out)
    assert (final["epoch"], final["step"]) == (2, 48)
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [m["epoch"] for m in metrics][-1] == 2


def rank_process(launcher_pid, rank):
    """The pid of rank `rank` among the launcher's descendants (read from /proc), ValueError if not started."""
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(pid))
        except OSError:
            continue
    stack, found = [launcher_pid], []
    while stack:
        for child in children.get(stack.pop(), []):
            stack.append(child)
            try:
                with open(f"/proc/{child}/environ", "rb") as f:
                    env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"minilab.train" in cmdline and str(rank).encode() in (env.get(b"PMI_RANK"), env.get(b"OMPI_COMM_WORLD_RANK")):
                found.append(child)
    if not found:
        raise ValueError(f"rank {rank} is not running yet")
    return min(found)   # the rank itself, not a loader worker it forked


# ---- streaming input and ImageNet layouts ---------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["folders", "csv", "txt"])
def test_imagenet_layouts_give_the_same_labels(tmp_path, layout):
    from minilab.data.imagenet import scan_imagenet, write_sample_tree

    root = write_sample_tree(str(tmp_path / layout), classes=("n02102040", "n01440764", "n03000684"), per_class=2,
                             val_per_class=2, size=(50, 40), val_layout=layout)
    _, train_labels, val_paths, val_labels, classes = scan_imagenet(root)
    assert classes == ["n01440764", "n02102040", "n03000684"]          # sorted wnids, whatever the order written
    assert sorted(train_labels) == [0, 0, 1, 1, 2, 2]
    # the sample tree writes val images class by class in the order given, numbered 1..6
    by_number = dict(zip((os.path.basename(p)[:23] for p in val_paths), val_labels))
    assert by_number["ILSVRC2012_val_00000001"] == 1 and by_number["ILSVRC2012_val_00000005"] == 2


def test_flat_val_without_labels_file_is_a_clear_error(tmp_path):
    from minilab.data import DataError
    from minilab.data.imagenet import scan_imagenet, write_sample_tree

    root = write_sample_tree(str(tmp_path), per_class=1, val_per_class=1, size=(40, 30), val_layout="txt")
    os.remove(os.path.join(root, "val_labels.txt"))
    with pytest.raises(DataError, match="no labels file"):
        scan_imagenet(root)


def test_streaming_decode_crops_flips_and_matches_the_cache_for_eval(tmp_path):
    from minilab.data.cache import load_image
    from minilab.data.imagenet import write_sample_tree
    from minilab.data.loader import image_rng
    from minilab.data.stream import open_stream_datasets

    root = write_sample_tree(str(tmp_path), per_class=2, val_per_class=1)
    train, val = open_stream_datasets(root, 64, "sample")
    a = train.example(0, image_rng(0, 0, 0, 0), "rrc")
    b = train.example(0, image_rng(0, 0, 0, 0), "rrc")
    c = train.example(0, image_rng(0, 0, 0, 1), "rrc")
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)                  # the crop is a function of the key alone
    assert not np.array_equal(a, c)
    # the draft-scaled decode shows the same crop as a full-size decode resized with the same box
    from PIL import Image

    from minilab.data.augment import random_crop_box
    rng = image_rng(0, 0, 0, 0)
    with Image.open(train.paths[0]) as img:
        box = random_crop_box(*img.size, rng)
        full = np.asarray(img.convert("RGB").resize((64, 64), Image.BILINEAR, box=box))
    if rng.random() < 0.5:
        full = full[:, ::-1]
    assert np.abs(full.astype(int) - a.astype(int)).mean() < 6
    # eval: short side to S and centre crop of the full-size decode, pixel for pixel what the cache stores
    np.testing.assert_array_equal(val.example(0, None, "none"), load_image(val.paths[0], 64))
    x, y = make_batch(train, np.arange(4), "rrc", 0, 0, 0)
    assert x.shape == (4, 3, 64, 64) and list(y) == list(train.labels[:4])


def test_training_streams_an_imagenet_folder(tmp_path):
    from minilab.data.imagenet import write_sample_tree

    root = write_sample_tree(str(tmp_path / "tree"), per_class=6, val_per_class=3, val_layout="csv")
    result = train(["--data", root, "--input", "stream", "--image-size", "32", "--arch", "labbnn", "--width",
                    "0.25", "--batch-size", "4", "--epochs", "1", "--threads", "1", "--no-progress",
                    "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done:" in result.stdout and "12 train / 6 val" in result.stdout
    assert not os.path.exists(os.path.join(str(tmp_path), "cache"))


def test_evaluate_reads_a_streamed_run_the_same_way(tmp_path):
    from minilab.data.imagenet import write_sample_tree

    root = write_sample_tree(str(tmp_path / "tree"), per_class=4, val_per_class=3, val_layout="txt")
    out, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    trained = train(["--data", root, "--input", "stream", "--image-size", "32", "--width", "0.25", "--batch-size",
                     "4", "--epochs", "1", "--threads", "1", "--no-progress", "--out", out, "--cache-dir", cache])
    assert trained.returncode == 0, trained.stderr[-2000:]
    evaluated = subprocess.run([sys.executable, "-m", "minilab.evaluate", "--checkpoint", f"{out}/checkpoint.npz",
                                "--cache-dir", cache], capture_output=True, text=True, env=ENV, cwd=ROOT,
                               timeout=300)
    assert evaluated.returncode == 0 and "(6 images)" in evaluated.stdout, evaluated.stderr[-2000:]
    assert not os.path.exists(cache)           # streamed: no preprocessing cache was built
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert f"top-1 {100 * metrics[-1]['val_top1']:.2f} %" in evaluated.stdout


@needs_mpi
def test_one_process_run_resumes_on_two_ranks(tmp_path):
    """The data position is global: 4 steps in one process, then the rest of the epoch on 2 ranks."""
    out = str(tmp_path / "run")
    first = train(TINY + ["--epochs", "1", "--max-steps", "4", "--out", out])
    assert first.returncode == 0, first.stderr[-2000:]
    assert checkpoint(out)[2]["step"] == 4
    rest = train(["--resume", "--out", out, "--no-progress", "--check-replicas"], ranks=2)
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert "at epoch 1, batch 4 (step 4) on 2 ranks" in rest.stdout and rest.stdout.count("done:") == 1
    _, _, record = checkpoint(out)
    assert (record["epoch"], record["batch"], record["step"]) == (1, 0, 24)
