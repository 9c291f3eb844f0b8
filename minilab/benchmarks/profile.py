"""Latency of a packed model: median and spread over repeated runs, and a per-operator-type breakdown like the
paper's Fig. 6 (first conv, binary conv, binarize + pack, LAB binarize + pack, pooling, BN/activation, classifier, other)."""
import time

import numpy as np

from .. import nn
from ..engine.packed_conv import PackedBinaryConv2d

CATEGORIES = ("first conv", "binary conv", "binarize + pack", "LAB binarize + pack", "float conv",
              "pooling", "BN / activation", "classifier", "other")


def category_of(name, module):
    if isinstance(module, PackedBinaryConv2d) or module.__dict__.get("_buffers") is None:
        return None
    if list(module.named_children()):
        return None                       # only leaf modules: a block's time is its children's
    if isinstance(module, nn.Conv2d):
        return "first conv" if name.startswith("stem") or name.startswith("features.layers.0") else "float conv"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.GlobalAvgPool)):
        return "pooling"
    if isinstance(module, (nn.BatchNorm2d, nn.PReLU, nn.ReLU, nn.LearnableBias)):
        return "BN / activation"
    if isinstance(module, nn.Linear):
        return "classifier"
    return None


def time_runs(fn, runs=20, warmup=3):
    """Median, spread and extremes (ms) of `runs` timed calls of fn after `warmup` untimed ones."""
    return time_interleaved([fn], runs, warmup)[0]


def time_interleaved(fns, runs=20, warmup=3, turn=1):
    """time_runs for several functions called in turn (a, b, a, b, …), so that a slow minute on a shared machine
    slows all of them alike and their ratio stays fair.  Returns one time_runs record per function.

    With turn > 1 each function's turn is one untimed call and then `turn` timed ones (a a a, b b b, …): for
    settings whose switch costs something neither pays in steady use, such as a thread count (the other cores'
    caches hold the last forward's maps, and an idle thread has gone to sleep)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    turns = (runs + turn - 1) // turn
    for t in range(turns):
        timed = min(turn, runs - t * turn)
        for fn, record in zip(fns, times):
            if turn > 1:
                fn()
            for _ in range(timed):
                start = time.perf_counter()
                fn()
                record.append(time.perf_counter() - start)
    out = []
    for record in times:
        t = np.array(record) * 1e3
        out.append({"median_ms": float(np.median(t)), "min_ms": float(t.min()), "max_ms": float(t.max()),
                    "p10_ms": float(np.percentile(t, 10)), "p90_ms": float(np.percentile(t, 90)), "runs": runs})
    return out


def install_profiler(model, record):
    """Time every forward of `model`'s categorised leaf modules, and the steps inside each packed conv, with one
    hook: record(category, seconds).  Returns a function that removes everything it installed."""
    removers = []
    for name, module in model.named_modules():
        if isinstance(module, PackedBinaryConv2d):
            module.profiler = record
            removers.append(lambda m=module: setattr(m, "profiler", None))
            continue
        category = category_of(name, module)
        if category is None:
            continue
        starts = []
        removers.append(module.register_forward_pre_hook(lambda m, args, s=starts: s.append(time.perf_counter())))
        removers.append(module.register_forward_hook(
            lambda m, args, out, s=starts, c=category: record(c, time.perf_counter() - s.pop())))

    def remove():
        for undo in removers:
            undo()
    return remove


def breakdown(packed, x, runs=10):
    """Milliseconds per category, averaged over `runs` profiled forwards (profiling adds a little overhead)."""
    totals = dict.fromkeys(CATEGORIES, 0.0)

    def record(category, seconds):
        totals[category] += seconds

    wall = 0.0
    remove = install_profiler(packed.model, record)
    try:
        packed(x)                                   # warm-up, not counted
        for key in totals:
            totals[key] = 0.0
        for _ in range(runs):
            start = time.perf_counter()
            packed(x)
            wall += time.perf_counter() - start
    finally:
        remove()
    totals["other"] = max(wall - sum(totals.values()), 0.0)
    return {k: 1e3 * v / runs for k, v in totals.items()}, 1e3 * wall / runs
