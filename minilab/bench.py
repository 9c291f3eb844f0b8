"""`python -m minilab.bench kernels|train|model|scaling|decode`: speed measured as ratios against a reference run
in the same sitting (NumPy float32 BLAS, the pure-NumPy path, or another configuration), never as absolute
pass/fail timings.

  kernels  the Bi-Real-18 3×3 layer shapes at 224 px: packed XNOR-popcount conv vs float32 im2col + BLAS GEMM,
           and the LAB depthwise kernel vs its NumPy reference
  train    images/s of forward + backward + Adam step with the compiled twins vs the NumPy reference ops
           (config.use(kernels=False), the same as MINILAB_NO_EXT=1), and peak memory
  model    packed inference engine vs minilab's float forward (see minilab.engine)
  scaling  data-parallel training over MPI: step costs for 1 process and N ranks, and a projection (minilab.scaling)
  decode   the streaming loader's JPEG decode rate per worker (minilab.scaling)
"""
import argparse
import multiprocessing as mp
import resource
import sys

import numpy as np

from .engine.profile import time_runs
from .validate import CORES, IMAGE_SIZES, MAX_BATCH, MAX_WIDTH, WIDTH, Refused, check_output_file, int_range, \
    strict_json

BIREAL_LAYERS = [(64, 56), (128, 28), (256, 14), (512, 7)]


def timeit(fn, repeat=20, warmup=2):
    """Median seconds of `repeat` timed calls after `warmup` untimed ones."""
    return time_runs(fn, repeat, warmup)["median_ms"] / 1e3


