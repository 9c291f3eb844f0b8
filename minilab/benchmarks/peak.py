"""How close each operator of a packed model comes to this machine's limits.

Three limits are measured at start-up with short micro-benchmarks (the compiled ones in _ext/peak.h):
  binary MAC/s  XOR + POPCOUNT + ADD on 64-bit words from registers and L1 — what the popcount GEMM can reach;
  float MAC/s   float32 multiply-adds with independent accumulators — the limit of the float convs and of LAB's
                depthwise responses (which, to round exactly like the training graph, spend a multiply and an
                add per MAC instead of one fused instruction, so they can reach about half of it);
  byte/s        a copy of a few MB (reads + writes), the limit of the operators that do little arithmetic per
                byte (BatchNorm, activations, pooling, bit-packing).
Each operator's work per forward is counted once (forward hooks and the packed convs' last shapes) and divided
by its measured time."""
import time

import numpy as np

from .. import nn
from ..core.config import compiled
from ..engine.packed_conv import PackedBinaryConv2d, packed_bytes
from .profile import category_of

UNITS = {"binary conv": "binary MAC", "LAB binarize + pack": "float MAC", "first conv": "float MAC",
         "float conv": "float MAC", "classifier": "float MAC"}


def memory_rate(megabytes=4, rounds=5):
    """Bytes per second (read + written) of one copy of `megabytes`, the best of a few rounds."""
    src = np.ones(megabytes * (1 << 20) // 4, np.float32)
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - start))
    return best


def machine_peaks(threads=1, seconds=0.05):
    """{"binary MAC": per s, "float MAC": per s, "byte": per s} on `threads` cores."""
    binary, flt = compiled.peak_rates(seconds, threads)
    return {"binary MAC": binary, "float MAC": flt, "byte": memory_rate()}


def operator_work(packed, x):
    """{category: (unit, amount)} for one forward of `packed` on x."""
    names = {id(m): n for n, m in packed.model.named_modules()}
    work, removers = {}, []

    def add(category, unit, amount):
        work[category] = (unit, work.get(category, (unit, 0))[1] + amount)

    def hook(module, inputs, out):
        category = category_of(names.get(id(module), ""), module)
        if category is None:
            return
        if isinstance(module, nn.Conv2d):
            o, cg, kh, kw = module.weight.shape
            add(category, "float MAC", out.data.size * cg * kh * kw)
        elif isinstance(module, nn.Linear):
            add(category, "float MAC", out.data.size * inputs[0].data.shape[-1])
        else:
            add(category, "byte", inputs[0].data.nbytes + out.data.nbytes)

    for module in packed.model.modules():
        if not isinstance(module, PackedBinaryConv2d):
            removers.append(module.register_forward_hook(hook))
    try:
        packed(x)
    finally:
        for remove in removers:
            remove()
    for conv in packed.packed_convs():
        if conv.last_shapes is None:
            continue
        (n, c, h, w), (_, o, oh, ow) = conv.last_shapes
        k = conv.spec["kernel"]
        add("binary conv", "binary MAC", n * o * oh * ow * c * k * k)
        if conv.spec["binarizer"] == "lab":   # LAB's arithmetic as defined: two 3x3 responses per channel (the
            add("LAB binarize + pack", "float MAC", n * h * w * 2 * c * 9)   # kernel does about half of it)
        else:
            add("binarize + pack", "byte", 4 * n * c * h * w + packed_bytes((n, c, h, w), conv.spec["padding"]))
    return work


def fractions(parts_ms, work, peaks):
    """{category: (rate per s, unit, fraction of the peak)} for the categories whose work is known."""
    rows = {}
    for category, (unit, amount) in work.items():
        ms = parts_ms.get(category, 0.0)
        if ms > 0 and amount > 0:
            rate = amount / (ms * 1e-3)
            rows[category] = (rate, unit, rate / peaks[unit])
    return rows
