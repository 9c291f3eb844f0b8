"""What one data-parallel training step costs on this world (`python -m minilab.bench scaling`): compute, the
wait for the gradient sums the backward did not hide, the optimizer step, and a blocking Allreduce of the same
bytes on its own, each averaged over the ranks."""
import time

import numpy as np

from .buckets import GradientBuckets


def step_timings(world, arch, image_size, batch_size, width, steps, warmup=2, sync_bn=False):
    """Median per-step timings (seconds) of `steps` training steps on this rank's share of the global batch."""
    from .. import ops as F
    from ..core.autograd import tensor
    from ..models import create_model
    from ..nn import init
    from ..optim import Adam

    init.seed(0)
    model = create_model(arch, num_classes=1000, image_size=image_size, width=width)
    world.prepare_model(model, sync_bn)
    opt = Adam(model.parameters())
    local = batch_size // world.size
    rng = np.random.default_rng(world.rank)
    x = tensor(rng.standard_normal((local, 3, image_size, image_size)).astype(np.float32))
    y = rng.integers(0, 1000, local)
    rows = []
    for i in range(warmup + steps):
        world.barrier()
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        buckets = GradientBuckets(world, opt.params, 1.0 / world.size) if world.size > 1 else None
        loss.backward(on_leaf=None if buckets is None else buckets.on_leaf)
        t1 = time.perf_counter()
        if buckets is not None:
            buckets.finish(opt.params)
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= warmup:
            rows.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
    compute, wait, update, total = np.median(np.array(rows), axis=0)
    nbytes = sum(p.data.nbytes for p in opt.params)
    return {"compute_s": compute, "wait_s": wait, "update_s": update, "step_s": total, "local_batch": local,
            "gradient_bytes": nbytes, "parameters": sum(p.data.size for p in opt.params)}


def blocking_allreduce_s(world, nbytes, repeat=5):
    """Median seconds of one in-place float32 Allreduce of `nbytes` (nothing else running)."""
    if world.size == 1:
        return 0.0
    buf = np.ones(nbytes // 4, np.float32)
    times = []
    for _ in range(repeat + 1):
        world.barrier()
        t0 = time.perf_counter()
        world.comm.Allreduce(world.MPI.IN_PLACE, buf, op=world.MPI.SUM)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def measure_world(args):
    """This world's row: each timing averaged over the ranks."""
    from ..distributed.world import connect
    from ..core.threads import set_threads

    world = connect("auto")
    set_threads(args.threads)
    t = step_timings(world, args.arch, args.image_size, args.batch_size, args.width, args.steps,
                     sync_bn=args.sync_bn)
    t["allreduce_s"] = blocking_allreduce_s(world, t["gradient_bytes"])
    keys = ("compute_s", "wait_s", "update_s", "step_s", "allreduce_s")
    sums = world.sum([t[k] for k in keys])
    row = dict(t, **{k: float(v) / world.size for k, v in zip(keys, sums)})
    row.update(ranks=world.size, threads=args.threads, arch=args.arch, image_size=args.image_size,
               batch_size=args.batch_size, width=args.width)
    row["hidden"] = 0.0 if world.size == 1 or row["allreduce_s"] == 0 else \
        max(0.0, 1.0 - row["wait_s"] / row["allreduce_s"])
    row["images_per_s"] = args.batch_size / row["step_s"]
    row["images_per_s_per_rank"] = row["images_per_s"] / world.size
    return world, row
