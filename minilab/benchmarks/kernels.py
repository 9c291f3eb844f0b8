"""`python -m minilab.bench kernels` and `train`: the packed XNOR-popcount conv and LAB's depthwise kernel
against NumPy / BLAS, and training images/s with the compiled twins against the NumPy reference ops."""
import multiprocessing as mp
import resource

import numpy as np

from .profile import time_runs


BIREAL_LAYERS = [(64, 56), (128, 28), (256, 14), (512, 7)]


def timeit(fn, repeat=20, warmup=2):
    """Median seconds of `repeat` timed calls after `warmup` untimed ones."""
    return time_runs(fn, repeat, warmup)["median_ms"] / 1e3


def bench_kernels(threads=1, repeat=20):
    from ..core import config
    from ..ops.conv import depthwise_backward, depthwise_forward

    ext = config.kernels()
    if ext is None:
        raise RuntimeError(f"the kernels benchmark needs the compiled extension ({config.reason()})")
    from ..fast.conv_chunked import conv_forward
    rng = np.random.default_rng(0)
    rows = []
    for c, hw in BIREAL_LAYERS:
        x = np.where(rng.random((1, c, hw, hw)) < 0.5, -1, 1).astype(np.float32)
        w = np.where(rng.random((c, c, 3, 3)) < 0.5, -1, 1).astype(np.float32)
        macs = c * c * 9 * hw * hw
        # the float side is minilab's own fastest float32 conv: compiled im2col + one GEMM (the kernels' own on
        # AVX-512, else the BLAS')
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
    return {"isa": ext.isa(), "threads": threads, "binary_conv": rows, "lab_depthwise": lab,
            "float_gemm": bench_float_gemm(ext, repeat)}


# Float products of a Bi-Real-18 training step (64 px, batch 64): (name, m, n, k, A stored transposed?, B stored
# transposed?) of C (m×n) = A·B.  The backward's im2col products and the Winograd products of its 3×3 convs.
TRAINING_GEMMS = [("grad input, 512ch", 4608, 224, 512, True, False),
                  ("grad weights, 512ch", 512, 4608, 224, False, True),
                  ("Winograd, 64ch", 64, 64, 2688, False, True),
                  ("Winograd, 128ch", 128, 128, 1024, False, True),
                  ("square", 1024, 1024, 1024, False, False)]


def bench_float_gemm(ext, repeat=20):
    """One thread each: the kernels' own float GEMM (`_ext/sgemm/avx512.h`) against NumPy's matmul on its BLAS,
    on TRAINING_GEMMS; None where the kernel module has no GEMM of its own."""
    if ext.own_sgemm() is None:
        return None
    from threadpoolctl import threadpool_limits

    from ..core.blas import describe_blas

    rng = np.random.default_rng(0)
    rows = []
    was_on = ext.own_sgemm_in_use() is not None
    try:
        ext.use_own_sgemm(True)
        with threadpool_limits(limits=1, user_api="blas"):
            for name, m, n, k, ta, tb in TRAINING_GEMMS:
                a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
                b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
                a, b = (a.T if ta else a), (b.T if tb else b)
                c = np.empty((m, n), np.float32)
                t_own = timeit(lambda: ext.sgemm(a, b, out=c, threads=1, parts=1), repeat)
                t_blas = timeit(lambda: np.matmul(a, b, out=c), repeat)
                macs = m * n * k
                rows.append({"product": name, "shape": f"{m}x{n}x{k}" + (" A^T" if ta else "") + (" B^T" if tb else ""),
                             "own_gmacs": macs / t_own / 1e9, "blas_gmacs": macs / t_blas / 1e9,
                             "ratio": t_blas / t_own})
    finally:
        ext.use_own_sgemm(was_on)
    return {"own": ext.own_sgemm(), "blas": describe_blas(), "rows": rows}


def print_kernels(result):
    float_side = "minilab's own GEMM" if result.get("float_gemm") else "BLAS"
    print(f"binary conv: XNOR-popcount ({result['isa']}, {result['threads']} thread(s)) vs float32 "
          f"im2col + {float_side}, same run")
    print(f"{'layer':>14s} {'float ms':>9s} {'GMAC/s':>7s} {'binary ms':>10s} {'GBMAC/s':>8s} {'speed-up':>9s} "
          f"{'pack ms':>8s} {'with pack':>9s}")
    for r in result["binary_conv"]:
        print(f"{r['layer']:>14s} {r['float_ms']:9.3f} {r['float_gmacs']:7.1f} {r['binary_ms']:10.3f} "
              f"{r['binary_gbmacs']:8.0f} {r['ratio']:8.1f}x {r['pack_ms']:8.3f} {r['ratio_with_pack']:8.1f}x")
    lab = result["lab_depthwise"]
    print(f"{lab['layer']}: kernel {lab['kernel_ms']:.2f} ms, NumPy reference {lab['numpy_ms']:.2f} ms, "
          f"{lab['ratio']:.1f}x")
    gemm = result.get("float_gemm")
    if gemm:
        print(f"float GEMM, 1 thread: minilab's own ({gemm['own']}) vs NumPy's matmul ({gemm['blas']})")
        print(f"{'product':>20s} {'m x n x k':>22s} {'own GMAC/s':>11s} {'BLAS GMAC/s':>12s} {'speed-up':>9s}")
        for r in gemm["rows"]:
            print(f"{r['product']:>20s} {r['shape']:>22s} {r['own_gmacs']:11.1f} {r['blas_gmacs']:12.1f} "
                  f"{r['ratio']:8.2f}x")


def _train_worker(queue, arch, image_size, batch_size, width, binarizer, threads, steps, no_ext):
    from ..core import config

    with config.use(kernels=not no_ext):
        queue.put(_train_run(arch, image_size, batch_size, width, binarizer, threads, steps))


def training_step(arch, image_size, batch_size, width, binarizer):
    """A function that runs one training step (forward + backward + Adam) of a fresh model on one fixed batch of
    random images."""
    from .. import ops as F
    from ..core.autograd import Tensor
    from ..models import create_model
    from ..optim import Adam

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

    return step


def _train_run(arch, image_size, batch_size, width, binarizer, threads, steps):
    from ..core import config
    from ..training.memory import keep_freed_memory
    from ..core.threads import set_threads

    set_threads(threads)
    keep_freed_memory()   # as minilab.train does, for both paths
    step = training_step(arch, image_size, batch_size, width, binarizer)
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
