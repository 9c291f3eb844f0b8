"""`python -m minilab.bench model`: latency, throughput and size of the packed engine vs minilab's float forward,
a per-operator breakdown, and each operator's achieved rate as a fraction of this CPU's measured peak."""
import copy
import os
import tempfile

import numpy as np

from ..core.autograd import Tensor, no_grad
from ..core.config import for_latency, use
from ..engine.convert import convert
from .peak import fractions, machine_peaks, operator_work
from .profile import breakdown, time_interleaved, time_runs
from ..engine.storage import save_packed
from ..core.validate import CORES, IMAGE_SIZES, MAX_BATCH, MAX_WIDTH, WIDTH, int_range, strict_json

# --compare-threads alternates the thread counts in turns of this many timed forwards, each after one untimed
# forward: a user keeps one thread count, and the first forward after a switch pays for moving the maps between
# the cores' caches and for waking a sleeping thread.  Turns of tens of milliseconds still alternate fast enough
# that a slow minute on a shared machine slows both counts alike.
THREAD_TURN = 10


def add_arguments(p):
    from ..models import MODELS
    from ..ops.binarizers import ALL_BINARIZERS

    p.add_argument("--arch", default="labbnn", choices=sorted(MODELS))
    p.add_argument("--checkpoint", default=None, help="a training checkpoint (default: random weights)")
    p.add_argument("--image-size", type=int_range(*IMAGE_SIZES), default=224,
                   help=f"{IMAGE_SIZES[0]}-{IMAGE_SIZES[1]} px (default 224)")
    p.add_argument("--num-classes", type=int_range(2, 100_000), default=1000, help="2-100000 (default 1000)")
    p.add_argument("--width", type=WIDTH, default=1.0, help=f"width multiplier, above 0 and at most {MAX_WIDTH}")
    p.add_argument("--binarizer", default=None, choices=ALL_BINARIZERS,
                   help="activation binarizer (default: the architecture's own; compare lab with sign)")
    p.add_argument("--lab-blocks", default="1111", help="LAB on/off per stage, to redo Table 9's trade-off")
    p.add_argument("--lab-bits", type=int, default=32, choices=(32, 8, 4),
                   help="LAB depthwise kernels stored in FP32, INT8 or INT4")
    p.add_argument("--batch-size", type=int_range(1, MAX_BATCH), default=1,
                   help=f"images per forward, 1-{MAX_BATCH} (1: latency; 8: throughput)")
    p.add_argument("--threads", type=int_range(1, CORES), default=1,
                   help="cores to use: every layer splits its rows, pixel blocks or channel blocks over this many "
                        "OpenMP threads, so a single image uses them all")
    p.add_argument("--compare-binarizer", default=None, choices=ALL_BINARIZERS, metavar="BINARIZER",
                   help="also time the same architecture with this binarizer, the two forwards interleaved, and "
                        "print their ratio (e.g. LAB-BNN with sign: LAB's cost)")
    p.add_argument("--compare-threads", type=int_range(1, CORES), default=None, metavar="N",
                   help="also time the same packed model on N threads, alternating with --threads in turns of "
                        f"{THREAD_TURN} forwards, and print the speed-up of --threads over N (e.g. --threads 2 "
                        "--compare-threads 1)")
    p.add_argument("--runs", type=int_range(1, 100_000), default=20, help="timed runs of the packed model")
    p.add_argument("--float-runs", type=int_range(1, 10_000), default=5, help="runs of the (slow) float reference")
    p.add_argument("--plot", default=None, help="write the per-operator breakdown as a PNG bar chart")
    p.add_argument("--save", default=None, help="also write the packed model to this .npz file")
    p.add_argument("--json", action="store_true", help="print one JSON record instead of the table")


def build(args):
    from ..training.checkpoint import load_model_from_checkpoint
    from ..models import create_model, default_binarizer

    if args.checkpoint:
        model, record = load_model_from_checkpoint(args.checkpoint)
        config = record["model"]
        if config["arch"] != args.arch:
            raise ValueError(f"{args.checkpoint} holds a {config['arch']!r} model, not {args.arch!r}")
        return model, config
    binarizer = args.binarizer or default_binarizer(args.arch)
    config = {"arch": args.arch, "num_classes": args.num_classes, "image_size": args.image_size,
              "width": args.width, "binarizer": binarizer, "lab_blocks": args.lab_blocks, "lab_bits": args.lab_bits}
    return create_model(**config), config


def compare(args, packed, config, x):
    """The interleaved comparisons --compare-binarizer and --compare-threads ask for: [{what, this, other, ratio}]
    with ratio = this one's median / the other's for a binarizer (LAB's cost over sign) and the other's / this
    one's for threads (the speed-up of --threads)."""
    from ..models import create_model

    rows = []
    if args.compare_binarizer:
        other_config = dict(config, binarizer=args.compare_binarizer)
        other_model = create_model(**other_config)
        other_model.eval()
        other = convert(other_model, other_config, threads=args.threads)
        mine, theirs = time_interleaved([lambda: packed(x), lambda: other(x)], runs=args.runs)
        rows.append({"what": f"latency {config['binarizer']} / {args.compare_binarizer}",
                     "this": mine, "other": theirs, "ratio": mine["median_ms"] / theirs["median_ms"]})
    if args.compare_threads:
        def on(threads):
            def forward():
                packed.set_threads(threads)
                packed(x)
            return forward

        mine, theirs = time_interleaved([on(args.threads), on(args.compare_threads)], runs=args.runs,
                                        turn=THREAD_TURN)
        packed.set_threads(args.threads)
        rows.append({"what": f"speed-up of {args.threads} thread(s) over {args.compare_threads}",
                     "turn": THREAD_TURN, "this": mine, "other": theirs,
                     "ratio": theirs["median_ms"] / mine["median_ms"]})
    return rows


