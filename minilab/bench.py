"""`python -m minilab.bench kernels|train|model|scaling|decode|contention`: speed measured as ratios against a reference run
in the same sitting (NumPy float32 BLAS, the pure-NumPy path, or another configuration), never as absolute
pass/fail timings.

  kernels  the Bi-Real-18 3×3 layer shapes at 224 px: packed XNOR-popcount conv vs float32 im2col + GEMM,
           the LAB depthwise kernel vs its NumPy reference, and (AVX-512 kernels) minilab's own float GEMM vs
           NumPy's matmul on the training's products
  train    images/s of forward + backward + Adam step with the compiled twins vs the NumPy reference ops
           (config.use(kernels=False), the same as MINILAB_NO_EXT=1), and peak memory
  model    packed inference engine vs minilab's float forward (see minilab.engine)
  scaling  data-parallel training over MPI: step costs for 1 process and N ranks, and a projection (minilab.benchmarks)
  decode   the streaming loader's JPEG decode rate per worker (minilab.benchmarks)
  contention  training img/s with 1 and N threads alone, beside a busy process and two runs at once, with
           ratios: speed on a shared machine (minilab.benchmarks.contention)
"""
import argparse
import sys

from .benchmarks.kernels import bench_kernels, bench_train, print_kernels, print_train
from .core.validate import CORES, IMAGE_SIZES, MAX_BATCH, MAX_WIDTH, WIDTH, Refused, check_output_file, int_range, \
    strict_json


def build_parser():
    """The command line of `python -m minilab.bench` (the docs render their page from it)."""
    from .models import MODELS

    p = argparse.ArgumentParser(prog="python -m minilab.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kernels", help="packed binary conv, LAB depthwise and the own float GEMM vs NumPy/BLAS")
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
    from .benchmarks.inference import add_arguments
    add_arguments(m)
    from .benchmarks import contention, scaling
    scaling.add_arguments(sub)
    contention.add_arguments(sub)
    return p


def main(argv=None):
    from .benchmarks import contention, scaling

    p = build_parser()
    args = p.parse_args(argv)
    for option in ("save", "plot"):    # bench model's output files, checked before the measurements
        if getattr(args, option, None):
            try:
                check_output_file(getattr(args, option), f"--{option}")
            except Refused as error:
                p.error(str(error))
    if args.what == "kernels":
        from .core.threads import set_threads
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
    elif args.what == "contention":
        return contention.run_contention(args)
    else:
        from .benchmarks.inference import run_model_bench
        return run_model_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
