"""Programs that tests/test_distributed.py runs under `mpiexec -n 2` (not collected by pytest).

    python tests/mpi_programs.py NAME      → runs NAME() on every rank; rank 0 prints "OK ..." when it holds."""
import sys

import numpy as np

import minilab as ml
from minilab import F
from minilab.distributed.world import check_replicas, connect
from minilab.models import create_model
from minilab.nn import init
from minilab.optim import Adam
from minilab.training.loop import train_step

BATCH, SIZE, STEPS = 16, 24, 3


def float64_labbnn():
    """A small LAB-BNN with float64 parameters and buffers: every op then takes its NumPy reference path and
    rounding is ~1e-16, so the equivalence tests compare the maths, not float32 summation orders.

    The BatchNorm biases start at small random values instead of 0: a binary conv's outputs are integers, so with
    β = 0 an output equal to its channel's mean lands exactly on PReLU's kink at 0 (one of ~10⁴ values here), where
    a 1e-17 difference in the mean picks the other slope — a discontinuity, not a difference in the maths."""
    init.seed(0)
    model = create_model("labbnn", num_classes=10, image_size=SIZE, width=0.25)
    rng = np.random.default_rng(1)
    for name, p in model.named_parameters():
        p.data = p.data.astype(np.float64)
        if name.endswith("bn.bias") or name.endswith("bn1.bias") or name.endswith("bn3.bias"):
            p.data = rng.normal(0, 0.1, p.data.shape)
    for module in model.modules():
        for key in list(module._buffers):
            module._buffers[key] = module._buffers[key].astype(np.float64)
        for key in ("_ones", "_zeros"):
            if key in module.__dict__:
                object.__setattr__(module, key, module.__dict__[key].astype(np.float64))
    return model


def batches():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((BATCH, 3, SIZE, SIZE)), rng.integers(0, 10, BATCH)) for _ in range(STEPS)]


def worst_relative_difference(a, b):
    return max(float(np.abs(p.data - q.data).max() / (np.abs(p.data).max() + 1e-30))
               for p, q in zip(a.parameters(), b.parameters()))


def sync_bn():
    """2 ranks × 8 images with --sync-bn's layers == 1 process × 16 images, STEPS Adam steps."""
    from minilab.nn.sync import convert_sync_batchnorm

    world = connect("on")
    model = float64_labbnn()
    convert_sync_batchnorm(model, world)
    opt = Adam(model.parameters())
    half = slice(world.rank * BATCH // 2, (world.rank + 1) * BATCH // 2)
    for x, y in batches():
        train_step(model, opt, x[half], y[half], world)
    check_replicas(world, model, opt, "after the steps")
    if world.rank == 0:
        ref = float64_labbnn()
        ref_opt = Adam(ref.parameters())
        for x, y in batches():
            train_step(ref, ref_opt, x, y)
        worst = worst_relative_difference(model, ref)
        stats = max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(model.named_buffers(), ref.named_buffers()))
        assert worst < 1e-9 and stats < 1e-9, (worst, stats)
        print(f"OK sync-bn: worst relative parameter difference {worst:.2e}, running statistics {stats:.2e}")


def per_rank_bn():
    """Without --sync-bn each rank normalises its own B/N images: 2 ranks equal one process that runs forward and
    backward on each half separately (BatchNorm over 8 images) and averages the two gradients."""
    world = connect("on")
    model = float64_labbnn()
    opt = Adam(model.parameters())
    half = slice(world.rank * BATCH // 2, (world.rank + 1) * BATCH // 2)
    for x, y in batches():
        train_step(model, opt, x[half], y[half], world)
    world.average_arrays([b for _, b in model.named_buffers()])   # what training does before it saves
    check_replicas(world, model, opt, "after the steps")
    if world.rank == 0:
        ref = float64_labbnn()
        ref_opt = Adam(ref.parameters())
        for x, y in batches():
            grads = []
            for part in (slice(0, BATCH // 2), slice(BATCH // 2, BATCH)):
                ref_opt.zero_grad()
                F.cross_entropy(ref(ml.tensor(x[part])), y[part]).backward()
                grads.append([p.grad for p in ref.parameters()])
            for p, g0, g1 in zip(ref.parameters(), *grads):
                p.grad = 0.5 * g0 + 0.5 * g1
            ref_opt.step()
        worst = worst_relative_difference(model, ref)
        assert worst < 1e-9, worst
        print(f"OK per-rank BN equals averaged half-batch gradients: worst relative difference {worst:.2e}")


def evaluation():
    """Validation split across 2 ranks gives exactly one process's top-1/top-5 (float32, kernels if built)."""
    from minilab.data import Loader, make_synthetic
    from minilab.data.loader import ArrayDataset
    from minilab.training.evaluation import evaluate

    world = connect("on")
    init.seed(0)
    model = create_model("labbnn", num_classes=10, image_size=SIZE, width=0.25)
    images, labels = make_synthetic(250, SIZE, seed=3)
    data = ArrayDataset(images, labels, [str(i) for i in range(10)])
    split = evaluate(model, Loader(data, 100, shuffle=False, rank=world.rank, ranks=2, split_batches=False),
                     world=world)
    if world.rank == 0:
        whole = evaluate(model, Loader(data, 100, shuffle=False))
        assert (split["top1"], split["top5"]) == (whole["top1"], whole["top5"]), (split, whole)
        assert abs(split["loss"] - whole["loss"]) < 1e-9 * abs(whole["loss"])
        print(f"OK evaluation: top-1 {split['top1']:.3f} top-5 {split['top5']:.3f} on both")


def diverged_replica():
    """--check-replicas notices one changed weight on one rank."""
    world = connect("on")
    model = float64_labbnn()
    opt = Adam(model.parameters())
    if world.rank == 1:
        model.parameters()[0].data.flat[0] += 1e-12
    try:
        check_replicas(world, model, opt, "in the test")
    except RuntimeError as error:
        if world.rank == 0:
            print(f"OK {error}")
    else:
        raise AssertionError("the diverged replica went unnoticed")


def failing_rank():
    """Rank 1 fails while rank 0 waits in a collective: the job must end at once with rank 1's message."""
    world = connect("on")
    try:
        if world.rank == 1:
            raise ValueError("rank one cannot read its images")
        world.sum([1.0])   # rank 0 waits here for a partner that will never come
    except ValueError as error:
        world.fail(f"error: {error}", 2)


if __name__ == "__main__":
    globals()[sys.argv[1]]()