def bench_kernels(threads=1, repeat=20):
    from . import config
    from .ops.conv import depthwise_backward, depthwise_forward

    ext = config.kernels()
    if ext is None:
        raise RuntimeError(f"the kernels benchmark needs the compiled extension ({config.reason()})")
    from .fast.conv_chunked import conv_forward
    rng = np.random.default_rng(0)
    rows = []
    for c, hw in BIREAL_LAYERS:
        x = np.where(rng.random((1, c, hw, hw)) < 0.5, -1, 1).astype(np.float32)
        w = np.where(rng.random((c, c, 3, 3)) < 0.5, -1, 1).astype(np.float32)
        macs = c * c * 9 * hw * hw
        # the float side is minilab's own fastest float32 conv: compiled im2col + one BLAS GEMM
        t_float = timeit(lambda: conv_forward(x, w, (1, 1), (1, 1), 0.0, (hw, hw)), repeat)
        xpk, bt = ext.pack_channels_last(x, 1, 1), ext.pack_weights(w)

        def binary_conv():
            return ext.bgemm(ext.packed_im2col(xpk, 3, 3, 1, 1, hw, hw), bt, c, c * 9, threads=threads)

        t_bin = timeit(binary_conv, repeat)
        t_pack = timeit(lambda: ext.pack_channels_last(x, 1, 1), repeat)
        rows.append({"layer": f"{c}ch {hw}x{hw}", "macs": macs, "float_ms": 1e3 * t_float, "binary_ms": 1e3 * t_bin,
                     "pack_ms": 1e3 * t_pack, "ratio": t_float / t_bin, "ratio_with_pack": t_float / (t_bin + t_pack),
                     "float_gmacs": macs / t_float / 1e9, "binary_gbmacs": macs / t_bin / 1e9})
    # LAB's depthwise 3×3, multiplier 2, at the 64-channel 56×56 layer: kernel vs NumPy reference, fwd and bwd
    x = rng.standard_normal((1, 64, 58, 58)).astype(np.float32)
    w = rng.standard_normal((128, 1, 3, 3)).astype(np.float32)
    g = rng.standard_normal((1, 128, 56, 56)).astype(np.float32)
    t_fast = timeit(lambda: (ext.depthwise3x3_forward(x, w, 1, 1, 56, 56), ext.depthwise3x3_backward(x, w, g, 1, 1)),
                    repeat)
    t_ref = timeit(lambda: (depthwise_forward(x, w, (1, 1), (56, 56)), depthwise_backward(x, w, g, (1, 1))),
                   max(3, repeat // 4))
    lab = {"layer": "LAB depthwise 64ch 56x56 fwd+bwd", "kernel_ms": 1e3 * t_fast, "numpy_ms": 1e3 * t_ref,
           "ratio": t_ref / t_fast}
    return {"isa": ext.isa(), "threads": threads, "binary_conv": rows, "lab_depthwise": lab}


def print_kernels(result):
    print(f"binary conv: XNOR-popcount ({result['isa']}, {result['threads']} thread(s)) vs NumPy float32 "
          f"im2col + BLAS, same run")
    print(f"{'layer':>14s} {'float ms':>9s} {'GMAC/s':>7s} {'binary ms':>10s} {'GBMAC/s':>8s} {'speed-up':>9s} "
          f"{'pack ms':>8s} {'with pack':>9s}")
    for r in result["binary_conv"]:
        print(f"{r['layer']:>14s} {r['float_ms']:9.3f} {r['float_gmacs']:7.1f} {r['binary_ms']:10.3f} "
              f"{r['binary_gbmacs']:8.0f} {r['ratio']:8.1f}x {r['pack_ms']:8.3f} {r['ratio_with_pack']:8.1f}x")
    lab = result["lab_depthwise"]
    print(f"{lab['layer']}: kernel {lab['kernel_ms']:.2f} ms, NumPy reference {lab['numpy_ms']:.2f} ms, "
          f"{lab['ratio']:.1f}x")


def _train_worker(queue, arch, image_size, batch_size, width, binarizer, threads, steps, no_ext):
    from . import config

    with config.use(kernels=not no_ext):
        queue.put(_train_run(arch, image_size, batch_size, width, binarizer, threads, steps))


def _train_run(arch, image_size, batch_size, width, binarizer, threads, steps):
    from . import config
    from .memory import keep_freed_memory
    from .threads import set_threads

    set_threads(threads)
    keep_freed_memory()   # as minilab.train does, for both paths
    from . import ops as F
    from .autograd import Tensor
    from .models import create_model
    from .optim import Adam

    model = create_model(arch, num_classes=10, image_size=image_size, width=width, binarizer=binarizer)
    opt = Adam(model.parameters())
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch_size, 3, image_size, image_size)).astype(np.float32))
    y = rng.integers(0, 10, batch_size)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    median = timeit(step, repeat=steps, warmup=1)
    return {"images_per_s": batch_size / median, "kernel_gemm": config.gemm_in_kernels(),
            "winograd": config.kernels() is not None and config.winograd,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_train(arch="birealnet18", image_size=64, batch_size=64, width=1.0, threads=2, steps=5,
                binarizers=("sign", "lab"), rounds=2):
    """Each configuration runs in a fresh child process, so its peak RSS is its own.  The compiled and the
    pure-NumPy runs alternate for `rounds` rounds and each keeps its best round: on a shared machine the speed
    drifts by tens of percent over a minute, and best-of-N compares both paths at the machine's quiet moments."""
    ctx = mp.get_context("fork")
    rows = []
    for binarizer in binarizers:
        row = {"arch": arch, "binarizer": binarizer, "rounds": {"ext": [], "numpy": []}}
        for _ in range(max(1, rounds)):
            for label, no_ext in (("ext", False), ("numpy", True)):
                queue = ctx.Queue()
                proc = ctx.Process(target=_train_worker, args=(queue, arch, image_size, batch_size, width,
                                                                binarizer, threads,
                                                                steps if not no_ext else max(2, steps // 2), no_ext))
                proc.start()
                result = queue.get()
                proc.join()
                row["rounds"][label].append(result)
        for label in ("ext", "numpy"):
            row[label] = max(row["rounds"][label], key=lambda r: r["images_per_s"])
        row["speedup"] = row["ext"]["images_per_s"] / row["numpy"]["images_per_s"]
        rows.append(row)
    return {"image_size": image_size, "batch_size": batch_size, "width": width, "threads": threads,
            "rounds": rounds, "rows": rows}


def print_train(result):
    print(f"training step (forward + backward + Adam), {result['image_size']} px, batch {result['batch_size']}, "
          f"width {result['width']}, {result['threads']} thread(s), best of {result['rounds']} round(s)")
    ext = result["rows"][0]["ext"] if result["rows"] else {}
    gemm = "the kernels' OpenMP threads" if ext.get("kernel_gemm") else "BLAS' threads"
    backward = "Winograd F(2x2,3x3)" if ext.get("winograd") else "im2col + GEMM"
    print(f"kernels' path: conv GEMMs on {gemm}, 3x3 stride-1 backward {backward}")
    print(f"{'model':>14s} {'binarizer':>9s} {'ext img/s':>10s} {'numpy img/s':>12s} {'speed-up':>9s} "
          f"{'peak RSS MB (ext / numpy)':>26s}")
    for r in result["rows"]:
        print(f"{r['arch']:>14s} {r['binarizer']:>9s} {r['ext']['images_per_s']:10.1f} "
              f"{r['numpy']['images_per_s']:12.1f} {r['speedup']:8.1f}x "
              f"{r['ext']['peak_rss_mb']:12.0f} / {r['numpy']['peak_rss_mb']:.0f}")


def main(argv=None):
    from .models import MODELS

    p = argparse.ArgumentParser(prog="python -m minilab.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kernels", help="packed binary conv and LAB depthwise vs NumPy/BLAS")
    k.add_argument("--threads", type=int_range(1, CORES), default=1, help="threads of the popcount kernel (BLAS gets 1)")
    k.add_argument("--repeat", type=int_range(1, 10_000), default=20, help="timed calls per kernel, 1-10000")
    k.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t = sub.add_parser("train", help="training images/s with the kernels vs the pure-NumPy path")
    t.add_argument("--arch", default="birealnet18", choices=sorted(MODELS))
    t.add_argument("--image-size", type=int_range(*IMAGE_SIZES), default=64, help=f"{IMAGE_SIZES[0]}-{IMAGE_SIZES[1]} px")
    t.add_argument("--batch-size", type=int_range(2, MAX_BATCH), default=64, help=f"2-{MAX_BATCH}")
    t.add_argument("--width", type=WIDTH, default=1.0, help=f"width multiplier, above 0 and at most {MAX_WIDTH}")
    t.add_argument("--threads", type=int_range(1, CORES), default=2,
                   help="cores to use: the kernels' OpenMP threads (which also run the conv GEMMs when they found "
                        "NumPy's OpenBLAS GEMM), and BLAS' threads on the NumPy path")
    t.add_argument("--steps", type=int_range(1, 10_000), default=5, help="timed steps per run (the median counts)")
    t.add_argument("--rounds", type=int_range(1, 100), default=2,
                   help="alternating rounds of the compiled and the NumPy run; each reports its best round")
    t.add_argument("--binarizer", nargs="+", default=["sign", "lab"])
    t.add_argument("--json", action="store_true")
    m = sub.add_parser("model", help="packed inference engine latency vs the float forward")
    from .engine.bench import add_arguments
    add_arguments(m)
    from . import scaling
    scaling.add_arguments(sub)
    args = p.parse_args(argv)
    for option in ("save", "plot"):    # bench model's output files, checked before the measurements
        if getattr(args, option, None):
            try:
                check_output_file(getattr(args, option), f"--{option}")
            except Refused as error:
                p.error(str(error))
    if args.what == "kernels":
        from .threads import set_threads
        set_threads(1)
        result = bench_kernels(args.threads, args.repeat)
        print(strict_json(result, indent=1)) if args.json else print_kernels(result)
    elif args.what == "train":
        result = bench_train(args.arch, args.image_size, args.batch_size, args.width, args.threads, args.steps,
                             tuple(args.binarizer), args.rounds)
        print(strict_json(result, indent=1)) if args.json else print_train(result)
    elif args.what == "scaling":
        return scaling.run_scaling(args)
    elif args.what == "decode":
        return scaling.run_decode(args)
    else:
        from .engine.bench import run_model_bench
        return run_model_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