def checkpoint_classes(path):
    """The class ids a training checkpoint names (stored with a packed model saved from it), else None."""
    from ..training.checkpoint import read_checkpoint

    return read_checkpoint(path)[2].get("classes") if path else None


def run_model_bench(args):
    import sys

    from ..core.threads import set_threads

    if args.batch_size == 1:
        for_latency()    # before set_threads loads the kernels: what predict runs one image with
    set_threads(args.threads)
    try:
        model, config = build(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = config["image_size"]
    x = np.random.default_rng(0).standard_normal((args.batch_size, 3, size, size)).astype(np.float32)
    model.eval()

    def float_forward():
        with no_grad(), use(packed_conv=False):
            return model(Tensor(x))

    float_time = time_runs(float_forward, runs=args.float_runs, warmup=1)
    packed = convert(copy.deepcopy(model), config, threads=args.threads)
    packed_time = time_runs(lambda: packed(x), runs=args.runs)
    comparisons = compare(args, packed, config, x)
    parts, profiled_total = breakdown(packed, x, runs=max(3, args.runs // 4))
    peaks = machine_peaks(args.threads)
    rates = fractions(parts, operator_work(packed, x), peaks)
    if args.save:
        size_bytes = save_packed(packed, args.save, checkpoint_classes(args.checkpoint))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            size_bytes = save_packed(packed, os.path.join(tmp, "model.npz"))
    result = {"config": config, "batch_size": args.batch_size, "threads": args.threads, "packed": packed_time,
              "float": float_time, "speedup": float_time["median_ms"] / packed_time["median_ms"],
              "size_mb": size_bytes / 1e6, "breakdown_ms": parts, "profiled_total_ms": profiled_total,
              "peaks_per_s": peaks, "comparisons": comparisons,
              "rates": {k: {"per_s": r, "unit": u, "fraction_of_peak": f} for k, (r, u, f) in rates.items()}}
    print(strict_json(result, indent=1)) if args.json else print_model_bench(result)
    if args.plot:
        from ..analysis.plotting import breakdown_figure, cpu_name

        if breakdown_figure(parts, args.plot, f"{config['arch']} ({config['binarizer']}) at {size} px, batch "
                                              f"{args.batch_size}, {args.threads} thread(s): "
                                              f"{packed_time['median_ms']:.2f} ms median; profiled runs (bars) "
                                              f"{profiled_total:.2f} ms\n{cpu_name()}"):
            print(f"wrote {args.plot}")
    return 0


def print_model_bench(result):
    c, pt, ft = result["config"], result["packed"], result["float"]
    print(f"{c['arch']} ({c['binarizer']}, lab_blocks {c['lab_blocks']}, LAB {c.get('lab_bits', 32)}-bit) at "
          f"{c['image_size']} px, batch {result['batch_size']}, {result['threads']} thread(s)")
    print(f"packed engine: median {pt['median_ms']:.2f} ms (p10 {pt['p10_ms']:.2f}, p90 {pt['p90_ms']:.2f}, "
          f"min {pt['min_ms']:.2f}, max {pt['max_ms']:.2f}; {pt['runs']} runs)")
    print(f"float forward: median {ft['median_ms']:.2f} ms ({ft['runs']} runs)   speed-up {result['speedup']:.1f}x")
    print(f"throughput: {1e3 * result['batch_size'] / pt['median_ms']:.1f} images/s (median)")
    print(f"packed model size on disk: {result['size_mb']:.3f} MB")
    for row in result.get("comparisons", []):
        order = f"in turns of {row['turn']}" if row.get("turn", 1) > 1 else "interleaved"
        print(f"{row['what']}: {row['ratio']:.3f}  ({order}, {row['this']['runs']} runs each; medians "
              f"{row['this']['median_ms']:.2f} and {row['other']['median_ms']:.2f} ms, p10 {row['this']['p10_ms']:.2f} "
              f"and {row['other']['p10_ms']:.2f} ms)")
    peaks, rates = result["peaks_per_s"], result["rates"]
    print(f"this CPU's peaks on {result['threads']} thread(s) (micro-benchmarks): "
          f"{peaks['binary MAC'] / 1e9:.0f} G binary MAC/s, {peaks['float MAC'] / 1e9:.1f} G float32 MAC/s, "
          f"{peaks['byte'] / 1e9:.1f} GB/s copy")
    print("per-operator breakdown (profiled runs), achieved rate and fraction of that peak:")
    for name, ms in result["breakdown_ms"].items():
        line = f"  {name:20s} {ms:8.2f} ms  {100 * ms / max(result['profiled_total_ms'], 1e-9):5.1f} %"
        if name in rates:
            r = rates[name]
            unit = "GB/s" if r["unit"] == "byte" else f"G {r['unit']}/s"
            line += f"   {r['per_s'] / 1e9:8.1f} {unit:16s} {100 * r['fraction_of_peak']:5.1f} % of peak"
        print(line)
